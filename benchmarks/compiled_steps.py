"""How many training steps a second each built-in optimizer runs compiled, against eager, on
``digits`` (issue 14, item 4: compiled at least 2× eager for every optimizer that compiles).

Every built-in optimizer (those the ``built-in`` plugin registers) runs with its default
settings: each parameter of its space at the space's midpoint (a Float's, log-scaled where the
range is; a Choice's first value), as is the shared ``lr`` (``1e-4..1:log`` gives 0.01), with no
warmup and, by default, the ``constant`` schedule, so that the step is the optimizer's alone.
Each trial is ``tuner.train.run_trial`` on the task's steps (300), batch size (64) and eval
cadence (50), as a search runs it:

- eager: ``eager=True``, so that nothing is compiled;
- compiled: one ``GraphCache`` per optimizer, as a search keeps one: its first trial traces the
  step and builds MLX's kernels (its time is printed as ``build s`` and kept out of the rates),
  and the next ``--trials`` reuse that graph with fresh weights and optimizer state.

The trials of the two ways alternate with the same seeds, so that load from other processes
falls on both alike. Each compiled trial says whether it really ran compiled
(``TrialResult.compiled``); one that fell back to eager is listed with the reason it gives.

What is printed, for each optimizer (each rate the median over its trials):

- step/s: 1 / the trial's median step time (``step_time_s``). A step is timed around the batch
  gather, the step and its ``mx.eval``: not the loss's ``.item()``, the evals, the set-up;
- trial/s: steps / the trial's wall time (``duration_s``, from ``run_trial``'s start to its
  return: the model's creation, the evals and, compiled, loading the graph included), which is
  what a search gains;
- cpu: the ratio of steps / the process's CPU seconds over each whole trial, timed here with
  ``time.process_time``. On a shared machine, time the process spends waiting for a core counts
  in the wall-clock rates but not here, so when the two ratios differ, trust this one more;
- ratio: compiled / eager;
- build s: the wall time of the first compiled trial, which traces and builds;
- Δloss: the largest difference between the eager and compiled final training loss of one
  seed: the two should run the same arithmetic.

MLX keeps built kernels on disk under the temp directory; this script points it at a new, empty
one unless ``--warm-cache``, so that ``build s`` is what a fresh machine pays (optimizers that
share kernels, such as Adam's family, build faster after the first). The BLAS is chosen as
``tuner search`` chooses it, before MLX loads: OpenBLAS where installed, one thread, unless
``--blas bundled``. Timings only: nothing is asserted.

    python benchmarks/compiled_steps.py [--trials 3] [--optimizers adam,sgd] [--steps 300]
        [--schedule constant] [--blas auto|bundled] [--warm-cache]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

# Imported before anything that imports MLX, which binds its BLAS calls once, as it loads.
from tuner import blas

if TYPE_CHECKING:
    from tuner import OptimizerSpec, ScheduleSpec, Task
    from tuner.space import Sample
    from tuner.trial import TrialResult

TARGET = 2.0


@dataclass
class Timed:
    """One trial's result and the CPU seconds the process spent on it."""

    result: TrialResult
    cpu_s: float


@dataclass
class Measured:
    """One optimizer's trials: eager, compiled, and apart the compiled one that built."""

    name: str
    eager: list[Timed]
    compiled: list[Timed]
    build: Timed

    @staticmethod
    def step_rate(trials: list[Timed]) -> float:
        times = [t.result.step_time_s for t in trials if t.result.step_time_s]
        return 1.0 / statistics.median(times) if times else float("nan")

    @staticmethod
    def trial_rate(trials: list[Timed]) -> float:
        return statistics.median(t.result.steps / t.result.duration_s for t in trials)

    @staticmethod
    def cpu_rate(trials: list[Timed]) -> float:
        return statistics.median(t.result.steps / t.cpu_s for t in trials)

    def ratio(self, rate: Callable[[list[Timed]], float]) -> float:
        return rate(self.compiled) / rate(self.eager)

    @property
    def ran_compiled(self) -> bool:
        return all(t.result.compiled for t in self.compiled)

    def why_not(self) -> str:
        """Why its compiled trials ran eagerly, in the trials' own words."""
        for timed in [self.build, *self.compiled]:
            if not timed.result.compiled:
                return timed.result.reason or "no reason given"
        return ""

    def loss_gap(self) -> float:
        pairs = zip(self.eager, self.compiled, strict=True)
        gaps = [
            abs(e.result.losses[-1] - c.result.losses[-1])
            for e, c in pairs
            if e.result.losses and c.result.losses
        ]
        return max(gaps, default=float("nan"))

    def troubles(self) -> list[str]:
        """Trials that stopped early: their rates rest on fewer steps."""
        every = [("eager", t) for t in self.eager] + [("compiled", t) for t in self.compiled]
        return [
            f"{way} trial ended {t.result.outcome} after {t.result.steps} steps: {t.result.reason}"
            for way, t in every
            if t.result.outcome != "complete"
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3, help="measured trials a way (default 3)")
    parser.add_argument("--optimizers", help="comma-separated names (default: every built-in)")
    parser.add_argument("--steps", type=int, help="steps a trial (default: the task's)")
    parser.add_argument("--schedule", default="constant", help="(default constant)")
    parser.add_argument("--blas", choices=blas.CHOICES, default="auto", help="(default auto)")
    parser.add_argument(
        "--warm-cache", action="store_true", help="reuse MLX's kernels already built on disk"
    )
    args = parser.parse_args()
    if args.trials < 1 or (args.steps is not None and args.steps < 1):
        parser.error("--trials and --steps must be at least 1")
    cache = None if args.warm_cache else tempfile.mkdtemp(prefix="mlx-kernels-")
    if cache:
        # MLX asks for the temp directory whenever it builds a kernel.
        os.environ["TMPDIR"] = cache
    running = blas.load(args.blas)
    try:
        run(args, str(running) if running else "the platform's (not Linux)")
    finally:
        if cache:
            shutil.rmtree(cache, ignore_errors=True)


def run(args: argparse.Namespace, blas_name: str) -> None:
    from tuner.plugins import BUILTIN, load_plugins
    from tuner.space import SHARED

    registry = load_plugins()
    builtins = [
        name
        for name in registry.optimizers
        if registry.plugin_of("optimizer", name).source == BUILTIN
    ]
    names = args.optimizers.split(",") if args.optimizers else builtins
    unknown = [n for n in names if n not in registry.optimizers]
    if unknown:
        known = ", ".join(builtins)
        raise SystemExit(f"unknown optimizer(s): {', '.join(unknown)}; built-in: {known}")
    if args.schedule not in registry.schedules:
        raise SystemExit(f"unknown schedule '{args.schedule}'")
    task = registry.tasks["digits"].build()
    schedule = registry.schedules[args.schedule]
    steps = args.steps or task.steps
    print(
        f"digits: {steps} steps of {task.batch_size}, eval every {task.eval_every}; "
        f"{schedule.name} schedule, lr {SHARED['lr'].midpoint():g}, no warmup"
    )
    kernels = "already built ones reused" if args.warm_cache else "a new, empty cache"
    print(f"BLAS: {blas_name}; kernels: {kernels}")
    # Other processes' load moves the wall-clock rates: say how busy the machine was.
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.2f} on {os.cpu_count()} cores at the start")
    trials = f"{args.trials} trial{'s' if args.trials > 1 else ''}"
    print(f"{trials} a way, alternating, after 1 compiled trial that builds\n")

    # The widths are line()'s, so that each group's label sits over its columns.
    print(f"{'':10} {'step/s':^25}  {'trial/s':^24}  {'cpu':>6}  {'build':>6}")
    print(
        f"{'optimizer':10} {'eager':>8} {'compiled':>9} {'ratio':>6}  "
        f"{'eager':>7} {'compiled':>9} {'ratio':>6}  {'ratio':>6}  {'s':>6}  {'Δloss':>7}  "
        "compiled?"
    )
    measured = []
    for name in names:
        spec = registry.optimizers[name]
        m = measure(task, spec, schedule, default_sample(spec, schedule), steps, args.trials)
        measured.append(m)
        print(line(m), flush=True)
        for trouble in m.troubles():
            print(f"{'':10} {trouble}")

    compiles = [m for m in measured if m.ran_compiled]
    fell_back = [m for m in measured if not m.ran_compiled]
    print()
    for m in fell_back:
        print(f"{m.name} fell back to eager: {m.why_not()}")
    for label, rate in (
        ("step/s", Measured.step_rate),
        ("trial/s", Measured.trial_rate),
        ("cpu", Measured.cpu_rate),
    ):
        below = [f"{m.name} {m.ratio(rate):.2f}×" for m in compiles if m.ratio(rate) < TARGET]
        print(
            f"{label:>7}: {len(compiles) - len(below)} of {len(compiles)} that compile reach "
            f"{TARGET:g}× eager{'; below: ' + ', '.join(below) if below else ''}"
        )
    print(f"{len(fell_back)} of {len(measured)} fell back to eager")


def default_sample(optimizer: OptimizerSpec, schedule: ScheduleSpec) -> Sample:
    from tuner.space import SHARED, Sample

    return Sample(
        optimizer=optimizer.name,
        optimizer_params={k: p.midpoint() for k, p in optimizer.space.items()},
        schedule=schedule.name,
        schedule_params={k: p.midpoint() for k, p in schedule.space.items()},
        lr=SHARED["lr"].midpoint(),
        # No warmup: its steps are the schedule's arithmetic, not the optimizer's.
        warmup=0.0,
    )


def measure(
    task: Task,
    optimizer: OptimizerSpec,
    schedule: ScheduleSpec,
    sample: Sample,
    steps: int,
    trials: int,
) -> Measured:
    from tuner.graphs import GraphCache
    from tuner.train import run_trial

    # One cache per optimizer, as one search keeps one; dropping it frees the graph's state.
    graphs = GraphCache()

    def trial(seed: int, eager: bool) -> Timed:
        cpu = time.process_time()
        result = run_trial(
            task,
            optimizer,
            schedule,
            sample,
            steps=steps,
            batch_size=task.batch_size,
            eval_every=task.eval_every,
            seed=seed,
            graphs=graphs,
            eager=eager,
        )
        return Timed(result, time.process_time() - cpu)

    build = trial(0, eager=False)
    eager, compiled = [], []
    for seed in range(trials):
        eager.append(trial(seed, eager=True))
        compiled.append(trial(seed, eager=False))
    return Measured(optimizer.name, eager, compiled, build)


def line(m: Measured) -> str:
    ran = "yes" if m.ran_compiled else "NO: fell back"
    return (
        f"{m.name:10} {m.step_rate(m.eager):8,.0f} {m.step_rate(m.compiled):9,.0f} "
        f"{m.ratio(m.step_rate):5.2f}×  "
        f"{m.trial_rate(m.eager):7,.0f} {m.trial_rate(m.compiled):9,.0f} "
        f"{m.ratio(m.trial_rate):5.2f}×  {m.ratio(m.cpu_rate):5.2f}×  "
        f"{m.build.result.duration_s:6.2f}  {m.loss_gap():7.1e}  {ran}"
    )


if __name__ == "__main__":
    main()
