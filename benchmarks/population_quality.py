"""What populations do to the answer of a search in a fixed time (issues 18 and 26: who trains
together, how many and from when, chosen by the answer's quality in the same time).

For each seed, runs ``tuner search --timeout SECONDS`` on ``digits`` (its defaults otherwise,
the known-good defaults included, no confirmation) each way, one after the other, each into a
temporary SQLite file: ``--population`` ``1`` (every trial trained alone), ``auto`` (the
default) and ``16`` (from the first trial), and the default search of each ``--checkout DIR``
(another checkout of the repository, an earlier commit or a variant of this one, run with this
environment's packages: ``checkout.py``). Printed for each: the trials finished, the best
complete trial's validation loss (the search's objective) and accuracy, how many optimizer
families (an optimizer and its Int/Choice settings, what a population's members share) its
complete trials tried, and the mean population (the trials over the trainings they took, a
trial trained alone counting as one); then the medians over the seeds. Nothing is asserted.

    python benchmarks/population_quality.py [--seconds 60] [--seeds 3]
        [--populations 1,auto,16] [--checkout DIR ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from checkout import COMMAND, checkout_env

TUNER = Path(sys.executable).with_name("tuner")
WAYS = ("1", "auto", "16")


def search(seconds: float, seed: int, way: str) -> tuple[int, float, float, int, float]:
    """Trials finished, best validation loss and accuracy, families tried, mean population."""
    from tuner import open_results
    from tuner.graphs import graph_settings
    from tuner.plugins import load_plugins
    from tuner.space import Sample, SearchSpace

    env = dict(os.environ)
    command = [str(TUNER), "search", "--population", way]
    if Path(way).is_dir():
        env, command = checkout_env(Path(way), env), [*COMMAND, "search"]
    with tempfile.TemporaryDirectory(prefix="tuner-quality-") as folder:
        url = f"sqlite:///{folder}/tuner.db"
        command += ["--timeout", str(seconds), "--trials", "1000000", "--seed", str(seed)]
        command += ["--confirm", "0", "--storage", url, "--study", "q", "--quiet"]
        subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        with open_results(url) as results:
            space = SearchSpace.from_json(results.settings("q")["space"])
            best = results.best("q", 1)[0]
            trials = results.trials("q")
    finished = [t for t in trials if t.outcome in ("complete", "pruned", "diverged")]
    complete = [t for t in trials if t.outcome == "complete"]
    optimizers = load_plugins().optimizers
    samples = [Sample.from_params(t.params, space.task) for t in complete]
    families = {
        tuple(sorted(graph_settings(optimizers[s.optimizer], s, space.task).items()))
        for s in samples
    }
    trainings = {t.number if t.population is None else -1 - t.population for t in trials}
    mean = len(trials) / max(len(trainings), 1)
    return len(finished), best.value, best.metrics["accuracy"], len(families), mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--populations", default=",".join(WAYS), help="e.g. 1,auto")
    parser.add_argument("--checkout", action="append", default=[], help="another checkout")
    args = parser.parse_args()
    ways = [*args.populations.split(","), *args.checkout]
    rows: dict[str, list[tuple[int, float, float, int, float]]] = {way: [] for way in ways}
    print(f"tuner search on digits, {args.seconds:g} s each, --population or checkout as below")
    head = f"{'trials':>6}  {'best val_loss':>13}  {'val acc':>7}  {'families':>8}  {'mean pop':>8}"
    width = max(len(way) for way in ways)
    print(f"{'seed':>4}  {'way':<{width}}  {head}")

    def line(seed: str, way: str, row: tuple) -> str:
        trials, loss, acc, families, mean = row
        return (
            f"{seed:>4}  {way:<{width}}  {trials:>6g}  {loss:>13.5f}  {acc:>7.1%}  "
            f"{families:>8g}  {mean:>8.2f}"
        )

    for seed in range(args.seeds):
        for way in ways:
            rows[way].append(search(args.seconds, seed, way))
            print(line(str(seed), way, rows[way][-1]), flush=True)
    print("medians")
    for way in ways:
        print(line("", way, tuple(statistics.median(c) for c in zip(*rows[way], strict=True))))


if __name__ == "__main__":
    main()
