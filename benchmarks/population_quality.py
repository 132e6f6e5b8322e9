"""What populations do to the answer of a search of a fixed number of trials (issue 18: who
trains together, and how many, chosen by the answer's quality as well as speed).

For each seed, runs ``tuner search`` on ``digits`` (its defaults otherwise, the known-good
defaults included, no confirmation) with ``--population 1`` (each trial sampled whole, as
before populations), ``auto`` (the default) and ``16`` from the first trial, each into a
temporary SQLite file, one after the other. Printed for each: the best complete trial's
validation loss (the search's objective) and accuracy, how many families (optimizer, schedule,
warmup and discrete settings: what a population shares) its complete trials tried, and the
search's wall time; then the medians over the seeds. Nothing is asserted.

    python benchmarks/population_quality.py [--trials 120] [--seeds 3] [--populations 1,auto,16]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TUNER = Path(sys.executable).with_name("tuner")
WAYS = ("1", "auto", "16")


def search(trials: int, seed: int, population: str) -> tuple[float, float, int, float]:
    """Best validation loss and accuracy, families tried, and seconds of one search."""
    from tuner import open_results
    from tuner.companions import family
    from tuner.space import SearchSpace

    with tempfile.TemporaryDirectory(prefix="tuner-quality-") as folder:
        url = f"sqlite:///{folder}/tuner.db"
        command = [str(TUNER), "search", "--trials", str(trials), "--seed", str(seed)]
        command += ["--population", population, "--confirm", "0", "--storage", url, "--quiet"]
        begun = time.perf_counter()
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        seconds = time.perf_counter() - begun
        with open_results(url) as results:
            name = out.strip().splitlines()[-1]
            space = SearchSpace.from_json(results.settings(name)["space"])
            best = results.best(name, 1)[0]
            complete = results.trials(name, state="complete")
    families = {tuple(sorted(family(space, t.params).items())) for t in complete}
    return best.value, best.metrics["accuracy"], len(families), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=120)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--populations", default=",".join(WAYS), help="e.g. 1,auto")
    args = parser.parse_args()
    ways = args.populations.split(",")
    rows: dict[str, list[tuple[float, float, int, float]]] = {way: [] for way in ways}
    print(f"tuner search on digits, {args.trials} trials, --population as below")
    print(
        f"{'seed':>4}  {'population':>10}  {'best val_loss':>13}  {'val acc':>7}  "
        f"{'families':>8}  {'seconds':>7}"
    )
    for seed in range(args.seeds):
        for way in ways:
            rows[way].append(search(args.trials, seed, way))
            loss, acc, families, seconds = rows[way][-1]
            print(
                f"{seed:>4}  {way:>10}  {loss:>13.5f}  {acc:>7.1%}  {families:>8}  {seconds:>7.1f}"
            )
    print("medians")
    for way in ways:
        loss, acc, families, seconds = (statistics.median(c) for c in zip(*rows[way], strict=True))
        print(f"{'':>4}  {way:>10}  {loss:>13.5f}  {acc:>7.1%}  {families:>8g}  {seconds:>7.1f}")


if __name__ == "__main__":
    main()
