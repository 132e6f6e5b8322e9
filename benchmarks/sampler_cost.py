"""What TPE costs a trial on tuner's search space, as a study grows, for each way of modelling
the parameters: every optimizer's group jointly (``multivariate=True, group=True``, tuner's
sampler before 2026-12-01), jointly over the parameters every trial has (Optuna 5's default for
one objective, tuner's sampler since), and each on its own (``multivariate=False``).

Only the sampler is timed: each study runs in memory (no storage), and its objective samples
tuner's default space for ``digits`` (every built-in optimizer and schedule, with their own
parameters) through ``SearchSpace.sample``, as a search does, then returns a made-up value in
which one optimizer is better. Printed: the sampling time a trial over the first and the last
fifth of the trials, and their ratio::

    python benchmarks/sampler_cost.py [--trials 500]
"""

from __future__ import annotations

import argparse
import random
import time
import warnings
from typing import Any

import optuna

from tuner.plan import SearchConfig, plan_search
from tuner.plugins import load_plugins
from tuner.samplers import SeededPerTrial

WAYS: dict[str, dict[str, Any]] = {
    "groups": {"multivariate": True, "group": True},
    "shared jointly": {"multivariate": True, "group": False},
    "each alone": {"multivariate": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500, help="trials a study (default 500)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    space = plan_search(SearchConfig(task="digits", trials=args.trials), load_plugins()).space
    fifth = max(args.trials // 5, 1)
    print(f"TPE on tuner's space, {args.trials} trials in memory: ms of sampling a trial")
    print(f"{'':16}{'trials 1-' + str(fifth):>14}{'last ' + str(fifth):>12}{'growth':>9}")
    for way, options in WAYS.items():
        times = sampling_times(space, args.trials, options)
        first, last = (1000 * sum(part) / len(part) for part in (times[:fifth], times[-fifth:]))
        print(f"{way:16}{first:14.1f}{last:12.1f}{last / first:8.1f}×")


def sampling_times(space: Any, trials: int, options: dict[str, Any]) -> list[float]:
    """The seconds that sampling took in each trial of a seeded study."""
    sampler = SeededPerTrial(
        lambda seed, _: optuna.samplers.TPESampler(seed=seed, constant_liar=False, **options), 0
    )
    study = optuna.create_study(sampler=sampler)
    values = random.Random(0)
    times = []

    def objective(trial: optuna.Trial) -> float:
        began = time.perf_counter()
        sample = space.sample(trial)
        times.append(time.perf_counter() - began)
        return values.random() + (0.0 if sample.optimizer == "adamw" else 0.5)

    study.optimize(objective, n_trials=trials)
    return times


if __name__ == "__main__":
    main()
