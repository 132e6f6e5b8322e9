"""Whether a search worker grows: its memory, and the time each trial spends outside MLX, from
trial 100 to trial 1,000 of one ``synthetic`` study (issue 14, item 5).

One worker runs in this process, through ``tuner.api.prepare`` and ``tuner.api.run`` as
``tuner search`` runs it (same defaults: TPE, median pruner, the BLAS ``--blas`` picks), on a new
SQLite file in a temporary folder, or on ``--storage`` (a new study there). A ``Watcher`` notes
``time.perf_counter()`` when each trial starts training (``trial_started``, after its settings
are sampled) and when its end is stored (``trial_ended``, after Optuna's callbacks), and the
process's RSS and peak RSS (``VmRSS``, ``VmHWM`` in ``/proc/self/status``) at each end. The
watcher's own work is timed and left out of every figure. Optuna's ``Trial.report`` and
``Trial.should_prune`` are wrapped to time the storage reads and writes a trial makes while it
trains. At the end, each trial's own time is read back as tuner stored it (``duration_s``:
from its model's creation to its last eval, reports and pruning checks included).

For each trial, from the end of the one before (or the study's start):

- before: asking Optuna for the trial and sampling its settings;
- pruning: ``report`` and ``should_prune``, inside ``duration_s``;
- after: storing its record, Optuna's ``tell`` and tuner's callbacks;
- bookkeeping: before + pruning + after; MLX: ``duration_s`` - pruning (training, evals, and
  the Python around each step).

Printed: RSS and peak RSS after trial 100 and after the last, their ratios (target <= 1.10) and
RSS growth a trial (least squares); bookkeeping a trial over trials 1-100 and the last 100 and
their ratio (target <= 1.5); bookkeeping / MLX time over the last 100 (target <= 10 %); and a
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
    from tuner.space import Sample

TASK = "synthetic"
# Where the targets compare: after trial 100, and by hundreds of trials.
EARLY = 100
MB = 1024 * 1024


@dataclass
class End:
    """What the worker looked like when one trial's end was stored."""

    number: int
    started: float | None  # when it began training; None if it failed while sampling
    ended: float
    resumed: float  # when this watcher handed control back, which the next trial starts from
    pruning_s: float  # inside report() and should_prune() during the trial
    rss: int
    peak_rss: int


class Recorder(Watcher):
    """Notes the time and the memory at each trial's start and end, in the worker itself."""

    def __init__(self, pruning: list[float]) -> None:
        self.pruning = pruning  # the running total that the wrapped Optuna calls add to
        self.begun = 0.0
        self.starts: dict[int, float] = {}
        self.ends: list[End] = []
        self.probes: dict[int, dict[str, float]] = {}

    def started(self, study: str, *, new: bool, twins: Sequence[str]) -> None:
        self.begun = time.perf_counter()
        self._pruning_at_start = self.pruning[0]

    def trial_started(self, number: int, sample: Sample, steps: int, members: int = 1) -> None:
        self.starts[number] = time.perf_counter()

    def trial_ended(self, trial: TrialSummary, progress: Progress) -> None:
        ended = time.perf_counter()
        rss, peak = memory()
        pruning = self.pruning[0] - self._pruning_at_start
        self._pruning_at_start = self.pruning[0]
        count = len(self.ends) + 1
        if count == EARLY or progress.finished >= progress.total:
            # Tens of milliseconds, once or twice: timed out by ``resumed``, like the rest.
            self.probes[count] = probe()
        if count % EARLY == 0:
            # A long run says how far it is, on stderr, out of the way of the figures.
            print(f"trial {count}: {ended - self.begun:.0f} s", file=sys.stderr, flush=True)
        self.ends.append(
            End(
                trial.number,
                self.starts.pop(trial.number, None),
                ended,
                time.perf_counter(),
                pruning,
                rss,
                peak,
            )
        )


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


def time_optuna_pruning(total: list[float]) -> None:
    """Add the seconds spent in ``optuna.Trial.report`` and ``should_prune`` to ``total[0]``:
    the storage calls a trial makes while it trains, which its ``duration_s`` includes."""
    import optuna

    for name in ("report", "should_prune"):
        original = getattr(optuna.trial.Trial, name)

        def timed(self: Any, *args: Any, _original: Callable[..., Any] = original) -> Any:
            tick = time.perf_counter()
            try:
                return _original(self, *args)
            finally:
                total[0] += time.perf_counter() - tick

        setattr(optuna.trial.Trial, name, timed)


@dataclass
class Row:
    """One trial's wall time, split."""

    before: float
    pruning: float
    after: float
    mlx: float
    steps: int

    @property
    def bookkeeping(self) -> float:
        return self.before + self.pruning + self.after


def split(recorder: Recorder, stored: dict[int, TrialSummary]) -> list[Row]:
    """Each trial's time from the previous trial's end (or the study's start) to its own."""
    rows = []
    previous = recorder.begun
    for end in recorder.ends:
        trial = stored.get(end.number)
        # A trial that failed before its record was written has no duration of its own.
        duration = (trial and trial.duration_s) or 0.0
        steps = (trial and trial.steps) or 0
        if end.started is None:  # failed while sampling: all of it was outside MLX
            rows.append(Row(end.ended - previous, 0.0, 0.0, 0.0, 0))
        else:
            rows.append(
                Row(
                    before=end.started - previous,
                    pruning=end.pruning_s,
                    after=end.ended - end.started - duration,
                    mlx=duration - end.pruning_s,
                    steps=steps,
                )
            )
        previous = end.resumed
    return rows


def mean(rows: Sequence[Row], key: str) -> float:
    return statistics.fmean(getattr(row, key) for row in rows)


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The least-squares slope of ``ys`` over ``xs``."""
    mx_, my = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mx_) ** 2 for x in xs)
    return sum((x - mx_) * (y - my) for x, y in zip(xs, ys, strict=True)) / spread if spread else 0


def report(recorder: Recorder, rows: list[Row], wall: float, cpu: float, heading: str) -> None:
    ends, n = recorder.ends, len(rows)
    early = min(EARLY, n)
    first, last = rows[:early], rows[-early:]
    late = f"{n - early + 1}-{n}"
    print(heading)
    print(
        f"the search (tuner.api.run) {wall:.1f} s, {n / wall:.1f} trials/s; in MLX "
        f"{sum(r.mlx for r in rows):.1f} s, bookkeeping {sum(r.bookkeeping for r in rows):.1f} s"
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
    for key in ("before", "pruning", "after", "bookkeeping", "mlx"):
        before, after = mean(first, key) * 1000, mean(last, key) * 1000
        ratio = f"{after / before:5.2f}" if before > 0 else "    -"
        target = "<= 1.5" if key == "bookkeeping" else ""
        print(f"{key:<16}{before:>17.1f}  {after:>17.1f}  {ratio}  {target}".rstrip())
    for label, value in (
        ("steps a trial", lambda rs: mean(rs, "steps")),
        ("MLX ms a step", per_step),  # a trial's setup, evals and kernel builds included
    ):
        before, after = value(first), value(last)
        print(f"{label:<16}{before:>17.2f}  {after:>17.2f}  {after / before:5.2f}")
    medians = [statistics.median(r.bookkeeping for r in rs) * 1000 for rs in (first, last)]
    print(
        f"(bookkeeping medians {medians[0]:.1f} and {medians[1]:.1f} ms: "
        f"ratio {medians[1] / medians[0]:.2f})"
    )
    share = sum(r.bookkeeping for r in last) / sum(r.mlx for r in last)
    print(f"bookkeeping / MLX time over trials {late}: {share:.0%} (target <= 10 %)")
    print()
    print("trials       before  pruning   after  bookkeeping     MLX  steps  bookkeeping     RSS")
    print("                 ms       ms      ms           ms      ms          / MLX          MB")
    for start in range(0, n, EARLY):
        chunk = rows[start : start + EARLY]
        bookkeeping, mlx = mean(chunk, "bookkeeping"), mean(chunk, "mlx")
        print(
            f"{f'{start + 1}-{start + len(chunk)}':<11}"
            f"{mean(chunk, 'before') * 1000:8.1f} {mean(chunk, 'pruning') * 1000:8.1f} "
            f"{mean(chunk, 'after') * 1000:7.1f} {bookkeeping * 1000:12.1f} {mlx * 1000:7.1f} "
            f"{mean(chunk, 'steps'):6.1f} {bookkeeping / mlx:12.0%} "
            f"{ends[start + len(chunk) - 1].rss / MB:11.1f}"
        )


def per_step(rows: Sequence[Row]) -> float:
    """MLX milliseconds a step trained: whether MLX itself slows down. Each trial's setup,
    evals and kernel builds are spread over its steps, so shorter trials cost more a step."""
    return sum(r.mlx for r in rows) * 1000 / max(sum(r.steps for r in rows), 1)


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
    pruning = [0.0]
    time_optuna_pruning(pruning)
    recorder = Recorder(pruning)
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
            stored = {t.number: t for t in results.trials(study)}
        if folder:
            # WAL mode: until a checkpoint, much of the study is in growth.db-wal.
            size = sum(f.stat().st_size for f in Path(folder).glob("growth.db*"))
            where += f" ({size / MB:.1f} MB at the end)"
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
    rows = split(recorder, stored)
    heading = (
        f"{TASK}: {len(rows)} trials of up to {plan.steps} steps, one worker, on {where}\n"
        f"BLAS: {running or 'as MLX loads it'}"
    )
    report(recorder, rows, wall, cpu, heading)


if __name__ == "__main__":
    main()
