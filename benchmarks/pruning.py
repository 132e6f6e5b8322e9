"""The pruner's calibration (issue 15, item 1): for candidate pruners, the training steps a search
spends and the best value it reaches, on ``digits`` and ``synthetic`` over three seeds.

Each search runs in this process through ``tuner.api.prepare`` and ``tuner.api.run``, as
``tuner search`` runs it (TPE, the task's own steps and eval points, the BLAS ``--blas`` picks;
no confirmation runs, ``--confirm 0``), on a new SQLite file in a temporary folder, with the
candidate in place of the pruner that ``--pruner`` names. The known-good defaults stay on: they
are the first trials of every search a user runs, and the pruner's first judgements fall on
them. The searches of one task and seed draw the same first trials; then what the pruner stops
changes what TPE learns.

The candidates differ in when a trial may first be judged (at the first eval, at a third or
half of the steps, always after 5 finished trials), against what (Optuna's way: the complete
trials' values at that step; or every finished trial's, pruned ones too) and how hard (stopped
when behind the median, or only when among the worst quarter). Hyperband and successive halving
are Optuna's, as ``--pruner hyperband`` and ``sha`` make them; the one marked default is what
``--pruner median`` makes now. Optuna's Wilcoxon pruner is left out: it pairs a trial's values
with the best trial's instance by instance, and a learning curve's evals are no such instances.

Read back from tuner's record, for each search:

- steps: the training steps of all its trials, complete, pruned and diverged;
- best: the best ``val_loss`` of a complete trial (a pruned trial's value is from an earlier
  step), and on ``digits`` that trial's validation accuracy;
- none@steps: the best complete ``val_loss`` of the search without pruning, same seed, when it
  had spent as many steps, its trials counted in order: what the steps saved bought there;
- pruned: the share of its trials that were pruned, and that share among the trials with a
  warmup and among those with a peak rate below the median of its trials' rates.

Two more come from the searches without pruning, whose trials all ran to the end:

- best stopped: those trials reported again, in order, to each candidate in memory; how many of
  each seed's five best complete trials it would have stopped. This is its cost in good trials,
  apart from what TPE does with the steps it saves;
- at each eval step, the rank correlation (Spearman) of the trials' values then with their
  final values, and how many of the trials that finished in the best quarter were then, by
  their best value so far, behind the median or among the worst quarter of all trials.

Printed per task: medians over seeds, ratios to no pruning taken seed by seed, and each seed's
best. Nothing is asserted. The best of one short search varies more between seeds than between
most candidates; read it with the steps and the trials stopped. ``s`` is the seconds of each
candidate's searches together, kernel builds included (most in the first, ``none``). The default
run took 8 minutes on a shared 2-core machine that other jobs kept busy (5 min 45 s of CPU;
2026-12-01)::

    python benchmarks/pruning.py [--trials digits=40,synthetic=80] [--seeds 0,1,2]
                                 [--tasks digits,synthetic] [--only NAME,NAME]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from scipy.stats import spearmanr

from tuner import blas, open_results
from tuner.api import prepare, run
from tuner.plan import SearchConfig, plan_search
from tuner.plugins import load_plugins
from tuner.samplers import MedianAsTrialBegan, PercentileOfFinished, make_pruner

Pruner = Callable[[int, int], optuna.pruners.BasePruner]
TOP = 5
STUDY = "s"


def candidates() -> dict[str, Pruner]:
    """Each candidate, made from a task's steps and eval interval as ``make_pruner`` makes one."""

    def complete(percentile: float, first: Callable[[int, int], int]) -> Pruner:
        return lambda steps, every: optuna.pruners.PercentilePruner(
            percentile, n_startup_trials=5, n_warmup_steps=first(steps, every)
        )

    def finished(percentile: float, first: Callable[[int, int], int]) -> Pruner:
        return lambda steps, every: PercentileOfFinished(
            percentile, n_startup_trials=5, n_warmup_steps=first(steps, every), n_min_trials=5
        )

    def eval_1(steps: int, every: int) -> int:
        return every

    def third(steps: int, every: int) -> int:
        return steps // 3

    def half(steps: int, every: int) -> int:
        return steps // 2

    return {
        "none": lambda steps, every: optuna.pruners.NopPruner(),
        "median of complete from eval 1 (old)": lambda steps, every: MedianAsTrialBegan(
            n_startup_trials=5, n_warmup_steps=every
        ),
        "median of complete from half": complete(50, half),
        "worst 25% of complete from eval 1": complete(75, eval_1),
        "median of all from eval 1": finished(50, eval_1),
        "median of all from half": finished(50, half),
        "worst 25% of all from eval 1 (default)": lambda steps, every: make_pruner(
            "quartile", steps, every
        ),
        "worst 25% of all from a third": finished(75, third),
        "hyperband": lambda steps, every: make_pruner("hyperband", steps, every),
        "successive halving": lambda steps, every: make_pruner("sha", steps, every),
    }


@dataclass
class Search:
    steps: int
    best: float
    accuracy: float | None
    pruned: float
    pruned_warmup: float
    pruned_low_lr: float
    curve: list[tuple[int, float]]  # steps spent and best complete value, after each trial
    seconds: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trials",
        default="digits=40,synthetic=80",
        help="trials a search, by task (default digits=40,synthetic=80)",
    )
    parser.add_argument("--seeds", default="0,1,2", help="study seeds (default 0,1,2)")
    parser.add_argument("--tasks", default="digits,synthetic", help="(default digits,synthetic)")
    parser.add_argument("--only", default="", help="the candidates to run besides none, by name")
    args = parser.parse_args()
    blas.load()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    budget = {task: int(n) for task, n in (pair.split("=") for pair in args.trials.split(","))}
    seeds = [int(seed) for seed in args.seeds.split(",")]
    chosen = candidates()
    if args.only:
        wanted = {"none", *args.only.split(",")}
        chosen = {name: make for name, make in chosen.items() if name in wanted}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for task in args.tasks.split(","):
            plan = plan_search(SearchConfig(task=task), load_plugins())
            unpruned = [Path(folder) / f"{task}-none-{seed}.db" for seed in seeds]
            runs, stopped = {}, {}
            for number, (name, make) in enumerate(chosen.items()):
                paths = (
                    unpruned
                    if name == "none"
                    else [Path(folder) / f"{task}-{number}-{seed}.db" for seed in seeds]
                )
                runs[name] = [
                    search(task, budget[task], seed, make, path)
                    for seed, path in zip(seeds, paths, strict=True)
                ]
                stopped[name] = sum(
                    replay(path, make, plan.steps, plan.eval_every) for path in unpruned
                )
            report(task, budget[task], seeds, runs, stopped)
            foresight(unpruned)
    print(f"\n{time.perf_counter() - began:.0f} s in all")


def search(task: str, trials: int, seed: int, make: Pruner, path: Path) -> Search:
    """Run one search with ``make``'s pruner into a new SQLite file at ``path``."""
    storage = f"sqlite:///{path}"
    # No confirmation runs: they train the winners again after the search, whatever pruned it.
    config = SearchConfig(task=task, trials=trials, seed=seed, study=STUDY, confirm=(0, 0))
    began = time.perf_counter()
    with pruner_in_place(make):
        run(prepare(config, load_plugins(), storage), storage)
    seconds = time.perf_counter() - began
    with open_results(storage) as results:
        stored = sorted(results.trials(STUDY), key=lambda trial: trial.number)
    complete = [t for t in stored if t.outcome == "complete" and t.value is not None]
    best = min(complete, key=lambda t: t.value)
    counted = {t.number for t in complete}
    low = statistics.median(t.params["lr"] for t in stored)
    curve, spent, best_so_far = [], 0, float("inf")
    for trial in stored:
        spent += trial.steps or 0
        if trial.number in counted:
            best_so_far = min(best_so_far, trial.value)
        curve.append((spent, best_so_far))
    return Search(
        steps=spent,
        best=best.value,
        accuracy=best.metrics.get("accuracy"),
        pruned=share(t.outcome == "pruned" for t in stored),
        pruned_warmup=share(t.outcome == "pruned" for t in stored if t.params["warmup"] > 0),
        pruned_low_lr=share(t.outcome == "pruned" for t in stored if t.params["lr"] < low),
        curve=curve,
        seconds=seconds,
    )


@contextmanager
def pruner_in_place(make: Pruner) -> Iterator[None]:
    """Searches run in this process with ``make``'s pruner, whatever ``--pruner`` says."""
    import tuner.study  # imports MLX: after blas.load()

    original = tuner.study.make_pruner
    tuner.study.make_pruner = lambda name, steps, every: make(steps, every)
    try:
        yield
    finally:
        tuner.study.make_pruner = original


def share(flags: Iterable[bool]) -> float:
    flags = list(flags)
    return sum(flags) / len(flags) if flags else float("nan")


def replay(path: Path, make: Pruner, steps: int, every: int) -> int:
    """How many of the five best complete trials of the search without pruning at ``path``
    ``make``'s pruner stops when that search's trials are reported to it again, in order."""
    recorded = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{path}").trials
    complete = [t for t in recorded if t.state == optuna.trial.TrialState.COMPLETE]
    top = {t.number for t in sorted(complete, key=lambda t: t.value)[:TOP]}
    # Named: Hyperband puts a trial in a bracket by a hash of the study name and its number.
    study = optuna.create_study(study_name=STUDY, pruner=make(steps, every))
    stopped = 0
    for original in recorded:
        trial = study.ask()
        for step, value in sorted(original.intermediate_values.items()):
            trial.report(value, step)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                stopped += original.number in top
                break
        else:
            if original.state == optuna.trial.TrialState.COMPLETE:
                study.tell(trial, original.value)
            else:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return stopped


def report(
    task: str, trials: int, seeds: list[int], runs: dict[str, list[Search]], stopped: dict[str, int]
) -> None:
    baseline = runs["none"]
    digits = baseline[0].accuracy is not None
    print(
        f"\n{task}: {trials} trials a search, seeds {','.join(map(str, seeds))}; "
        "medians over seeds, ratios to no pruning seed by seed"
    )
    print(
        f"{'pruner':40}{'steps':>7}{'× none':>8}{'best':>8}{'× none':>8}  {'by seed':<21}"
        f"{'none@steps':>10}"
        + (f"{'acc':>7}" if digits else "")
        + f"{'pruned':>8}{'warmup':>8}{'low lr':>8}{'best stopped':>14}{'s':>5}"
    )
    for name, searches in runs.items():
        pairs = list(zip(searches, baseline, strict=True))
        at_steps = [
            next((best for spent, best in reversed(none.curve) if spent <= mine.steps), np.nan)
            for mine, none in pairs
        ]
        print(
            f"{name:40}"
            f"{med(s.steps for s in searches):7.0f}"
            f"{med(s.steps / n.steps for s, n in pairs):8.2f}"
            f"{med(s.best for s in searches):8.4f}"
            f"{med(s.best / n.best for s, n in pairs):8.2f}"
            f"  {' '.join(f'{s.best:.4f}' for s in searches):21}"
            f"{med(at_steps):10.4f}"
            + (f"{100 * med(s.accuracy for s in searches):6.1f}%" if digits else "")
            + f"{100 * med(s.pruned for s in searches):7.0f}%"
            f"{100 * med(s.pruned_warmup for s in searches):7.0f}%"
            f"{100 * med(s.pruned_low_lr for s in searches):7.0f}%"
            f"{stopped[name]:>8}/{TOP * len(seeds):<5}"
            f"{sum(s.seconds for s in searches):5.0f}"
        )


def foresight(paths: list[Path]) -> None:
    """What each eval of the searches without pruning said of their trials' final values."""
    rhos: dict[int, list[float]] = {}
    behind: dict[int, list[int]] = {}
    top = 0
    for path in paths:
        recorded = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{path}").trials
        complete = [t for t in recorded if t.state == optuna.trial.TrialState.COMPLETE]
        finals = np.array([t.value for t in complete])
        best = [t for t in complete if t.value <= np.quantile(finals, 0.25)]
        top += len(best)
        for step in sorted(complete[0].intermediate_values):
            then = np.array([t.intermediate_values[step] for t in complete])
            rhos.setdefault(step, []).append(spearmanr(then, finals).statistic)
            so_far = [min(v for s, v in t.intermediate_values.items() if s <= step) for t in best]
            counts = behind.setdefault(step, [0, 0])
            counts[0] += sum(value > np.quantile(then, 0.5) for value in so_far)
            counts[1] += sum(value > np.quantile(then, 0.75) for value in so_far)
    print(
        "\nwithout pruning, at each eval: rank correlation with the final value (median over "
        f"seeds); of the {top} trials that finished in their search's best quarter, how many "
        "were then behind the median, and among the worst quarter"
    )
    print(f"{'step':>6}{'rho':>7}{'behind median':>15}{'worst quarter':>15}")
    for step, values in rhos.items():
        print(f"{step:6}{med(values):7.2f}{behind[step][0]:>15}{behind[step][1]:>15}")


def med(values: Iterable[float]) -> float:
    return statistics.median(values)


if __name__ == "__main__":
    main()
