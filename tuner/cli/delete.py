"""``tuner delete``: remove a study, Optuna's side and tuner's, in one transaction."""

from __future__ import annotations

import sys

import click

from tuner.cli import completion, format_option, storage_option
from tuner.cli.output import echo_json
from tuner.errors import BadInput


@click.command("delete")
@click.argument("study", shell_complete=completion.studies)
@click.option("-y", "--yes", is_flag=True, help="Delete without asking.")
@storage_option
@format_option("table", "json")
def delete_command(study: str, yes: bool, storage: str, fmt: str) -> None:
    """Delete STUDY: its trials and confirmation runs, from Optuna's tables and tuner's.

    Everything goes in one transaction, or nothing does; other studies in the storage are
    untouched. On a terminal it asks first; elsewhere give --yes. A study whose Optuna side
    another tool deleted (optuna delete-study, optuna-dashboard) is deleted the same way, and
    so is one that only Optuna's tables hold (made by Optuna, or tuner's tables dropped).

    \b
    Examples:
      tuner delete digits-brisk-otter
      tuner delete digits-brisk-otter --yes \\
          --storage postgresql+psycopg://me@db/tuner
    """
    # Here for start-up time: SQLAlchemy.
    from tuner.api import delete_study, study_contents

    held = study_contents(storage, study)
    summary = held.summary
    if summary is None:
        what = f"study {study}, which Optuna's tables alone hold ({held.trials} trials)"
    elif not held.in_optuna:
        what = f"what tuner kept of study {study} ({summary.task}; Optuna's side was deleted)"
    else:
        counts, runs = summary.counts, held.confirmation_runs
        what = f"study {study} ({summary.task}; {counts.total} trials"
        what += f": {counts}; {runs} confirmation runs)" if counts.total else f", {runs} runs)"
    if not yes:
        if not sys.stdin.isatty():
            raise BadInput("tuner delete asks first, and stdin is no terminal: give --yes")
        question = f"Delete {what} from {held.storage}? It cannot be undone."
        if not click.confirm(question, default=False):
            click.echo("Nothing deleted.", err=True)
            raise click.exceptions.Exit(1)
    rows = delete_study(storage, study)
    if fmt == "json":
        echo_json(
            {
                "study": study,
                "storage": held.storage,
                "in_tuner": summary is not None,
                "in_optuna": held.in_optuna,
                "trials": held.trials,
                "confirmation_runs": held.confirmation_runs,
                "rows": rows,
            }
        )
    else:
        click.echo(f"Deleted {what} from {held.storage}.")


COMMANDS = [delete_command]
