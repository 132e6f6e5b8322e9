"""Where a search's wall time goes: ``tuner search`` sampled by py-spy, its main thread's time
shared out by what it was doing (issue 14: the profile that says why bookkeeping is most of it).

Runs ``tuner search --task synthetic --trials N`` (tuner's defaults otherwise) on a new SQLite
file under ``py-spy record --format raw``, 200 samples a second, then sorts each sample of the
main thread by the first of these its stack holds, in this order: the pruner's
``should_prune``, TPE's sampling (``sample_relative``, ``sample_independent``,
``infer_relative_search_space``), a ``suggest_*`` call's storage writes, Optuna's ``report``,
tuner's record of a trial (``save_trial``), Optuna's ``tell``, tuner's count of finished trials
after each (``_take_stock``), the display, Optuna's ``ask`` (creating the trial, failing stale
ones), the MLX trial (``run_trial``: training, evals), and the rest (imports, start-up, the
study's creation). Optuna's heartbeat thread, which writes once a trial, is counted apart.

Needs py-spy (``pip install py-spy``), which reads the process from outside and barely slows
it. 400 trials take about a minute on a shared 2-core machine.

    python benchmarks/where_time_goes.py [--trials 400] [--blas bundled]
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TUNER = Path(sys.executable).with_name("tuner")
# (share, the frames that mark it), most specific first: TPE reads storage, suggest samples.
SHARES = (
    ("pruning checks (should_prune)", ("should_prune",)),
    ("TPE sampling", ("sample_relative", "sample_independent", "infer_relative_search_space")),
    ("suggest: storage writes", ("set_trial_param",)),
    ("report: storage writes", ("set_trial_intermediate_value",)),
    ("tuner's record (save_trial)", ("save_trial",)),
    ("Optuna tell", ("_tell_with_warning",)),
    ("finished count (_take_stock)", ("_take_stock",)),
    ("display", ("trial_ended",)),
    ("Optuna ask, stale-trial check", ("Study._ask", "fail_stale_trials", "_pop_waiting")),
    ("MLX trial (run_trial)", ("run_trial",)),
)


def share_of(stack: str) -> str:
    for name, marks in SHARES:
        if any(f"{mark} (" in stack for mark in marks):
            return name
    return "start-up, study creation, other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--blas", choices=["auto", "bundled"], default="auto")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or Path(sys.executable).with_name("py-spy")
    if not Path(spy).exists():
        sys.exit("this script needs py-spy: pip install py-spy")
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "raw.txt"
        command = [TUNER, "search", "--task", "synthetic", "--trials", str(args.trials)]
        command += ["--storage", f"sqlite:///{folder}/tuner.db", "--blas", args.blas, "--quiet"]
        record = [spy, "record", "--rate", "200", "--format", "raw", "--output", raw, "--"]
        subprocess.run([*record, *command], check=True, capture_output=True)
        main_thread: collections.Counter[str] = collections.Counter()
        heartbeat = 0
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if "HeartbeatThread" in stack:
                heartbeat += int(count) * ("Event.wait" not in stack)
            elif not stack.startswith("Thread._bootstrap"):
                main_thread[share_of(stack)] += int(count)
    total = sum(main_thread.values())
    print(
        f"tuner search --task synthetic --trials {args.trials} --blas {args.blas}: "
        f"{total / 200:.1f} s sampled on the main thread\n"
    )
    print(f"{'share of the main thread':36} {'time':>7}")
    for name, count in main_thread.most_common():
        print(f"{name:36} {count / total:7.1%}")
    print(
        f"\nOptuna's heartbeat thread, writing: {heartbeat / 200:.1f} s "
        f"({heartbeat / total:.1%} of the main thread's time)"
    )


if __name__ == "__main__":
    main()
