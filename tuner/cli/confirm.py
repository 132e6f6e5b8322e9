"""``tuner confirm``: train a study's best configurations again with fresh seeds, and say
whether its winner's lead is more than the seed-to-seed noise."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from tuner.api import Watcher
from tuner.cli import completion, format_option, load_registry, plugin_option, storage_option
from tuner.cli.output import echo_json, number, wide_option
from tuner.cli.trials import confirmation_table
from tuner.results import Outcome

if TYPE_CHECKING:
    from tuner.results import Run, TrialSummary


class _Lines(Watcher):
    """A line on stderr for each run as it ends."""

    def confirmed(self, trial: TrialSummary, index: int, seeds: int, run: Run) -> None:
        ended = number(run.value) if run.outcome is Outcome.COMPLETE else run.outcome
        click.echo(
            f"trial {trial.number} {trial.optimizer}+{trial.schedule}, seed {index + 1}/{seeds}: "
            f"{ended} in {run.duration_s:.1f}s",
            err=True,
        )


@click.command("confirm")
@click.argument("study", shell_complete=completion.studies)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Confirm the K best configurations, at most one per optimizer and schedule.",
    metavar="K",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Train each configuration with S fresh seeds.",
    metavar="S",
)
@plugin_option
@storage_option
@wide_option
@format_option("table", "json")
def confirm_command(
    study: str,
    top: int,
    seeds: int,
    plugins: Sequence[str],
    storage: str,
    width: int | None,
    fmt: str,
) -> None:
    """Train the best configurations of STUDY again, in full and unpruned, with fresh seeds.

    A trial's value comes from one seed: its lead may be luck. This trains the K best complete
    trials' configurations (at most one per optimizer and schedule pair) for the study's full
    steps, each with the same S seeds, and measures the task's held-out test set where it has
    one. The runs are stored with the study, apart from its trials, and no sampler learns from
    them; runs already stored are not run again. The verdict tests the winner's lead over the
    runner-up with Welch's t-test (two-sided, p < 0.05).

    \b
    Examples:
      tuner confirm digits-brisk-otter
      tuner confirm digits-brisk-otter --top 5 --seeds 5 --format json
    """
    # Here for start-up time: the confirmation runs bring in Optuna and MLX.
    from tuner.api import confirm_study

    watcher = _Lines() if fmt == "table" and sys.stderr.isatty() else Watcher()
    confirmation = confirm_study(
        storage, study, top, seeds, lambda: load_registry(plugins), watcher
    )
    if fmt == "json":
        echo_json(confirmation.to_json())
    else:
        click.echo(confirmation_table(confirmation, width))


COMMANDS = [confirm_command]
