"""How this process was started, for the commands that tuner prints to be run next (after a
search, in a report): the first word of each is the program a shell would run.

The console script records it; everything that prints a command reads it, the report as much
as the command line, so it lives below both.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

# How this process was started (sys.argv[0]) when through the console script; None when tuner
# is a library (tuner.search, click's test runner).
_invoked_as: str | None = None


def started_as(argv0: str) -> None:
    """Record that the console script started this process, as ``argv0``."""
    global _invoked_as
    _invoked_as = argv0


def program() -> str:
    """The first word of a command printed to be run: ``tuner`` where a shell finds this
    tuner by that name; otherwise the path it was invoked by, as ``.venv/bin/tuner`` is
    before its virtual environment is activated."""
    if _invoked_as is None:
        return "tuner"
    found = shutil.which("tuner")
    if found is not None and Path(found).resolve() == Path(_invoked_as).resolve():
        return "tuner"
    return shlex.quote(_invoked_as)
