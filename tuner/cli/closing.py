"""What a search ends with, and what it prints for the user to run next: the leaderboard, the
commands that look closer at the study, and the one that continues it."""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from tuner.api import KEPT_ON_RESUME, open_results
from tuner.cli.output import terminal_width, wrap
from tuner.cli.trials import best_title, confirmation_table, left_out, trial_table
from tuner.invocation import program
from tuner.results import Outcome

if TYPE_CHECKING:
    from tuner.api import Results
    from tuner.results import TrialSummary

LEADERBOARD_SIZE = 5


def closing(ctx: click.Context, name: str, metric: str, storage: str, trials: int) -> str:
    """The leaderboard of the top trials, and the commands that look closer at the
    study and continue it, each of which can be copied alone."""
    with open_results(storage) as results:
        top = results.best(name, LEADERBOARD_SIZE)
        board = leaderboard(name, metric, top, results)
        confirmation = results.confirmation(name)
        if confirmation.configs:
            board += f"\n\n{confirmation_table(confirmation, terminal_width())}"
        more = next_count(results.study(name).counts.finished, trials)
        seed = results.provenance(name).seed
    # From a search file too: the commands printed here take no --config.
    given = ctx.get_parameter_source("storage") in (
        ParameterSource.COMMANDLINE,
        ParameterSource.DEFAULT_MAP,
    )
    where = f" --storage {shlex.quote(masked(storage))}" if given else ""
    quoted = shlex.quote(name)
    tuner = program()
    look = [f"{tuner} best {quoted}{where}", f"{tuner} compare {quoted}{where}"]
    if top:
        look.insert(1, f"{tuner} show {quoted} {top[0].number}{where}")
    indent = "\n" + " " * len("Look closer: ")
    return (
        f"{board}\n\nStudy {name} in {masked(storage)}, seed {seed}.\n"
        f"Look closer: {indent.join(look)}\n"
        f"Continue it: {continue_command(ctx, name, more)}"
    )


def next_count(finished: int, asked: int) -> int:
    """The --trials that continues a study holding ``finished`` trials after a search asked
    for ``asked``: that count when it was cut short (Ctrl-C, --timeout), or else as many
    trials again, added to those it holds."""
    return asked if finished < asked else finished + asked


def finished_trials(storage: str, name: str) -> int:
    """The trials of study ``name`` that --trials counts, as the study holds them now."""
    with open_results(storage) as results:
        return results.study(name).counts.finished


def continue_adding(ctx: click.Context, storage: str, name: str, asked: int) -> str:
    """The command that continues study ``name`` with as many trials again as were asked."""
    return continue_command(ctx, name, finished_trials(storage, name) + asked)


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
            text = masked(one) if param.name == "storage" else _as_typed(one)
            words += [param.opts[-1], shlex.quote(text)]
    return words


def _as_typed(value: object) -> str:
    # click hands --timeout 120 back as 120.0, which no one typed.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def continue_command(ctx: click.Context, study: str, trials: int) -> str:
    """The ``tuner search`` (or ``tuner worker``) that continues this study: the options
    given but those the study keeps, with its name and a new --trials, each word quoted for a
    shell to paste into."""
    given = given_options(
        ctx, leave_out=("study", "new", "trials", "quiet", "verbose", *KEPT_ON_RESUME)
    )
    quoted = shlex.quote(study)
    named = [quoted] if ctx.command.name == "worker" else ["--study", quoted]
    return " ".join([program(), str(ctx.command.name), *named, "--trials", str(trials), *given])


def masked(url: str) -> str:
    # Here for start-up time: tuner.db brings in SQLAlchemy and alembic.
    from tuner.api import mask_url

    return mask_url(url)


def leaderboard(name: str, metric: str, top: Sequence[TrialSummary], results: Results) -> str:
    """The best finished trials as a table, best first, with the task's other metrics, as
    ``tuner best`` shows them; a line that says so when none is complete."""
    if not any(t.outcome is Outcome.COMPLETE for t in top):
        counts = Counter(t.outcome for t in results.trials(name))
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        return f"No complete trial yet in study {name} ({summary or 'no trials'})."
    summary = results.study(name)
    title = best_title(len(top), summary.counts.finished, metric, summary.direction)
    width = terminal_width()
    note = f"\n\n{left_out(summary, width)}" if summary.foreign else ""
    return f"{wrap(title, width)}\n{trial_table(top, metric, width)}{note}"
