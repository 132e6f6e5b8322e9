"""Running another checkout's tuner (a ``git worktree`` of an earlier commit, or a variant) with
this environment's packages, for the benchmarks that compare two versions in one sitting.

The installed ``tuner`` finds its own checkout's ``tuner`` and ``plugins`` (as
``tuner_builtins``); ``PYTHONPATH`` comes first, so the other checkout's ``tuner`` and a link
named ``tuner_builtins`` to its ``plugins`` take their place.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

COMMAND = [sys.executable, "-c", "from tuner.cli import main; main()"]


def checkout_env(directory: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` with ``directory``'s ``tuner`` and built-in plugins first on the path."""
    links = Path(tempfile.mkdtemp(prefix="tuner-checkout-"))
    (links / "tuner_builtins").symlink_to(directory.resolve() / "plugins")
    return {**env, "PYTHONPATH": f"{directory.resolve()}:{links}"}
