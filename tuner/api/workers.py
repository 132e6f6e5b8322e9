"""The other workers of ``tuner search --jobs N``: ``tuner worker`` processes on the study that
the search made, started as soon as it exists, and stopped with it. ``--jobs auto``, the
default, is one a core on the CPU, as memory allows, and one process on a GPU.

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
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from tuner.errors import BadInput
from tuner.query import open_results

# The descriptor of the pipe a worker of --jobs watches for its search's end.
LIFELINE_ENV = "TUNER_LIFELINE_FD"
# Where a worker of --jobs finds the storage: a URL's password on the command line would show
# in ps to every user of the machine; the environment shows only to the same user.
STORAGE_ENV = "TUNER_STORAGE"
# And the tracker of --log-to, whose URI may hold a password too.
LOG_TO_ENV = "TUNER_LOG_TO"


# What a worker may hold, for --jobs auto: a search's peak RSS is near 110 MB on digits and
# 260 MB on tinylm (2026-12-07); the rest is room for larger models and for what else runs.
WORKER_BYTES = 1 << 30


def parse_jobs(value: str) -> int | None:
    """``--jobs``: a count of worker processes, or None for auto (also written 0)."""
    if value.strip().lower() == "auto":
        return None
    if not value.strip().isdigit():
        raise BadInput(f"--jobs '{value}': give auto or a number of processes, such as 2")
    return int(value) or None


def cores() -> int:
    """The cores this process may run on: fewer than the machine's under taskset or a
    container's CPU set."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def job_count(jobs: int | None, oversubscribe: bool, device: str | None, storage: str) -> int:
    """``--jobs``' count of worker processes on ``storage``; None is auto. More than the cores
    is refused without ``oversubscribe``: a typo such as 100000 would start that many; more than
    one on a SQLite file on a network share too, which auto makes one."""
    count = _cores_count(jobs, oversubscribe, device)
    if count > 1:
        # Here for start-up time: tuner.db brings in SQLAlchemy.
        from tuner.db.filesystems import refuse_shared_over_network

        try:
            refuse_shared_over_network(storage)
        except BadInput:
            if jobs is not None:
                raise
            # One process may keep its SQLite file there; auto asks for no more.
            return 1
    return count


def _cores_count(jobs: int | None, oversubscribe: bool, device: str | None) -> int:
    if jobs is None:
        return auto_jobs(device)
    count = jobs
    if count > cores() and not oversubscribe:
        raise BadInput(
            f"--jobs {count} is more than the {cores()} cores here: the workers would wait on each "
            "other and could make the machine unresponsive; give --oversubscribe to start them "
            "anyway"
        )
    return count


def auto_jobs(device: str | None) -> int:
    """``--jobs auto``: one process on a GPU, which a second would only share; on the CPU one
    a core, each with its own BLAS thread, as far as the memory available allows."""
    # Here for start-up time: MLX loads its kernels' libraries.
    import mlx.core as mx

    if device == "gpu" or (device is None and mx.is_available(mx.gpu)):
        return 1
    memory = available_memory()
    fits = cores() if memory is None else memory // WORKER_BYTES
    return max(1, min(cores(), fits))


def available_memory() -> int | None:
    """The bytes that new processes may take without swapping: Linux's MemAvailable, the
    physical memory elsewhere, None where neither can be read."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def watch_lifeline() -> bool:
    """In a worker that ``tuner search --jobs`` started, stop as SIGTERM stops it once the
    search is gone, and return True; elsewhere, nothing, and False."""
    fd = os.environ.pop(LIFELINE_ENV, None)
    if fd is None:
        return False

    def watch() -> None:
        # Nothing is ever written: the read returns when the search's end of the pipe closes.
        os.read(int(fd), 1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="tuner-lifeline", daemon=True).start()
    return True


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
        log_to: str | None = None,
    ) -> None:
        self.count = count
        self.storage = storage
        self.trials = trials
        self.timeout = timeout
        self.plugins = plugins
        self.population = population
        self.log_to = log_to
        self.processes: list[subprocess.Popen[bytes]] = []
        # What each printed on stderr: said by the search only for one that failed alone.
        self._errors: list[IO[bytes]] = []
        self._lifeline: int | None = None

    def start(self, study: str) -> int:
        """Start them on ``study``, no more than its trials still to run less the search's
        own: return how many were started."""
        with open_results(self.storage) as results:
            left = self.trials - results.counts(study).finished
        count = max(min(self.count, left - 1), 0)
        if not count:
            return 0
        command = [str(Path(sys.executable).with_name("tuner")), "worker", study]
        command += ["--trials", str(self.trials), "--confirm", "0", "--quiet"]
        command += ["--population", str(self.population or "auto")]
        command += ["--timeout", str(self.timeout)] if self.timeout is not None else []
        for plugin in self.plugins:
            command += ["--plugin", plugin]
        watched, self._lifeline = os.pipe()
        env = {**os.environ, STORAGE_ENV: self.storage, LIFELINE_ENV: str(watched)}
        if self.log_to is not None:
            env[LOG_TO_ENV] = self.log_to
        # The terminal shows one process's lines, the search's: their output is the study's
        # name, and their errors (a full disk, a deleted study) are mostly the search's own.
        # Each in a session of its own, so that Ctrl-C reaches the search alone, which stops
        # them as it stops.
        # Open while the search runs, read once they end; nameless on disk, gone with it.
        self._errors = [tempfile.TemporaryFile() for _ in range(count)]  # noqa: SIM115
        self.processes = [
            subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                env=env,
                pass_fds=(watched,),
                start_new_session=True,
            )
            for errors in self._errors
        ]
        os.close(watched)
        return count

    def stop(self) -> None:
        """Stop each as a signal stops the search: its trial in flight is recorded as
        interrupted. SIGTERM, whatever stopped the search: one still starting ends at once
        and silently, where SIGINT would print a traceback of its imports."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    def failures(self) -> list[str]:
        """Once they have finished, a line for each that failed, saying what ended it: a
        worker killed by a signal printed nothing of its own."""
        lines = []
        for process, errors in zip(self.processes, self._errors, strict=True):
            code = process.returncode
            if code is not None and code < 0:
                lines.append(
                    f"A worker of --jobs (process {process.pid}) was killed by "
                    f"{signal.Signals(-code).name}: a trial it left running is failed and queued "
                    "again as a dead worker's."
                )
            elif code:
                errors.seek(0)
                said = errors.read().decode(errors="replace").strip().splitlines()
                last = said[-1].removeprefix("Error: ") if said else "it said nothing"
                lines.append(
                    f"A worker of --jobs (process {process.pid}) failed with exit status "
                    f"{code}: {last}"
                )
        return lines

    def cut_short(self, study: str) -> list[tuple[int, str | None]]:
        """The trials of ``study`` that they left interrupted, and why: a stopped search names
        them with its own, as one process would name what it cut short."""
        if not self.processes:
            return []
        # Here for start-up time: tuner.db brings in SQLAlchemy.
        from tuner.db.optuna import interrupted_by

        return interrupted_by(self.storage, study, [process.pid for process in self.processes])

    def wait(self) -> list[int]:
        """Wait for each to finish, and return their exit statuses."""
        statuses = [process.wait() for process in self.processes]
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        return statuses
