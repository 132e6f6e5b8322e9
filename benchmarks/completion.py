"""How long a TAB waits: shell completion of study names, of the optimizers a study used, and
of the registered names, on a storage of 10,000 trials (built as ``query_at_scale.py`` builds
its own, which takes a couple of minutes; ``--storage`` times one built before).

Each case is timed twice: a fresh ``tuner`` process, as bash runs it on every TAB (click's
``_TUNER_COMPLETE=bash_complete``), and the completion alone, in this process with every
module imported. The first line, completing a command's name, is the console script's own
start-up, which every completion pays::

    python benchmarks/completion.py [--trials 10000] [--repeat 7] [--keep]
    python benchmarks/completion.py --storage sqlite:///PATH
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from click.shell_completion import BashComplete
from query_at_scale import STUDY, build

from tuner.cli import cli

TUNER = Path(sys.executable).with_name("tuner")
CASES = [
    ("a command's name (start-up alone)", "tuner b"),
    ("study names", "tuner best "),
    ("the optimizers the study used", f"tuner best {STUDY} --optimizer "),
    ("registered optimizers, after a comma", "tuner search --optimizers adam,"),
    ("registered tasks", "tuner search --task "),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000, help="default 10000")
    parser.add_argument("--repeat", type=int, default=7, help="runs of each case (default 7)")
    parser.add_argument("--storage", metavar="URL", help="time a storage built before")
    parser.add_argument("--keep", action="store_true", help="keep the storage built")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    folder = None if args.storage else Path(tempfile.mkdtemp(prefix="tuner-completion-"))
    url = args.storage or f"sqlite:///{folder / 'bench.db'}"
    try:
        if folder:
            started = time.perf_counter()
            build(url, args.trials, steps=300)
            print(f"built {args.trials:,} trials in {time.perf_counter() - started:.0f} s: {url}")
        print(f"{'completing':<40} {'fresh process':>14} {'in-process':>11}  offered")
        for title, line in CASES:
            offered, fresh = in_a_fresh_process(line, url, args.repeat)
            alone = in_this_process(line, url, args.repeat)
            shown = ", ".join(offered[:3]) + (", …" if len(offered) > 3 else "")
            print(f"{title:<40} {ms(fresh):>14} {ms(alone):>11}  {shown}")
    finally:
        if folder and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


def in_a_fresh_process(line: str, url: str, repeat: int) -> tuple[list[str], float]:
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    env = {**os.environ, "TUNER_STORAGE": url, "_TUNER_COMPLETE": "bash_complete"}
    env |= {"COMP_WORDS": line, "COMP_CWORD": str(cword)}
    times, out = [], ""
    for _ in range(repeat):
        started = time.perf_counter()
        out = subprocess.run([TUNER], env=env, capture_output=True, text=True, check=True).stdout
        times.append(time.perf_counter() - started)
    return [entry.split(",", 1)[1] for entry in out.splitlines() if entry], statistics.median(times)


def in_this_process(line: str, url: str, repeat: int) -> float:
    words = line.split()
    args, incomplete = (words[1:], "") if line.endswith(" ") else (words[1:-1], words[-1])
    os.environ["TUNER_STORAGE"] = url
    complete = BashComplete(cli, {}, "tuner", "_TUNER_COMPLETE")
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        complete.get_completions(args, incomplete)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


if __name__ == "__main__":
    main()
