"""What a person sees in the first seconds of ``tuner search`` on a terminal, and how well its
time-left estimate predicts the end.

Runs the default ``tuner search`` (60 trials on digits) on a 100-column pseudo-terminal,
renders the screen with a VT100 emulator (pyte, from the test extras), and prints when the
study's name and the status line first appear, how many clock values the status line showed
while MLX built kernels, and the first time-left estimate against the time really left.
``--cold`` gives the search a new temporary folder, where MLX keeps its built kernels, as on a
machine that has never run it, and then counts the kernel sources MLX wrote there.

Also printed: how many graphs the search compiled, counted from its trials: the distinct
optimizers with their Int/Choice settings (what selects a graph, issue 26), and, beside it, the
same with the schedule, its Int/Choice settings and the warmup added (what selected one before).

``--checkout DIR`` runs the tuner of another checkout of the repository (a ``git worktree`` of
an earlier commit, say) with this environment's packages (``checkout.py``), so that two
versions can be timed in one sitting: run it once with and once without.

    python benchmarks/first_screen.py [--cold] [--trials 60] [--checkout DIR]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

import pyte
from checkout import COMMAND, checkout_env

TUNER = Path(sys.executable).with_name("tuner")
COLUMNS, LINES = 100, 40
STATUS = re.compile(r"(\d+)/(\d+) trials  (\d+):(\d\d) elapsed  (\S+) left")


def screens(command: list[str], cwd: str, env: dict[str, str]) -> list[tuple[float, str]]:
    """Each screen the search shows, with the seconds since it started."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    started = time.monotonic()
    process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env)
    os.close(slave)
    screen = pyte.Screen(COLUMNS, LINES)
    stream = pyte.ByteStream(screen)
    shots = []
    while True:
        if not select.select([master], [], [], 0.05)[0]:
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # the other end closed: the search is over
            break
        if not data:
            break
        stream.feed(data)
        shots.append((time.monotonic() - started, "\n".join(screen.display)))
    os.close(master)
    if process.wait() != 0:
        raise SystemExit(f"tuner search exited with {process.returncode}")
    return shots


def graphs(url: str) -> tuple[int, int]:
    """Distinct graph keys among the search's trials: by optimizer and its Int/Choice settings,
    and by those with the schedule, its Int/Choice settings and the warmup."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    (summary,) = optuna.get_all_study_summaries(url)
    study = optuna.load_study(study_name=summary.study_name, storage=url)
    now, before = set(), set()
    for trial in study.trials:
        chosen = {
            name: value
            for name, value in trial.params.items()
            if not isinstance(trial.distributions[name], optuna.distributions.FloatDistribution)
        }
        optimizer = trial.params["optimizer"]
        own = {k: v for k, v in chosen.items() if k.startswith(f"{optimizer}.")}
        now.add((optimizer, *sorted(own.items())))
        # The warmup is a Choice, so the trial's Int/Choice parameters hold it too.
        before.add(tuple(sorted(chosen.items())))
    return len(now), len(before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", action="store_true", help="start with no built kernels")
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--checkout", type=Path, help="run this checkout's tuner")
    options = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="tuner-first-screen-")
    env = {**os.environ, "TERM": "xterm"}
    if options.cold:
        env["TMPDIR"] = folder
    command = [str(TUNER)]
    if options.checkout:
        env, command = checkout_env(options.checkout, env), COMMAND
    shots = screens([*command, "search", "--trials", str(options.trials)], folder, env)
    total = shots[-1][0]
    first = shots[0][0]
    named = next(at for at, shot in shots if " (new) in " in shot)
    status = next(at for at, shot in shots if STATUS.search(shot))
    clocks = set()
    for _, shot in shots:
        line = next((row for row in shot.splitlines() if STATUS.search(row)), "")
        if "building kernels" in line:
            clocks.add(STATUS.search(line).group(3, 4))
    lefts = [(at, found[5]) for at, shot in shots if (found := STATUS.search(shot))]
    estimate = next(((at, left) for at, left in lefts if left != "?"), None)
    print(f"tuner: {options.checkout or 'this checkout'}")
    print(f"kernels: {'cold (new TMPDIR)' if options.cold else 'as built before'}")
    if options.cold:
        print(f"kernel sources built: {sum(1 for _ in Path(folder).rglob('*.cpp'))}")
    print(
        "graphs: {} by optimizer and its choices, {} with the schedule and warmup too".format(
            *graphs(f"sqlite:///{folder}/tuner.db")
        )
    )
    print(f"whole search: {total:.1f} s; first output at {first:.2f} s")
    print(f"study named at {named:.2f} s, status line at {status:.2f} s")
    print(f"clock values shown while kernels built: {len(clocks)}")
    if estimate:
        at, left = estimate
        minutes, seconds = left.lstrip("~").split(":")
        said = int(minutes) * 60 + int(seconds)
        print(
            f"first time-left estimate at {at:.1f} s: {left} ({said} s) against "
            f"{total - at:.0f} s really left, ratio {said / max(total - at, 1e-9):.2f}"
        )


if __name__ == "__main__":
    main()
