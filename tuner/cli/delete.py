"""``tuner delete``: remove a study, Optuna's side and tuner's, in one transaction."""

from __future__ import annotations

import sys

import click

from tuner.cli import completion, format_option, storage_option
from tuner.cli.output import echo_json
from tuner.errors import BadInput
from tuner.query import open_results


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
      tuner delete digits-brisk-otter --yes --storage postgresql+psycopg://me@db/tuner
    """
    # Here for start-up time: SQLAlchemy.
    from tuner.api import delete_study

    with open_results(storage) as results:
        optuna_only = results.optuna_only_studies()
        if study in optuna_only:
            in_tuner, in_optuna, trials, runs = False, True, optuna_only[study], 0
            what = f"study {study}, which Optuna's tables alone hold ({trials} trials)"
        else:
            summary = results.study(study)
            runs = sum(len(config.runs) for config in results.confirmation(study).configs)
            in_tuner, in_optuna, counts = True, summary.in_optuna, summary.counts
            trials = counts.total
            what = f"study {study} ({summary.task}; {counts.total} trials"
            what += f": {counts}; {runs} confirmation runs)" if counts.total else f", {runs} runs)"
            if not in_optuna:
                what = (
                    f"what tuner kept of study {study} ({summary.task}; Optuna's side was deleted)"
                )
    if not yes:
        if not sys.stdin.isatty():
            raise BadInput("tuner delete asks first, and stdin is no terminal: give --yes")
        question = f"Delete {what} from {results.storage}? It cannot be undone."
        if not click.confirm(question, default=False):
            click.echo("Nothing deleted.", err=True)
            raise click.exceptions.Exit(1)
    rows = delete_study(storage, study)
    if fmt == "json":
        echo_json(
            {
                "study": study,
                "storage": results.storage,
                "in_tuner": in_tuner,
                "in_optuna": in_optuna,
                "trials": trials,
                "confirmation_runs": runs,
                "rows": rows,
            }
        )
    else:
        click.echo(f"Deleted {what} from {results.storage}.")


COMMANDS = [delete_command]
