"""The other workers of ``tuner search --jobs N``: ``tuner worker`` processes on the study that
the search made, started as soon as it exists, and stopped with it.

Each is a process of its own, so that each trains on a core of its own with its own BLAS thread
and its own database connections: Optuna's distributed mode on one machine, no scheduler.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def job_count(jobs: int) -> int:
    """``--jobs``' count of worker processes: 0 means one a core."""
    return jobs or os.cpu_count() or 1


class Helpers:
    """``count`` ``tuner worker`` processes beside the search's own, each until the study holds
    ``trials`` finished trials or ``timeout`` seconds pass."""

    def __init__(
        self,
        count: int,
        storage: str,
        trials: int,
        timeout: float | None,
        plugins: Sequence[str],
        population: int | None = None,
    ) -> None:
        self.count = count
        self.storage = storage
        self.trials = trials
        self.timeout = timeout
        self.plugins = plugins
        self.population = population
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, study: str) -> None:
        command = [str(Path(sys.executable).with_name("tuner")), "worker", study]
        command += ["--trials", str(self.trials), "--storage", self.storage]
        command += ["--confirm", "0", "--quiet"]
        command += ["--population", str(self.population or "auto")]
        command += ["--timeout", str(self.timeout)] if self.timeout is not None else []
        for plugin in self.plugins:
            command += ["--plugin", plugin]
        # Their errors reach the terminal as they happen; their output is the study's name.
        self.processes = [
            subprocess.Popen(command, stdout=subprocess.DEVNULL) for _ in range(self.count)
        ]

    def stop(self, signum: int) -> None:
        """Stop each as the search was stopped: its trial in flight is recorded as interrupted."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signum)

    def wait(self) -> list[int]:
        """Wait for each to finish, and return their exit statuses."""
        return [process.wait() for process in self.processes]
