"""Trials a minute of ``tuner search --jobs 2`` against ``--jobs 1`` on ``digits`` (issue 16:
at least 1.8× on a 2-core machine).

Each run is ``tuner search --task digits --timeout SECONDS --jobs N --confirm 0`` on a new
SQLite file, with a trial count it cannot reach, so that the timeout ends it; then the study's
finished trials (complete and pruned, every worker's) are counted from Optuna's storage and
divided by the search's wall time, from the process's start to its exit. The runs alternate,
``--jobs 1`` first, ``--repeats`` times, after one short run that builds the kernels, and the
medians and their ratio are printed. Nothing is asserted.

    python benchmarks/jobs.py [--seconds 30] [--repeats 2] [--jobs 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

TUNER = Path(sys.executable).with_name("tuner")
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def trials_a_minute(jobs: int, seconds: float, folder: str) -> tuple[float, int, float]:
    url = f"sqlite:///{folder}/jobs-{jobs}-{time.monotonic_ns()}.db"
    command = [TUNER, "search", "--task", "digits", "--trials", "100000", "--study", "s"]
    command += ["--timeout", str(seconds), "--jobs", str(jobs), "--confirm", "0"]
    command += ["--storage", url, "--quiet"]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - started
    finished = len(optuna.load_study(study_name="s", storage=url).get_trials(states=FINISHED))
    return finished / wall * 60, finished, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rates: dict[int, list[float]] = {1: [], args.jobs: []}
    with tempfile.TemporaryDirectory() as folder:
        trials_a_minute(1, 5, folder)
        for _ in range(args.repeats):
            for jobs in rates:
                rate, finished, wall = trials_a_minute(jobs, args.seconds, folder)
                rates[jobs].append(rate)
                print(f"--jobs {jobs}: {finished} trials in {wall:.1f} s, {rate:.0f} a minute")
    one, many = (statistics.median(rates[jobs]) for jobs in rates)
    print(f"\nmedian trials a minute: --jobs 1 {one:.0f}, --jobs {args.jobs} {many:.0f}")
    print(f"ratio: {many / one:.2f}× (target at least 1.8× for --jobs 2 on 2 cores)")


if __name__ == "__main__":
    main()
