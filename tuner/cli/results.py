"""``tuner studies / best / trials / show / compare``: what people ask after a search.

Each command is one call of :mod:`tuner.query`, printed as a table for people or as JSON (and,
for the listings, CSV) for scripts and pandas. The CSV of a listing is its JSON flattened the
way ``pandas.json_normalize`` flattens it: ``params.lr``, ``metrics.val_loss``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

import click

from tuner.cli import format_option, storage_option
from tuner.cli.output import (
    SPARKLINE,
    echo_json,
    number,
    sparkline,
    table,
    wide_option,
    wrap,
)
from tuner.cli.trials import confirmation_table, trial_table, value_text
from tuner.compare import GROUPINGS
from tuner.query import SORTS, open_results
from tuner.results import Comparison, Confirmed, Outcome, StudySummary, TrialDetail

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
    if fmt == "json":
        echo_json([study.to_json() for study in studies])
    elif not studies:
        click.echo(f"No study in {results.storage} yet: tuner search makes one.")
    else:
        click.echo(_studies_table(studies, width))


def _studies_table(studies: Sequence[StudySummary], width: int | None) -> str:
    rows = []
    for study in studies:
        counts, best = study.counts, study.best
        # One column, of the outcomes that occurred: a column for each would not fit.
        outcomes = str(counts)
        if not study.in_optuna:
            outcomes = f"deleted from Optuna's tables; tuner delete {study.name} removes the rest"
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
@click.argument("study")
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
    When the study has confirmation runs (see tuner confirm), their table follows the trials'.

    \b
    Examples:
      tuner best digits-brisk-otter
      tuner best digits-brisk-otter -n 10 --optimizer adamw --format json
    """
    chosen = {"optimizer": optimizers or None, "schedule": schedules or None}
    with open_results(storage) as results:
        best = results.best(study, n, **chosen)
        if fmt != "table":
            _echo_records([trial.to_json() for trial in best], fmt)
            return
        summary = results.study(study)
        counts = results.counts(study, **chosen)
        confirmation = results.confirmation(study)
    among = _among(optimizers, schedules)
    if not best:
        click.echo(f"No finished trial in study {study}{among} ({counts}).")
        return
    title = f"Top {len(best)} of {counts.finished} finished trials by {summary.metric}{among}"
    title = wrap(f"{title}, {_order(summary.direction)}", width)
    click.echo(f"{title}\n{trial_table(best, summary.metric, width)}")
    if confirmation.configs:
        click.echo(f"\n{confirmation_table(confirmation, width)}")


def _among(optimizers: Sequence[str], schedules: Sequence[str]) -> str:
    chosen = [
        f"{kind} {' or '.join(names)}"
        for kind, names in (("optimizer", optimizers), ("schedule", schedules))
        if names
    ]
    return f" with {' and '.join(chosen)}" if chosen else ""


def _order(direction: str) -> str:
    better = "lowest" if direction == "minimize" else "highest"
    return f"{better} first; complete trials before pruned ones"


@click.command("trials")
@click.argument("study")
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
        summary = results.study(study) if fmt == "table" else None
    if summary is None:
        _echo_records([trial.to_json() for trial in trials], fmt)
    elif not trials:
        click.echo(f"No trial of study {study} matches ({summary.counts}).")
    else:
        click.echo(trial_table(trials, summary.metric, width))


@click.command("show")
@click.argument("study")
@click.argument("number", type=int)
@storage_option
@wide_option
@format_option("table", "json")
def show_command(study: str, number: int, storage: str, width: int | None, fmt: str) -> None:
    """Show one trial of STUDY in full: parameters, outcome, timings, provenance, curve."""
    with open_results(storage) as results:
        trial = results.trial(study, number)
        summary = results.study(study)
        configs = results.confirmation(study).configs
    confirmed = next((c for c in configs if c.trial.number == number), None)
    if fmt == "json":
        echo_json({**trial.to_json(), "confirmation": confirmed and confirmed.to_json()})
    else:
        click.echo(_trial_page(trial, summary, confirmed, width))


def _trial_page(
    trial: TrialDetail, study: StudySummary, confirmed: Confirmed | None, width: int | None
) -> str:
    value = f", {study.metric} {number(trial.value)}" if trial.value is not None else ""
    heading = f"Trial {trial.number} of study {study.name} ({study.task}): {trial.outcome}{value}"
    params = [(k, value_text(v)) for k, v in trial.params.items()]
    sections = [wrap(heading, width), table(["parameter", "value"], params, width=width)]
    about = _about(trial)
    if confirmed is not None:
        about.insert(2, ("confirmed", _confirmed(confirmed)))
    sections.append(_pairs(about, width))
    curves = [
        _curve("loss", trial.losses, f"{len(trial.losses)} steps", width),
        _curve("lr", trial.lrs, "", width),
    ]
    sections.append("\n".join(line for line in curves if line) or "no learning curve recorded")
    if trial.evals:
        keys = list(dict.fromkeys(k for e in trial.evals for k in e))
        rows = [[value_text(e.get(k)) for k in keys] for e in trial.evals]
        sections.append(table(keys, rows, width=width))
    return "\n\n".join(sections)


def _about(trial: TrialDetail) -> list[tuple[str, str]]:
    provenance = trial.provenance
    timing = "-"
    if trial.duration_s is not None:
        timing = f"{trial.duration_s:.3g} s"
        if trial.steps is not None:
            timing = f"{trial.steps} steps in {timing}"
        if trial.step_time_s is not None:
            timing += f", {trial.step_time_s * 1000:.3g} ms a step"
        if trial.compiled is not None:
            timing += ", compiled" if trial.compiled else ", eager"
    finished = "-" if trial.finished_at is None else f"{trial.finished_at:%Y-%m-%d %H:%M:%S} UTC"
    seed = "-" if trial.seed is None else str(trial.seed)
    return [
        ("outcome", f"{trial.outcome} (Optuna: {trial.state})"),
        ("reason", trial.reason or "-"),
        ("metrics", " ".join(f"{k}={number(v)}" for k, v in trial.metrics.items()) or "-"),
        ("time", timing),
        *(
            [
                (
                    "population",
                    f"{trial.population} (trained with the trials whose population is too)",
                )
            ]
            if trial.population is not None
            else []
        ),
        ("finished", finished),
        ("seed", f"{seed} (study seed {provenance.seed})"),
        ("device", provenance.device),
        ("versions", ", ".join(f"{lib} {v}" for lib, v in provenance.versions.items())),
        ("plugins", ", ".join(f"{p} {v or '-'}" for p, v in provenance.plugins.items())),
        ("command", provenance.command),
    ]


def _confirmed(config: Confirmed) -> str:
    """A configuration's confirmation runs in a line: the mean and spread of their values."""
    complete = len(config.values)
    if config.mean is None:
        return f"no run of {len(config.runs)} completed"
    spread = f" ± {number(config.std)}" if config.std is not None else ""
    tests = "".join(f", {name} {number(value)}" for name, value in config.test.items())
    return f"mean {number(config.mean)}{spread} over {complete} of {len(config.runs)} seeds{tests}"


def _pairs(pairs: Sequence[tuple[str, str]], width: int | None) -> str:
    keys = max(len(key) for key, _ in pairs)
    return "\n".join(wrap(f"{key.ljust(keys)}  {value}", width, keys + 2) for key, value in pairs)


def _curve(name: str, values: Sequence[float], note: str, width: int | None) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    summary = f"{number(values[0])} → {number(values[-1])}, min {number(min(finite))}"
    summary += f", {note}" if note else ""
    points = SPARKLINE if width is None else min(SPARKLINE, width - len(summary) - 8)
    return f"{name.ljust(4)}  {sparkline(values, points)}  {summary}"


@click.command("compare")
@click.argument("study")
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
    confirmed = confirmation if confirmation.configs else None
    if fmt == "json":
        echo_json({**comparison.to_json(), "confirmation": confirmed and confirmed.to_json()})
        return
    click.echo(_comparison_table(comparison, width))
    if confirmed is not None:
        click.echo(f"\n{confirmation_table(confirmed, width)}")


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
    writer.writerows(rows)
    click.echo(out.getvalue(), nl=False)


def _flatten(record: dict[str, Any]) -> dict[str, Any]:
    """One level of nesting as ``pandas.json_normalize`` flattens it: ``params.lr``."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{inner}": item for inner, item in value.items()})
        else:
            flat[key] = value
    return flat


COMMANDS = [studies_command, best_command, trials_command, show_command, compare_command]
