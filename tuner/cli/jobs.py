"""The other workers of ``tuner search --jobs N``: ``tuner worker`` processes on the study that
the search made, started as soon as it exists, and stopped with it.

Each is a process of its own, so that each trains on a core of its own with its own BLAS thread
and its own database connections: Optuna's distributed mode on one machine, no scheduler.
Each ends with the search, however the search ends, SIGKILL included: it holds the read end of
a pipe whose write end only the search holds, and stops as SIGTERM stops it once that pipe
closes. A pipe rather than Linux's PR_SET_PDEATHSIG, which macOS lacks and which follows the
thread that started the child rather than the process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from tuner.errors import BadInput

# The descriptor of the pipe a worker of --jobs watches for its search's end.
LIFELINE_ENV = "TUNER_LIFELINE_FD"
# Where a worker of --jobs finds the storage: a URL's password on the command line would show
# in ps to every user of the machine; the environment shows only to the same user.
STORAGE_ENV = "TUNER_STORAGE"


def job_count(jobs: int, oversubscribe: bool) -> int:
    """``--jobs``' count of worker processes: 0 means one a core. More than the cores is
    refused without ``oversubscribe``: a typo such as 100000 would start that many."""
    cores = os.cpu_count() or 1
    count = jobs or cores
    if count > cores and not oversubscribe:
        raise BadInput(
            f"--jobs {count} is more than the {cores} cores here: the workers would wait on each "
            "other and could make the machine unresponsive; give --oversubscribe to start them "
            "anyway"
        )
    return count


def watch_lifeline() -> None:
    """In a worker that ``tuner search --jobs`` started, stop as SIGTERM stops it once the
    search is gone; elsewhere, nothing."""
    fd = os.environ.pop(LIFELINE_ENV, None)
    if fd is None:
        return

    def watch() -> None:
        # Nothing is ever written: the read returns when the search's end of the pipe closes.
        os.read(int(fd), 1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="tuner-lifeline", daemon=True).start()


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
        self._lifeline: int | None = None

    def start(self, study: str) -> None:
        command = [str(Path(sys.executable).with_name("tuner")), "worker", study]
        command += ["--trials", str(self.trials), "--confirm", "0", "--quiet"]
        command += ["--population", str(self.population or "auto")]
        command += ["--timeout", str(self.timeout)] if self.timeout is not None else []
        for plugin in self.plugins:
            command += ["--plugin", plugin]
        watched, self._lifeline = os.pipe()
        env = {**os.environ, STORAGE_ENV: self.storage, LIFELINE_ENV: str(watched)}
        # Their errors reach the terminal as they happen; their output is the study's name.
        self.processes = [
            subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env, pass_fds=(watched,))
            for _ in range(self.count)
        ]
        os.close(watched)

    def stop(self, signum: int) -> None:
        """Stop each as the search was stopped: its trial in flight is recorded as interrupted."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signum)

    def failures(self) -> list[str]:
        """Once they have finished, a line for each that failed, saying what ended it: a
        worker killed by a signal printed nothing of its own."""
        lines = []
        for process in self.processes:
            code = process.returncode
            if code is not None and code < 0:
                lines.append(
                    f"A worker of --jobs (process {process.pid}) was killed by "
                    f"{signal.Signals(-code).name}: a trial it left running is failed and queued "
                    "again as a dead worker's."
                )
            elif code:
                lines.append(
                    f"A worker of --jobs (process {process.pid}) failed with exit status "
                    f"{code}: its error is above."
                )
        return lines

    def wait(self) -> list[int]:
        """Wait for each to finish, and return their exit statuses."""
        statuses = [process.wait() for process in self.processes]
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        return statuses
