"""Whether a search worker grows: its memory, and the time each trial spends outside MLX, from
trial 100 to trial 1,000 of one ``synthetic`` study (issue 14, item 5; issue 28).

One worker runs in this process, through ``tuner.api.prepare`` and ``tuner.api.run`` as
``tuner search --jobs 1`` runs it (same defaults: TPE, the quartile pruner, populations, the BLAS
``--blas`` picks), on a new SQLite file in a temporary folder, or on ``--storage`` (a new study
there). A ``Watcher`` notes ``time.perf_counter()`` when each trial's end is stored
(``trial_ended``, after Optuna's callbacks), and the process's RSS and peak RSS (``VmRSS``,
``VmHWM`` in ``/proc/self/status``) at each end. The watcher's own work is timed and left out of
every figure.

The time inside tuner's ``train`` (the engine that trains a trial, or a population of trials
together: its steps, evals and the Python around them, kernel builds included) is MLX's; the
``report`` and ``should_prune`` calls it makes are taken out of it. Everything else in the
search's wall time is bookkeeping: asking Optuna for trials and sampling their settings,
storing them, Optuna's ``tell``, tuner's records, counts and callbacks. Each figure for a range
of trials is the time between the end of the trial before it and the end of its last trial,
over the trials in it: a population's members end together, after its training.

Printed: RSS and peak RSS after trial 100 and after the last, their ratios (target <= 1.10) and
RSS growth a trial (least squares); bookkeeping a trial over trials 1-100 and the last 100 and
their ratio (target <= 1.5); bookkeeping / MLX time over the last 100 (target <= 25 %); and a
table by hundreds of trials, with the mean steps a trial trained (most trials are pruned at
their first eval) and what else might hold memory: live Python objects, shared libraries mapped
(MLX loads each kernel it builds on the CPU as one), MLX's own allocations. Trials 1-100
include TPE's 10 random start-up trials, which are cheap to sample. Times are wall-clock on a
shared machine, and the CPU time beside them says how long the search waited for a core: read
the ratios, not the milliseconds. Nothing is asserted.

Trials train ``synthetic``'s own 100 steps: fewer would barely shorten the run, whose time is
mostly bookkeeping, and would change what the pruner sees. 1,000 trials took 3 to 4 minutes on
a shared 2-core machine (2026-12-01); ``--trials 150`` is enough to try the script.

    python benchmarks/growth.py [--trials 1000] [--steps N] [--storage URL] [--blas bundled]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner import blas, open_results
from tuner.api import prepare, run
from tuner.plan import SearchConfig
from tuner.plugins import load_plugins
from tuner.watcher import Progress, Watcher

if TYPE_CHECKING:
    from tuner.results import TrialSummary

TASK = "synthetic"
# Where the targets compare: after trial 100, and by hundreds of trials.
EARLY = 100
MB = 1024 * 1024


@dataclass
class End:
    """What the worker looked like when one trial's end was stored."""

    number: int
    ended: float  # less the time the watcher took before it
    mlx: float  # the time inside train() so far, less the pruning calls it made
    pruning: float  # the time inside report() and should_prune() so far
    rss: int
    peak_rss: int


class Recorder(Watcher):
    """Notes the time and the memory at each trial's end, in the worker itself; ``clocks``
    holds the running totals of the time in ``train`` and in the pruning calls."""

    def __init__(self, clocks: dict[str, float]) -> None:
        self.clocks = clocks
        self.begun = 0.0
        # The watcher's own time, taken out of every figure.
        self.watching = 0.0
        self.ends: list[End] = []
        self.probes: dict[int, dict[str, float]] = {}

    def started(self, study: str, *, new: bool, twins: Sequence[str]) -> None:
        self.begun = time.perf_counter()

    def trial_ended(self, trial: TrialSummary, progress: Progress) -> None:
        ended = time.perf_counter()
        rss, peak = memory()
        count = len(self.ends) + 1
        if count == EARLY or progress.finished >= progress.total:
            self.probes[count] = probe()
        if count % EARLY == 0:
            # A long run says how far it is, on stderr, out of the way of the figures.
            print(f"trial {count}: {ended - self.begun:.0f} s", file=sys.stderr, flush=True)
        pruning = self.clocks["pruning"]
        mlx = self.clocks["train"] - self.clocks["pruning_in_train"]
        self.ends.append(End(trial.number, ended - self.watching, mlx, pruning, rss, peak))
        self.watching += time.perf_counter() - ended


def memory() -> tuple[int, int]:
    """This process's resident set size and its peak, in bytes."""
    try:
        fields = dict(
            line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines()
        )
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024
    except (OSError, KeyError):
        # Off Linux there is only the peak; ru_maxrss is bytes on macOS, KiB elsewhere.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak *= 1 if sys.platform == "darwin" else 1024
        return peak, peak


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def probe() -> dict[str, float]:
    """What might hold the RSS: live Python objects, MLX's allocations, and the shared
    libraries mapped, among them each kernel MLX built on the CPU and loaded."""
    import mlx.core as mx

    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
        libraries = len({line.split()[-1] for line in maps if line.endswith(".so")})
    except OSError:
        libraries = 0
    return {
        "objects": len(gc.get_objects()),
        "libraries": libraries,
        "mlx_active": mx.get_active_memory(),
        "mlx_cache": mx.get_cache_memory(),
    }


def time_training(clocks: dict[str, float]) -> None:
    """Add to ``clocks`` the seconds inside tuner's ``train`` ("train"), inside Optuna's
    ``Trial.report`` and ``should_prune`` ("pruning"), and in those calls made while training
    ("pruning_in_train")."""
    import optuna

    import tuner.objective

    inside = [False]
    train = tuner.objective.train

    def timed_train(*args: Any, **kwargs: Any) -> Any:
        tick = time.perf_counter()
        inside[0] = True
        try:
            return train(*args, **kwargs)
        finally:
            inside[0] = False
            clocks["train"] += time.perf_counter() - tick

    tuner.objective.train = timed_train
    for name in ("report", "should_prune"):
        original = getattr(optuna.trial.Trial, name)

        def timed(self: Any, *args: Any, _original: Callable[..., Any] = original) -> Any:
            tick = time.perf_counter()
            try:
                return _original(self, *args)
            finally:
                took = time.perf_counter() - tick
                clocks["pruning"] += took
                clocks["pruning_in_train"] += took if inside[0] else 0.0

        setattr(optuna.trial.Trial, name, timed)


@dataclass
class Span:
    """The trials from one end to another: their wall time, split, and the steps they ran."""

    trials: int
    wall: float
    mlx: float
    pruning: float
    steps: int

    @property
    def bookkeeping(self) -> float:
        return self.wall - self.mlx

    def per_trial(self, key: str) -> float:
        return getattr(self, key) / self.trials


def span(recorder: Recorder, steps: dict[int, int], first: int, last: int) -> Span:
    """Trials ``first`` to ``last`` (1-based, in the order they ended)."""
    ends = recorder.ends
    before = ends[first - 2] if first > 1 else None
    at = ends[last - 1]
    start, mlx, pruning = (
        (before.ended, before.mlx, before.pruning) if before else (recorder.begun, 0.0, 0.0)
    )
    return Span(
        trials=last - first + 1,
        wall=at.ended - start,
        mlx=at.mlx - mlx,
        pruning=at.pruning - pruning,
        steps=sum(steps.get(e.number, 0) for e in ends[first - 1 : last]),
    )


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The least-squares slope of ``ys`` over ``xs``."""
    mx_, my = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mx_) ** 2 for x in xs)
    return sum((x - mx_) * (y - my) for x, y in zip(xs, ys, strict=True)) / spread if spread else 0


def report(
    recorder: Recorder, steps: dict[int, int], wall: float, cpu: float, heading: str
) -> None:
    ends, n = recorder.ends, len(recorder.ends)
    early = min(EARLY, n)
    first, last = span(recorder, steps, 1, early), span(recorder, steps, n - early + 1, n)
    whole = span(recorder, steps, 1, n)
    late = f"{n - early + 1}-{n}"
    print(heading)
    print(
        f"the search (tuner.api.run) {wall:.1f} s, {n / wall:.1f} trials/s; in MLX "
        f"{whole.mlx:.1f} s, bookkeeping {whole.bookkeeping:.1f} s"
    )
    # On a shared machine the search also waits for a core; that waiting lands in every figure.
    print(f"CPU time {cpu:.1f} s of {wall:.1f} s wall ({cpu / wall:.0%})")
    print()
    at, end = ends[early - 1], ends[-1]
    print(f"memory          after trial {early:<5}  after trial {n:<5}  ratio  target")
    for label, before, after, target in (
        ("RSS, MB", at.rss / MB, end.rss / MB, ""),
        ("peak RSS, MB", at.peak_rss / MB, end.peak_rss / MB, "<= 1.10"),
    ):
        line = f"{label:<16}{before:>17.1f}  {after:>17.1f}  {after / before:5.3f}  {target}"
        print(line.rstrip())
    early_probe, late_probe = recorder.probes.get(early), recorder.probes.get(n)
    if early_probe and late_probe and early != n:
        for key, label, scale, shown in (
            ("objects", "Python objects", 1, ",.0f"),
            ("libraries", "libraries (.so)", 1, ",.0f"),
            ("mlx_active", "MLX active, MB", MB, ".1f"),
            ("mlx_cache", "MLX cache, MB", MB, ".1f"),
        ):
            before, after = early_probe[key] / scale, late_probe[key] / scale
            ratio = f"{after / before:5.3f}" if before else "    -"
            print(f"{label:<16}{before:>17{shown}}  {after:>17{shown}}  {ratio}")
    if n > early:
        grown = slope([float(i) for i in range(early, n + 1)], [e.rss for e in ends[early - 1 :]])
        print(f"RSS grew {grown / 1024:.1f} KB a trial over trials {early}-{n} (least squares)")
    print()
    print(f"a trial, ms     trials 1-{early:<8}  trials {late:<11}  ratio  target")
    for key in ("wall", "pruning", "bookkeeping", "mlx"):
        before, after = first.per_trial(key) * 1000, last.per_trial(key) * 1000
        ratio = f"{after / before:5.2f}" if before > 0 else "    -"
        target = "<= 1.5" if key == "bookkeeping" else ""
        print(f"{key:<16}{before:>17.1f}  {after:>17.1f}  {ratio}  {target}".rstrip())
    for label, value in (
        ("steps a trial", lambda s: s.steps / s.trials),
        ("MLX ms a step", per_step),  # a trial's setup, evals and kernel builds included
    ):
        before, after = value(first), value(last)
        print(f"{label:<16}{before:>17.2f}  {after:>17.2f}  {after / before:5.2f}")
    share = last.bookkeeping / last.mlx
    print(f"bookkeeping / MLX time over trials {late}: {share:.0%} (target <= 25 %)")
    print()
    print("trials          wall  pruning  bookkeeping      MLX  steps  bookkeeping      RSS")
    print("                  ms       ms           ms       ms          / MLX           MB")
    for start in range(1, n + 1, EARLY):
        stop = min(start + EARLY - 1, n)
        chunk = span(recorder, steps, start, stop)
        print(
            f"{f'{start}-{stop}':<11}{chunk.per_trial('wall') * 1000:9.1f} "
            f"{chunk.per_trial('pruning') * 1000:8.1f} "
            f"{chunk.per_trial('bookkeeping') * 1000:12.1f} {chunk.per_trial('mlx') * 1000:8.1f} "
            f"{chunk.steps / chunk.trials:6.1f} {chunk.bookkeeping / chunk.mlx:12.0%} "
            f"{ends[stop - 1].rss / MB:12.1f}"
        )


def per_step(chunk: Span) -> float:
    """MLX milliseconds a step trained: whether MLX itself slows down. Each trial's setup,
    evals and kernel builds are spread over its steps, so shorter trials cost more a step."""
    return chunk.mlx * 1000 / max(chunk.steps, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=1000, help="finished trials to run")
    parser.add_argument("--steps", type=int, help=f"steps a trial [{TASK}'s default]")
    parser.add_argument("--storage", help="a storage URL [a new SQLite file in a temp folder]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blas", choices=blas.CHOICES, default="auto")
    options = parser.parse_args()
    # Before anything imports MLX, whose BLAS is fixed when it loads.
    running = blas.load(options.blas)
    folder = None
    if options.storage:
        storage, where = options.storage, options.storage.split("://")[0]
    else:
        folder = tempfile.mkdtemp(prefix="tuner-growth-")
        storage, where = f"sqlite:///{folder}/growth.db", "a new SQLite file"
    clocks = {"train": 0.0, "pruning": 0.0, "pruning_in_train": 0.0}
    time_training(clocks)
    recorder = Recorder(clocks)
    study = f"growth-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    config = SearchConfig(
        task=TASK,
        trials=options.trials,
        steps=options.steps,
        study=study,
        seed=options.seed,
        command="benchmarks/growth.py",
    )
    try:
        plan = prepare(config, load_plugins(), storage)
        started, cpu = time.perf_counter(), cpu_seconds()
        run(plan, storage, recorder)
        wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        with open_results(storage) as results:
            steps = {t.number: t.steps or 0 for t in results.trials(study)}
        if folder:
            # WAL mode: until a checkpoint, much of the study is in growth.db-wal.
            size = sum(f.stat().st_size for f in Path(folder).glob("growth.db*"))
            where += f" ({size / MB:.1f} MB at the end)"
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
    heading = (
        f"{TASK}: {len(recorder.ends)} trials of up to {plan.steps} steps, one worker, on {where}\n"
        f"BLAS: {running or 'as MLX loads it'}"
    )
    report(recorder, steps, wall, cpu, heading)


if __name__ == "__main__":
    main()
