"""What ``tuner search`` shows while it runs, and what Ctrl-C does to it: a status line that a
thread keeps ticking on a terminal, and a SIGINT handler that stops a search between steps."""

from __future__ import annotations

import shutil
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from tuner.api import Progress, Watcher
from tuner.cli.output import number
from tuner.results import Outcome

if TYPE_CHECKING:
    from tuner.api import Blas, Sample
    from tuner.results import Run, TrialSummary


class Display(Watcher):
    """A search's progress on stderr. On a terminal, one status line that a thread redraws
    twice a second, so that its clock runs while MLX builds kernels; with --verbose, a line
    for each finished trial. The study's name and storage come first, before any trial, and
    the BLAS that MLX calls."""

    TICK_S = 0.5
    # Trials of this run to time before saying how long the rest will take.
    ETA_AFTER = 3

    def __init__(
        self,
        continue_for: Callable[[str], str],
        storage: str,
        total: int,
        timeout: float | None,
        *,
        live: bool,
        verbose: bool,
        blas: Blas | None = None,
        failures: bool = True,
        confirm_runs: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.continue_for = continue_for
        self.storage = storage
        self.total = total
        self.timeout = timeout
        self.live = live
        self.verbose = verbose
        # Said under the study's name; None off Linux, where there is no BLAS to choose.
        self.blas = blas
        # The processes on the study, this one and the workers of --jobs.
        self.workers = 1
        # False in a worker of --jobs, whose search shows its failed trials.
        self.failures = failures
        self.name: str | None = None
        self.clock = clock
        self.started_at = clock()
        self.ends: list[float] = []
        # Seconds a step of this run's trials took, each trial's whole time over its steps: a
        # population's members share theirs, so this is what K runs together cost a step.
        self.step_s: list[float] = []
        # The confirmation runs (K x S of --confirm) still to come after the search, and how
        # long those of this run took.
        self.confirm_runs = confirm_runs
        self.run_started: float | None = None
        self.run_s: list[float] = []
        self.progress = Progress(total)
        # The trial in flight: its number, optimizer+schedule and steps; the steps it has run.
        self.trial: tuple[int, str, int] | None = None
        # The confirmation run in flight: its seed's index, of how many.
        self.seed: tuple[int, int] | None = None
        self.step = 0
        # The steps of a trial of the search, which a confirmation run trains too.
        self.steps = 0
        # The trials training together with the one in flight, itself included.
        self.members = 1
        self.kernels = False
        self.stopping = False
        # The trials that a stop cut short, with why: every member of a population in flight.
        self.cut_short: list[tuple[int, str | None]] = []
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def ran(self) -> int:
        return len(self.ends)

    def started(self, study: str, *, new: bool, twins: Sequence[str]) -> None:
        self.name = study
        if self.live or self.verbose:
            state = "new" if new else "continued"
            click.echo(f"Study {study} ({state}) in {self.storage}", err=True)
            if self.blas is not None:
                click.echo(f"BLAS: {self.blas}", err=True)
        if twins:
            click.echo(
                f"Note: study {twins[0]} has this seed and these settings: this study will "
                "repeat its trials.\n"
                f"      Give another --seed for new trials, or add trials to {twins[0]}:\n"
                f"      {self.continue_for(twins[0])}",
                err=True,
            )
        if self.workers > 1 and (self.live or self.verbose):
            click.echo(
                f"Workers: {self.workers} processes on this machine (--jobs 1 for one)", err=True
            )
        self.started_at = self.clock()
        if self.live:
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def workers_started(self, count: int) -> None:
        self.workers = 1 + count

    def workers_ended(
        self, failures: Sequence[str], cut_short: Sequence[tuple[int, str | None]]
    ) -> None:
        self.cut_short += cut_short
        for failed in failures:
            click.echo(failed, err=True)

    @property
    def interrupted(self) -> str | None:
        """Which trials the stop cut short, and how, in words; None when it cut none."""
        if not self.cut_short:
            return None
        numbers = sorted(each for each, _ in self.cut_short)
        reasons = sorted({reason or "stopped" for _, reason in self.cut_short})
        # The members of a population stop at the same step, for the same reason.
        how = reasons[0] if len(reasons) == 1 else "stopped"
        if len(numbers) == 1:
            return f"trial {numbers[0]} {how}, and recorded as interrupted"
        return f"trials {_numbers(numbers)} {how}, and recorded as interrupted"

    def trial_started(self, number: int, sample: Sample, steps: int, members: int = 1) -> None:
        self.trial = (number, f"{sample.optimizer}+{sample.schedule}", steps)
        self.steps = steps
        self.members = members
        self.step = 0
        self.kernels = False

    def building(self, number: int) -> None:
        self.kernels = True

    def trial_step(self, number: int, done: int) -> None:
        self.step = done

    def trial_ended(self, trial: TrialSummary, progress: Progress) -> None:
        self.ends.append(self.clock())
        self.progress = progress
        if trial.duration_s and trial.steps:
            self.step_s.append(trial.duration_s / trial.steps)
        if trial.outcome is Outcome.INTERRUPTED:
            self.cut_short.append((trial.number, trial.reason))
        elif trial.outcome is Outcome.FAILED and self.failures:
            self._say(f"trial {trial.number} failed: {trial.reason or 'unknown error'}")
        elif self.verbose:
            self._say(_trial_line(trial))
        self._draw()

    def confirming(self, trial: TrialSummary, index: int, seeds: int, steps: int) -> None:
        self.trial = (trial.number, f"{trial.optimizer}+{trial.schedule}", steps)
        self.steps = steps
        self.run_started = self.clock()
        self.seed = (index, seeds)
        self.members = 1
        self.step = 0
        self.kernels = False

    def confirmed(self, trial: TrialSummary, index: int, seeds: int, run: Run) -> None:
        if self.run_started is not None:
            self.run_s.append(self.clock() - self.run_started)
            self.run_started = None
        if run.outcome is not Outcome.COMPLETE:
            self._say(
                f"confirmation of trial {trial.number}, seed {index + 1}/{seeds}: "
                f"{run.outcome} ({run.reason or 'no reason given'})"
            )
        elif self.verbose:
            self._say(
                f"trial {trial.number} confirmed, seed {index + 1}/{seeds}: {number(run.value)} "
                f"{trial.optimizer}+{trial.schedule} in {run.duration_s:.1f}s"
            )
        self._draw()

    def finish(self) -> None:
        """Stop redrawing and leave the terminal on a fresh line."""
        self._closed.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
            with self._lock:
                click.echo("\r\x1b[2K", nl=False, err=True)

    def _tick(self) -> None:
        while not self._closed.wait(self.TICK_S):
            self._draw()

    def _say(self, line: str) -> None:
        with self._lock:
            click.echo(("\r\x1b[2K" if self.live else "") + line, err=True)
        self._draw()

    def _draw(self) -> None:
        if not self.live or self._closed.is_set():
            return
        # Room for the "^C" a terminal echoes after it: at the edge it would wrap to a new line,
        # which the next redraw does not clear.
        line = self.status_line(shutil.get_terminal_size().columns - 3)
        with self._lock:
            click.echo(f"\r\x1b[2K{line}", nl=False, err=True)

    def status_line(self, width: int) -> str:
        """The status line, cut to ``width``: what it is doing comes before the best so far,
        which the cut takes first."""
        elapsed = self.clock() - self.started_at
        parts = [
            f"{self.progress.finished}/{self.total} trials",
            f"{_clock(elapsed)} elapsed",
            f"{self._left(elapsed)} left",
            self._doing(),
            self._best(),
        ]
        line = "  ".join(p for p in parts if p)
        return line if len(line) <= width else line[: width - 1] + "…"

    def _best(self) -> str:
        best = self.progress.best
        return "" if best is None else f"best {number(best.value)} {best.optimizer}+{best.schedule}"

    def _doing(self) -> str:
        if self.stopping:
            return "stopping after this step… (Ctrl-C again to skip the leaderboard)"
        if self.trial is None:
            return "starting"
        number, combination, steps = self.trial
        what = f"trial {number}"
        if self.members > 1:
            what = f"trials {number}+{self.members - 1}"
        if self.seed is not None:
            what = f"confirming trial {number}, seed {self.seed[0] + 1}/{self.seed[1]}"
        if self.kernels and self.step == 0:
            return f"{what}: building kernels for {combination}…"
        return f"{what}: {combination} step {self.step}/{steps}"

    def _left(self, elapsed: float) -> str:
        """The time left, the search's and the confirmation runs' after it, from what this run
        has measured: '?' until it has measured enough; a range where two measures disagree;
        'N+' while this process builds kernels, whose time no measure foresees."""
        search = self._search_left(elapsed)
        runs = self._runs_left()
        if search is None or runs is None:
            return "?"
        low, high = search[0] + runs, search[1] + runs
        if self.kernels and self.step == 0:
            return f"{_clock(low)}+"
        # Within a quarter of each other, or seconds apart, the two measures agree.
        if high - low > max(0.25 * high, 5):
            return f"~{_clock(low)}-{_clock(high)}"
        return f"~{_clock(high)}"

    def _search_left(self, elapsed: float) -> tuple[float, float] | None:
        """The search's time left, low and high, from the pace of the whole run and of its
        second half: trials that build kernels, mostly the first of each graph, slow the one
        more than the other, and so do populations that grow. Paces over time, not the gaps
        between trials: a population's trials end together, and other workers' trials reach
        this display in bunches (see tuner.study's ``look``)."""
        left = max(self.total - self.progress.finished, 0)
        if not left:
            return (0.0, 0.0)
        if self.ran < self.ETA_AFTER or elapsed <= 0:
            return None
        half = elapsed / 2
        recent = sum(end > self.started_at + half for end in self.ends)
        paces = [elapsed / self.ran] + ([half / recent] if recent else [])
        low, high = min(paces) * left, max(paces) * left
        if self.timeout is not None:
            # --timeout bounds the search alone.
            low, high = (min(x, max(self.timeout - elapsed, 0)) for x in (low, high))
        return (low, high)

    def _runs_left(self) -> float | None:
        """The confirmation runs' time left: each as long as this run's took, or before one
        has ended, as long as a search trial's steps took at their pace."""
        runs = max(self.confirm_runs - len(self.run_s), 0)
        if not runs:
            return 0.0
        if self.run_s:
            each = statistics.mean(self.run_s)
        elif self.step_s and self.steps:
            each = statistics.median(self.step_s) * self.steps
        else:
            return None
        # The run in flight counts down, but no run is over before it ends.
        done = 0.0 if self.run_started is None else self.clock() - self.run_started
        return each * runs - min(done, 0.9 * each)


def _trial_line(trial: TrialSummary) -> str:
    return (
        f"trial {trial.number} {trial.outcome} {number(trial.value)} "
        f"{trial.optimizer}+{trial.schedule} lr {number(trial.lr, 3)} "
        f"in {trial.duration_s or 0:.1f}s"
    )


class CtrlC:
    """Ctrl-C during a search, and the SIGTERM and SIGHUP (a closed terminal) that end a
    worker alike. Once the search has begun (``guarding``), a signal sets ``stop``: the trial
    in flight ends at its next step and is recorded as interrupted, so that no trial is ever
    left running; a second sets ``hurry``, to skip the leaderboard. Neither raises there: a
    KeyboardInterrupt raised inside one of SQLAlchemy's weakref callbacks is printed and
    swallowed. Before, while plugins and the task load, a signal ends the process at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, display: Display, *, defer: bool = False) -> None:
        self.display = display
        # A worker of --jobs, which its search stops at any moment: a signal before the search
        # begins waits for it, since raised where it lands (a weakref callback, say) it may be
        # printed and swallowed, and the worker would run on.
        self.defer = defer
        self.stop = threading.Event()
        self.hurry = False
        # The first signal received, which the exit status reports as a shell would.
        self.signum: int | None = None
        self._guarded = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> CtrlC:
        self._previous = {signum: signal.signal(signum, self._pressed) for signum in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    @property
    def status(self) -> int:
        """The exit status of a process the signal ended: 128 + its number."""
        return 128 + (self.signum or signal.SIGINT)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum or signal.SIGINT).name

    @contextmanager
    def guarding(self) -> Iterator[None]:
        """Signals while inside stop the search between steps instead of raising."""
        if self.stop.is_set():
            raise SystemExit(self.status)
        self._guarded = True
        try:
            yield
        finally:
            self._guarded = False

    def _pressed(self, signum: int, frame: Any) -> None:
        self.signum = self.signum or signum
        if not self._guarded and self.defer:
            self.stop.set()
            return
        if not self._guarded:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
        self.hurry = self.stop.is_set()
        self.stop.set()
        self.display.stopping = True


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes:d}:{seconds:02d}"


def _numbers(numbers: Sequence[int]) -> str:
    """Trial numbers in few words: runs of consecutive ones as ``3-10``."""
    runs: list[list[int]] = []
    for each in numbers:
        if runs and each == runs[-1][-1] + 1:
            runs[-1].append(each)
        else:
            runs.append([each])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
