"""How big populations would be if tuner grouped trials sampled freely rather than sampling a
family first (issue 18, "who trains together").

Runs ``tuner search --population 1`` (every trial sampled as it is today, the optimizer and
schedule included) on ``digits`` into a temporary SQLite file, then splits its sampled trials
(the known-good defaults left out) in the order Optuna numbered them into runs of ``--size``,
as a worker asking ``--size`` trials at once would get them, and groups each run by family:
the optimizer, the schedule, the warmup and their discrete settings, what a graph key holds.
Printed: the mean population that grouping gives, and the share of trials left alone in it.
Nothing is asserted.

    python benchmarks/free_grouping.py [--trials 160] [--size 16] [--seed 0]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TUNER = Path(sys.executable).with_name("tuner")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=160)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tuner-grouping-") as folder:
        url = f"sqlite:///{folder}/tuner.db"
        command = [str(TUNER), "search", "--population", "1", "--trials", str(args.trials)]
        command += ["--seed", str(args.seed), "--confirm", "0", "--storage", url, "--quiet"]
        study = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        from tuner import open_results
        from tuner.graphs import graph_settings
        from tuner.plugins import load_plugins
        from tuner.space import Sample, SearchSpace

        with open_results(url) as results:
            name = study.strip().splitlines()[-1]
            space = SearchSpace.from_json(results.settings(name)["space"])
            trials = [t for t in results.trials(name, sort="number") if t.default is None]
    optimizers = load_plugins().optimizers

    def family(params: dict) -> tuple:
        sample = Sample.from_params(params, space.task)
        return tuple(
            sorted(graph_settings(optimizers[sample.optimizer], sample, space.task).items())
        )

    sizes = []
    for start in range(0, len(trials) - args.size + 1, args.size):
        run = trials[start : start + args.size]
        families: dict[tuple, int] = {}
        for trial in run:
            key = family(trial.params)
            families[key] = families.get(key, 0) + 1
        sizes += [families[family(t.params)] for t in run]
    print(f"{len(trials)} sampled trials of a --population 1 search on digits, seed {args.seed}")
    print(f"grouped by family in runs of {args.size}, as they were sampled:")
    mean, median = statistics.mean(sizes), statistics.median(sizes)
    print(f"  a trial's population: mean {mean:.2f}, median {median:g}")
    print(f"  trials left alone: {sizes.count(1) / len(sizes):.0%}")


if __name__ == "__main__":
    main()
