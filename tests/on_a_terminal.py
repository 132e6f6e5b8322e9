"""The installed ``tuner`` on a terminal (a pseudo-terminal), as a user who answers its
questions runs it."""

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

TUNER = Path(sys.executable).with_name("tuner")


def answer(args, reply, cwd, seconds=120):
    """Run ``tuner`` with ``args`` on a terminal and type ``reply`` once it asks (``[y/N]``);
    its output and exit status."""
    master, slave = pty.openpty()
    process = subprocess.Popen([TUNER, *args], stdin=slave, stdout=slave, stderr=slave, cwd=cwd)
    os.close(slave)
    output = b""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            output += data
            if output.endswith(b"[y/N]: "):
                os.write(master, reply)
        return output.decode(), process.wait(timeout=30)
    finally:
        os.close(master)
