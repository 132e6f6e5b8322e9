"""``tuner studies / best / trials / compare``: what people ask after a search.

Each command is one call of :mod:`tuner.query`, printed as a table for people or as JSON (and,
for the listings, CSV) for scripts and pandas. The CSV of a listing is its JSON flattened the
way ``pandas.json_normalize`` flattens it: ``params.lr``, ``metrics.val_loss``.
"""

from __future__ import annotations

import csv
import io
import shlex
from collections.abc import Sequence
from typing import Any

import click

from tuner.api import GROUPINGS, SORTS, open_results
from tuner.cli import completion, format_option, storage_option
from tuner.cli.output import echo_json, number, table, wide_option, wrap
from tuner.cli.trials import best_title, confirmation_table, left_out, trial_table
from tuner.results import Comparison, Outcome, StudySummary

# The CSV's first columns, as in TrialSummary.to_json; params.* and metrics.* follow.
CSV_COLUMNS = (
    "number",
    "value",
    "state",
    "outcome",
    "optimizer",
    "schedule",
    "duration_s",
    "steps",
    "reason",
    "finished_at",
)


def _filter_options(command: Any) -> Any:
    """Add the repeatable ``--optimizer NAME`` and ``--schedule NAME`` filters."""
    for kind in ("schedule", "optimizer"):
        command = click.option(
            f"--{kind}",
            f"{kind}s",
            multiple=True,
            metavar="NAME",
            shell_complete=completion.used(kind),
            help=f"Only trials of this {kind} (repeatable).",
        )(command)
    return command


@click.command("studies")
@storage_option
@wide_option
@format_option("table", "json")
def studies_command(storage: str, width: int | None, fmt: str) -> None:
    """List the studies in a storage: their task, trials and best result."""
    with open_results(storage) as results:
        studies = results.studies()
        optuna_only = results.optuna_only_studies()
        note = _optuna_only_note(results.storage, optuna_only, results.has_tuner_tables)
    note = "\n".join(n for n in [*(left_out(s, width) for s in studies), wrap(note, width)] if n)
    if fmt == "json":
        echo_json([study.to_json() for study in studies])
        # The JSON lists tuner's studies alone, in its stable form; the rest is said aside.
        if note:
            click.echo(note, err=True)
        return
    if studies:
        click.echo(_studies_table(studies, width) + ("\n" if note else ""))
    elif not note:
        click.echo(f"No study in {results.storage} yet: tuner search makes one.")
    if note:
        click.echo(note)


def _optuna_only_note(storage: str, optuna_only: dict[str, int], has_tables: bool) -> str:
    """What to say of the studies only Optuna's tables hold; nothing when there are none."""
    if not optuna_only:
        return ""
    held = ", ".join(f"{name} ({trials} trials)" for name, trials in optuna_only.items())
    one = len(optuna_only) == 1
    count, them = (
        (f"{len(optuna_only)} study", "it") if one else (f"{len(optuna_only)} studies", "them")
    )
    why = (
        f"tuner's tables are missing: restore them from a backup to read {them} with tuner; "
        "tuner db upgrade makes them anew, empty."
        if not has_tables
        else f"Optuna or another tool made {them}, or tuner's records of {them} were deleted."
    )
    return (
        f"Optuna's tables in {storage} hold {count} that tuner has no record of: {held}. {why} "
        "tuner delete NAME removes a study from Optuna's tables."
    )


def _studies_table(studies: Sequence[StudySummary], width: int | None) -> str:
    rows = []
    for study in studies:
        counts, best = study.counts, study.best
        # One column, of the outcomes that occurred: a column for each would not fit.
        outcomes = str(counts)
        if not study.in_optuna:
            delete = f"tuner delete {shlex.quote(study.name)}"
            outcomes = f"deleted from Optuna's tables; {delete} removes the rest"
        rows.append(
            (
                study.name,
                study.task,
                counts.total if study.in_optuna else "-",
                outcomes,
                study.metric,
                "-" if best is None else number(best.value),
                "-" if best is None else f"{best.optimizer} + {best.schedule}",
                f"{study.created_at:%Y-%m-%d %H:%M}",
            )
        )
    headers = ["study", "task", "trials", "outcomes", "metric", "best"]
    headers += ["best optimizer", "created (UTC)"]
    return table(headers, rows, width=width, below=["outcomes"], shrink=["best optimizer"])


@click.command("best")
@click.argument("study", shell_complete=completion.studies)
@click.option(
    "-n",
    "--top",
    "n",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="How many trials.",
)
@_filter_options
@storage_option
@wide_option
@format_option("table", "json", "csv")
def best_command(
    study: str,
    n: int,
    optimizers: tuple[str, ...],
    schedules: tuple[str, ...],
    storage: str,
    width: int | None,
    fmt: str,
) -> None:
    """Show the best finished trials of STUDY, best first.

    Complete trials rank before pruned ones, and pruned before diverged, since a pruned
    trial's value was measured before the end; then by value in the study's direction, ties
    by trial number. The JSON is a list of objects whose form is stable (see the README).
    When the study has confirmation runs (see tuner confirm), their table follows the trials',
    unless --optimizer or --schedule narrows them.

    \b
    Examples:
      tuner best digits-brisk-otter
      tuner best digits-brisk-otter -n 10 --optimizer adamw --format json
    """
    chosen = {"optimizer": optimizers or None, "schedule": schedules or None}
    with open_results(storage) as results:
        best = results.best(study, n, **chosen)
        summary = results.study(study)
        if fmt != "table":
            _echo_records([trial.to_json() for trial in best], fmt)
            _note_aside(summary)
            return
        counts = results.counts(study, **chosen)
        confirmation = results.confirmation(study)
    among = _among(optimizers, schedules)
    if not best:
        click.echo(f"No finished trial in study {study}{among} ({counts}).")
    else:
        title = best_title(len(best), counts.finished, summary.metric, summary.direction, among)
        title = wrap(title, width)
        click.echo(f"{title}\n{trial_table(best, summary.metric, width)}")
    # The study's, whatever the trials were narrowed to: shown only beside all of them.
    if best and confirmation.configs and not among:
        click.echo(f"\n{confirmation_table(confirmation, width)}")
    if summary.foreign:
        click.echo(f"\n{left_out(summary, width)}")


def _among(optimizers: Sequence[str], schedules: Sequence[str]) -> str:
    chosen = [
        f"{kind} {' or '.join(names)}"
        for kind, names in (("optimizer", optimizers), ("schedule", schedules))
        if names
    ]
    return f" with {' and '.join(chosen)}" if chosen else ""


@click.command("trials")
@click.argument("study", shell_complete=completion.studies)
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice([outcome.value for outcome in Outcome]),
    help="Only trials in this state (repeatable).",
)
@_filter_options
@click.option(
    "--sort",
    type=click.Choice(SORTS),
    default="number",
    show_default=True,
    help="value: best first, as tuner best ranks; duration: shortest first.",
)
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="At most N trials.")
@storage_option
@wide_option
@format_option("table", "json", "csv")
def trials_command(
    study: str,
    states: tuple[str, ...],
    optimizers: tuple[str, ...],
    schedules: tuple[str, ...],
    sort: str,
    limit: int | None,
    storage: str,
    width: int | None,
    fmt: str,
) -> None:
    """List the trials of STUDY, running and failed ones included.

    \b
    Examples:
      tuner trials digits-brisk-otter --sort value --limit 20
      tuner trials digits-brisk-otter --state pruned --state diverged --format csv
    """
    with open_results(storage) as results:
        trials = results.trials(
            study,
            state=states or None,
            optimizer=optimizers or None,
            schedule=schedules or None,
            sort=sort,
            limit=limit,
        )
        summary = results.study(study)
    if fmt != "table":
        _echo_records([trial.to_json() for trial in trials], fmt)
        _note_aside(summary)
        return
    if not trials:
        click.echo(f"No trial of study {study} matches ({summary.counts}).")
    else:
        click.echo(trial_table(trials, summary.metric, width))
    if summary.foreign:
        click.echo(f"\n{left_out(summary, width)}")


@click.command("compare")
@click.argument("study", shell_complete=completion.studies)
@click.option(
    "--by",
    type=click.Choice(GROUPINGS),
    default="optimizer",
    show_default=True,
    help="Group the trials by optimizer or by schedule.",
)
@storage_option
@wide_option
@format_option("table", "json")
def compare_command(study: str, by: str, storage: str, width: int | None, fmt: str) -> None:
    """Compare the optimizers (or schedules) of STUDY, and say which leads and how clearly.

    A lead is clear when the gap between the two leading groups' best values is larger than
    the interquartile range of their complete values. When the study has confirmation runs
    (see tuner confirm), their table and verdict follow, and the JSON holds them under
    "confirmation".
    """
    with open_results(storage) as results:
        comparison = results.compare(study, by)
        confirmation = results.confirmation(study)
        summary = results.study(study)
    confirmed = confirmation if confirmation.configs else None
    if fmt == "json":
        echo_json({**comparison.to_json(), "confirmation": confirmed and confirmed.to_json()})
        _note_aside(summary)
        return
    click.echo(_comparison_table(comparison, width))
    if confirmed is not None:
        click.echo(f"\n{confirmation_table(confirmed, width)}")
    if summary.foreign:
        click.echo(f"\n{left_out(summary, width)}")


def _comparison_table(comparison: Comparison, width: int | None) -> str:
    rows = [
        (
            group.name or "-",
            group.counts.total,
            group.counts.complete,
            group.counts.pruned,
            group.counts.diverged,
            number(group.best_value),
            number(group.median),
            number(group.iqr),
            "-" if group.best_trial is None else group.best_trial,
        )
        for group in comparison.groups
    ]
    headers = [comparison.by, "trials", "complete", "pruned", "diverged"]
    headers += [f"best {comparison.metric}", "median", "IQR", "best trial"]
    return f"{table(headers, rows, width=width)}\n\n{wrap(comparison.verdict, width)}"


def _note_aside(study: StudySummary) -> None:
    # On stderr, so that the JSON or CSV on stdout stays in its stable form.
    if study.foreign:
        click.echo(left_out(study, None), err=True)


def _echo_records(records: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        echo_json(records)
        return
    rows = [_flatten(record) for record in records]
    nested = dict.fromkeys(k for row in rows for k in row if k not in CSV_COLUMNS)
    columns = [*CSV_COLUMNS, *sorted(nested, key=lambda k: k.startswith("metrics."))]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: _cell(value) for key, value in row.items()} for row in rows)
    click.echo(out.getvalue(), nl=False)


def _cell(value: Any) -> Any:
    # A spreadsheet runs a text cell that begins so as a formula (OWASP's CSV injection);
    # a leading ' makes it text again.
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return f"'{value}"
    return value


def _flatten(record: dict[str, Any]) -> dict[str, Any]:
    """One level of nesting as ``pandas.json_normalize`` flattens it: ``params.lr``."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{inner}": item for inner, item in value.items()})
        else:
            flat[key] = value
    return flat


COMMANDS = [studies_command, best_command, trials_command, compare_command]
