"""The installed ``tuner`` on a terminal (a pseudo-terminal), as a user who answers its
questions runs it."""

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time

from helpers import TUNER


def answer(args, reply, cwd, seconds=120, columns=None):
    """Run ``tuner`` with ``args`` on a terminal, ``columns`` wide where given, and type
    ``reply`` once it asks (``[y/N]``); its output and exit status."""
    master, slave = pty.openpty()
    env = dict(os.environ)
    if columns is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
        # Set, they would be read before the terminal's own size.
        env.pop("COLUMNS", None)
        env.pop("LINES", None)
    process = subprocess.Popen(
        [TUNER, *args], stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env
    )
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
