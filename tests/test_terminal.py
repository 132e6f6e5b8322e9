"""`tuner search` on a terminal, read from the screen as a person sees it: a pseudo-terminal of
100 columns, rendered by a VT100 emulator (pyte)."""

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time

import pyte
from helpers import TUNER

COLUMNS, LINES = 100, 40
STATUS = re.compile(r"(\d+)/(\d+) trials  (\d+:\d\d) elapsed  (\S+) left")


def screens(args, cwd, env, seconds=120, columns=COLUMNS):
    """Run ``tuner`` on a terminal: yield (seconds since the first output, screen text) each
    time the screen changes, until the process exits; then its exit status."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, columns, 0, 0))
    process = subprocess.Popen(
        [TUNER, *args], stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env
    )
    os.close(slave)
    screen = pyte.Screen(columns, LINES)
    stream = pyte.ByteStream(screen)
    first = None
    deadline = time.monotonic() + seconds
    shots = []
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal's other end closed: the process is done
                break
            if not data:
                break
            first = first or time.monotonic()
            stream.feed(data)
            shots.append((time.monotonic() - first, "\n".join(screen.display)))
        return shots, process.wait(timeout=30)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()


def test_the_study_and_a_status_line_come_at_once_and_the_clock_runs_while_kernels_build(
    tmp_path,
):
    # MLX keeps its built kernels under the temporary folder: a new one makes it build them.
    env = {**os.environ, "TMPDIR": str(tmp_path), "TERM": "xterm"}
    args = ["search", "--task", "synthetic", "--optimizers", "adam", "--schedules", "constant"]

    shots, status = screens([*args, "--trials", "12", "--study", "seen"], tmp_path, env)

    assert status == 0
    early = [screen for at, screen in shots if at <= 2]
    assert any(
        "Study seen (new) in sqlite:///tuner.db" in screen and STATUS.search(screen)
        for screen in early
    ), early[-1]
    building = {}
    for _, screen in shots:
        line = next((row for row in screen.splitlines() if STATUS.search(row)), "")
        if "building kernels for adam+constant" in line:
            building.setdefault(line.split("  trial ")[-1], set()).add(STATUS.search(line)[3])
    assert any(len(clocks) >= 2 for clocks in building.values()), building
    training = re.compile(r"trial \d+: adam\+constant step \d+/100")
    assert any(training.search(screen) for _, screen in shots)
    lefts = [STATUS.search(s)[4] for _, s in shots if STATUS.search(s)]
    assert lefts[0] == "?"
    assert any(left.startswith("~") for left in lefts)
    assert "Top 5 of " in shots[-1][1]


def test_the_confirmation_runs_to_come_are_in_the_time_left_and_a_cut_line_names_the_seed(
    tmp_path,
):
    env = {**os.environ, "TMPDIR": str(tmp_path), "TERM": "xterm"}
    args = ["search", "--task", "synthetic", "--optimizers", "adam", "--schedules", "constant"]
    # Runs of a second or two each, three of them after the search.
    args += ["--trials", "3", "--steps", "6000", "--eval-every", "2000", "--pruner", "none"]
    args += ["--confirm", "1x3", "--jobs", "1", "--study", "c"]

    shots, status = screens(args, tmp_path, env, columns=80)

    assert status == 0
    first = re.compile(r"confirming trial \d+, seed 1/3")
    confirming = [row for _, screen in shots for row in screen.splitlines() if first.search(row)]
    assert confirming, shots[-1][1]
    lefts = {STATUS.search(row)[4] for row in confirming}
    # Two runs at least are still to come, each as long as a trial's 6000 steps.
    assert "~0:00" not in lefts and "?" not in lefts, lefts
