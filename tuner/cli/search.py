"""``tuner search``: run a study, show its progress, end with a leaderboard, and stop cleanly
on Ctrl-C."""

from __future__ import annotations

import itertools
import shlex
import shutil
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from tuner.cli import INTERRUPTED_STATUS, load_registry, plugin_option, storage_option
from tuner.cli.output import number
from tuner.cli.results import trial_table
from tuner.plan import SearchConfig
from tuner.query import open_results
from tuner.watcher import Watcher

if TYPE_CHECKING:
    from tuner.query import Results, TrialSummary
    from tuner.space import Sample
    from tuner.watcher import Progress, TrialEnd

LEADERBOARD_SIZE = 5


def _names(value: str | None) -> list[str] | None:
    return [n.strip() for n in value.split(",") if n.strip()] if value else None


@click.command("search")
@click.option("--task", help="The task to train [the first registered: the built-in digits].")
@click.option(
    "--trials",
    type=int,
    default=60,
    show_default=True,
    help="Finished (complete or pruned) trials the study should hold; "
    "run again with more to continue it.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Stop starting trials after this long.",
)
@click.option(
    "--steps", type=click.IntRange(min=1), help="Training steps a trial [task's default]."
)
@click.option("--batch-size", type=click.IntRange(min=1), help="Batch size [task's default].")
@click.option(
    "--eval-every",
    type=click.IntRange(min=1),
    help="Validate, report and maybe prune every N steps [task's default].",
)
@click.option(
    "--study",
    "study_name",
    metavar="NAME",
    help="Study to create or continue [a new readable name].",
)
@storage_option
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seeds the sampler and every trial: the same seed draws the same trials.",
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "gpu"]),
    help="Where MLX trains [the GPU when there is one].",
)
@click.option("--optimizers", metavar="A,B", help="Optimizers to search [all registered].")
@click.option("--schedules", metavar="X,Y", help="Schedules to search [all registered].")
@click.option(
    "--space",
    "space",
    multiple=True,
    metavar="EXPR",
    help="Narrow the search space (repeatable): lr=1e-4..1e-1:log, "
    "adamw.weight_decay=1e-6..1e-2:log, sgd.nesterov=true,false, sgd.momentum=0.9.",
)
@click.option(
    "--metric",
    help="What to optimise: val_loss (minimised) or a metric of the task, "
    "such as accuracy, in its own direction [val_loss].",
)
@click.option(
    "--sampler",
    type=click.Choice(["tpe", "random", "cmaes", "gp", "qmc"]),
    default="tpe",
    show_default=True,
    help="Optuna sampler.",
)
@click.option(
    "--pruner",
    type=click.Choice(["median", "hyperband", "sha", "none"]),
    default="median",
    show_default=True,
    help="Optuna pruner.",
)
@plugin_option
@click.option("-q", "--quiet", is_flag=True, help="Print only the study's name at the end.")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Print a line on stderr for every finished trial, on a terminal or not.",
)
def search_command(
    task: str | None,
    trials: int,
    timeout: float | None,
    steps: int | None,
    batch_size: int | None,
    eval_every: int | None,
    study_name: str | None,
    storage: str,
    seed: int,
    device: str | None,
    optimizers: str | None,
    schedules: str | None,
    space: Sequence[str],
    metric: str | None,
    sampler: str,
    pruner: str,
    plugins: Sequence[str],
    quiet: bool,
    verbose: bool,
) -> None:
    """Search optimizers, schedules and their settings for a task with short MLX trials.

    Every trial trains the task's model from scratch with one sampled optimizer and schedule,
    is pruned early when it falls behind, and is stored in --storage. Many processes, on many
    machines, can work on one study: give them the same --study and --storage.

    A study is resumed with the settings it was created with: run it again with the same
    --study and a larger --trials. On a terminal a status line shows the progress on stderr.
    Ctrl-C stops the trial in flight, records it as interrupted, and prints the leaderboard
    and the command that continues the study (exit status 130); a second Ctrl-C skips the
    leaderboard.

    \b
    Examples:
      tuner search
      tuner search --task synthetic --trials 20 --optimizers adam,sgd
      tuner search --study mine --space lr=1e-3..1e-1:log --space sgd.momentum=0.9
    """
    # Here for start-up time: tuner.api brings in Optuna, SQLAlchemy and MLX, which `tuner
    # search --help` and the other commands need not load.
    from tuner.api import prepare, run

    ctx = click.get_current_context()
    config = SearchConfig(
        task=task,
        trials=trials,
        timeout=timeout,
        steps=steps,
        batch_size=batch_size,
        eval_every=eval_every,
        study=study_name,
        seed=seed,
        device=device,
        optimizers=_names(optimizers),
        schedules=_names(schedules),
        space=space,
        sampler=sampler,
        pruner=pruner,
        metric=metric,
        command=" ".join(["tuner", "search", *given_options(ctx)]),
    )
    display = Display(
        ctx,
        storage,
        trials,
        timeout,
        live=not quiet and sys.stderr.isatty(),
        verbose=verbose and not quiet,
    )
    with CtrlC(display) as ctrl_c:
        try:
            plan = prepare(config, load_registry(plugins), storage)
            with ctrl_c.guarding():
                try:
                    run(plan, storage, display, ctrl_c.stop)
                finally:
                    display.finish()
                if ctrl_c.stop.is_set():
                    what = display.interrupted or "no trial had started"
                    click.echo(f"Interrupted: {what}.", err=True)
                elif display.ran == 0:
                    click.echo(
                        f"Study {display.name} already holds {trials} finished trials: "
                        "nothing to run. Ask for more with --trials.",
                        err=True,
                    )
                text = display.name
                if not quiet and not ctrl_c.hurry:
                    text = closing(ctx, display.name, plan.config.metric, storage, trials)
                if ctrl_c.hurry:
                    raise KeyboardInterrupt
                click.echo(text)
        except KeyboardInterrupt:
            click.echo(interrupted(ctx, display.name, trials), err=True)
            ctx.exit(INTERRUPTED_STATUS)
    if ctrl_c.stop.is_set():
        ctx.exit(INTERRUPTED_STATUS)


def closing(ctx: click.Context, name: str, metric: str, storage: str, trials: int) -> str:
    """The leaderboard of the top complete trials, and the commands that look closer at the
    study and continue it, each of which can be copied alone."""
    with open_results(storage) as results:
        top = [t for t in results.best(name, LEADERBOARD_SIZE) if t.outcome == "complete"]
        board = leaderboard(name, metric, top, results)
        # A study cut short by Ctrl-C or --timeout continues to the count it was given.
        more = trials * 2 if results.study(name).counts.finished >= trials else trials
    given = ctx.get_parameter_source("storage") is ParameterSource.COMMANDLINE
    where = f" --storage {shlex.quote(_masked(storage))}" if given else ""
    look = [f"tuner best {name}{where}", f"tuner compare {name}{where}"]
    if top:
        look.insert(1, f"tuner show {name} {top[0].number}{where}")
    indent = "\n" + " " * len("Look closer: ")
    return (
        f"{board}\n\nStudy {name} in {_masked(storage)}.\n"
        f"Look closer: {indent.join(look)}\n"
        f"Continue it: {continue_command(ctx, name, more)}"
    )


def interrupted(ctx: click.Context, name: str | None, trials: int) -> str:
    """What a Ctrl-C that cut the search short leaves the user with."""
    if name is None:
        return "Interrupted before the study started: nothing was run."
    return f"Interrupted. Study {name}; continue it: {continue_command(ctx, name, trials)}"


def given_options(ctx: click.Context, leave_out: Sequence[str] = ()) -> list[str]:
    """The options given on the command line but those named, as words to run again, with
    passwords masked."""
    words = []
    for param in ctx.command.params:
        if param.name in leave_out:
            continue
        if ctx.get_parameter_source(param.name) is not ParameterSource.COMMANDLINE:
            continue
        value = ctx.params[param.name]
        if getattr(param, "is_flag", False):
            words += [param.opts[-1]] if value else []
            continue
        for one in value if param.multiple else [value]:
            text = _masked(one) if param.name == "storage" else str(one)
            words += [param.opts[-1], shlex.quote(text)]
    return words


def continue_command(ctx: click.Context, study: str, trials: int) -> str:
    """The ``tuner search`` that continues this study: the options given, with its name and a
    new --trials."""
    given = given_options(ctx, leave_out=("study_name", "trials", "quiet", "verbose"))
    return " ".join(["tuner", "search", "--study", study, "--trials", str(trials), *given])


def _masked(url: str) -> str:
    # Here for start-up time: tuner.db brings in SQLAlchemy and alembic.
    from tuner.db import mask_url

    return mask_url(url)


class Display(Watcher):
    """A search's progress on stderr. On a terminal, one status line that a thread redraws
    twice a second, so that its clock runs while MLX builds kernels; with --verbose, a line
    for each finished trial. The study's name and storage come first, before any trial."""

    TICK_S = 0.5
    # Trials of this run to time before saying how long the rest will take.
    ETA_AFTER = 3

    def __init__(
        self,
        ctx: click.Context,
        storage: str,
        total: int,
        timeout: float | None,
        *,
        live: bool,
        verbose: bool,
    ) -> None:
        self.ctx = ctx
        self.storage = storage
        self.total = total
        self.timeout = timeout
        self.live = live
        self.verbose = verbose
        self.name: str | None = None
        self.started_at = time.monotonic()
        self.ends: list[float] = []
        self.done = 0
        self.best = ""
        # The trial in flight: its number, optimizer+schedule and steps; the steps it has run.
        self.trial: tuple[int, str, int] | None = None
        self.step = 0
        self.kernels = False
        self.stopping = False
        self.interrupted: str | None = None
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
            click.echo(f"Study {study} ({state}) in {_masked(self.storage)}", err=True)
        if twins:
            click.echo(
                f"Note: study {twins[0]} has this seed and these settings: this study will "
                "repeat its trials.\n"
                f"      Give another --seed for new trials, or add trials to {twins[0]}:\n"
                f"      {continue_command(self.ctx, twins[0], self.total * 2)}",
                err=True,
            )
        self.started_at = time.monotonic()
        if self.live:
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def trial_started(self, number: int, sample: Sample, steps: int) -> None:
        self.trial = (number, f"{sample.optimizer}+{sample.schedule}", steps)
        self.step = 0
        self.kernels = False

    def building(self, number: int) -> None:
        self.kernels = True

    def trial_step(self, number: int, done: int) -> None:
        self.step = done

    def trial_ended(self, trial: TrialEnd, progress: Progress) -> None:
        self.ends.append(time.monotonic())
        self.done = progress.finished
        if trial.outcome == "interrupted":
            self.interrupted = f"trial {trial.number} {trial.reason}, and recorded as interrupted"
        elif trial.outcome == "failed":
            self._say(f"trial {trial.number} failed: {trial.reason or 'unknown error'}")
        elif self.verbose:
            self._say(_trial_line(trial))
        if progress.best is not None:
            best = progress.best
            self.best = f"best {number(best.value)} {best.optimizer}+{best.schedule}"
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
        elapsed = time.monotonic() - self.started_at
        parts = [
            f"{self.done}/{self.total} trials",
            f"{_clock(elapsed)} elapsed",
            f"{self._left(elapsed)} left",
            self.best,
            self._doing(),
        ]
        # Room for the "^C" a terminal echoes after it: at the edge it would wrap to a new line,
        # which the next redraw does not clear.
        width = shutil.get_terminal_size().columns - 3
        line = "  ".join(p for p in parts if p)
        if len(line) > width:
            line = line[: width - 1] + "…"
        with self._lock:
            click.echo(f"\r\x1b[2K{line}", nl=False, err=True)

    def _doing(self) -> str:
        if self.stopping:
            return "stopping after this step… (Ctrl-C again to skip the leaderboard)"
        if self.trial is None:
            return "starting"
        number, combination, steps = self.trial
        if self.kernels and self.step == 0:
            return f"trial {number}: building kernels for {combination}…"
        return f"trial {number}: {combination} step {self.step}/{steps}"

    def _left(self, elapsed: float) -> str:
        """The time left, from the median time between this run's trials: '?' until a few
        have ended, since the first ones also build kernels."""
        left = None
        if self.ran >= self.ETA_AFTER:
            times = [self.started_at, *self.ends][-11:]
            each = statistics.median(b - a for a, b in itertools.pairwise(times))
            left = each * max(self.total - self.done, 0)
        if self.timeout is not None and left is not None:
            left = min(left, max(self.timeout - elapsed, 0))
        return "?" if left is None else f"~{_clock(left)}"


def _trial_line(trial: TrialEnd) -> str:
    return (
        f"trial {trial.number} {trial.outcome} {number(trial.value)} "
        f"{trial.optimizer}+{trial.schedule} lr {number(trial.lr, 3)} "
        f"in {trial.duration_s or 0:.1f}s"
    )


class CtrlC:
    """Ctrl-C during a search. Once the search has begun (``guarding``), a press sets ``stop``:
    the trial in flight ends at its next step and is recorded as interrupted, so that no trial
    is ever left running; a second press sets ``hurry``, to skip the leaderboard. Neither
    raises there: a KeyboardInterrupt raised inside one of SQLAlchemy's weakref callbacks is
    printed and swallowed. Before, while plugins and the task load, a press raises at once."""

    def __init__(self, display: Display) -> None:
        self.display = display
        self.stop = threading.Event()
        self.hurry = False
        self._guarded = False
        self._previous: Any = None

    def __enter__(self) -> CtrlC:
        self._previous = signal.signal(signal.SIGINT, self._pressed)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)

    @contextmanager
    def guarding(self) -> Iterator[None]:
        """Presses while inside stop the search between steps instead of raising."""
        self._guarded = True
        try:
            yield
        finally:
            self._guarded = False

    def _pressed(self, signum: int, frame: Any) -> None:
        if not self._guarded:
            raise KeyboardInterrupt
        self.hurry = self.stop.is_set()
        self.stop.set()
        self.display.stopping = True


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes:d}:{seconds:02d}"


def leaderboard(name: str, metric: str, top: Sequence[TrialSummary], results: Results) -> str:
    """The best complete trials as a table, best first, with the task's other metrics."""
    if not top:
        counts = Counter(t.outcome for t in results.trials(name))
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        return f"No complete trial yet in study {name} ({summary or 'no trials'})."
    complete = results.study(name).counts.complete
    return f"Top {len(top)} of {complete} complete trials by {metric}\n{trial_table(top, metric)}"


COMMANDS = [search_command]
