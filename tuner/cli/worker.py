"""``tuner worker``: join a study from another terminal or machine, with the settings it was
made with."""

from __future__ import annotations

from collections.abc import Sequence

import click

from tuner.api import parse_confirm, parse_population, watch_lifeline
from tuner.cli import completion, plugin_option, storage_option
from tuner.cli.closing import given_options
from tuner.cli.search import drive
from tuner.cli.shared_options import check_confirm, log_to_option, output_options, population_option


@click.command("worker")
@click.argument("study", shell_complete=completion.studies)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    help="Finished trials the study should hold, counting every worker's: each worker stops "
    "once it does, or will once the trials in flight end [the --trials of the search that "
    "last ran on it].",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="End this worker after this long: its trial in flight stops at its next step, or "
    "is ended 3 s later if its step hangs.",
)
@click.option(
    "--confirm",
    metavar="KxS",
    default="0",
    show_default=True,
    callback=check_confirm,
    help="Confirm the K best configurations with S seeds when done (see tuner search); "
    "run it in one worker, or tuner confirm once all are done.",
)
@storage_option
@population_option
@log_to_option
@plugin_option
@output_options
def worker_command(
    study: str,
    trials: int | None,
    timeout: float | None,
    confirm: str,
    storage: str,
    population: str,
    log_to: str | None,
    plugins: Sequence[str],
    quiet: bool,
    verbose: bool,
) -> None:
    """Run trials of STUDY, which a tuner search made, beside its other workers.

    The task, search space, steps, metric, sampler and pruner come from the study's record,
    not from options; only the plugins that register them must be loaded here (those
    installed are; give a file's with --plugin). Start as many workers as there are cores, on
    as many machines as share --storage (PostgreSQL across machines): Optuna hands each its
    own trials. Ctrl-C, SIGTERM and SIGHUP stop a worker as they stop tuner search.

    \b
    Examples:
      tuner worker digits-brisk-otter --storage postgresql+psycopg://db/tuner
      tuner worker digits-brisk-otter --trials 200 \\
          --storage postgresql+psycopg://db/tuner
    """
    helper = watch_lifeline()
    # Here for start-up time: the study's settings are read with SQLAlchemy.
    from tuner.api import worker_config

    ctx = click.get_current_context()
    config = worker_config(
        storage,
        study,
        trials=trials,
        timeout=timeout,
        confirm=parse_confirm(confirm),
        population=parse_population(population),
        command=" ".join(["tuner", "worker", study, *given_options(ctx, leave_out=["study"])]),
    )
    drive(
        ctx,
        config,
        plugins,
        storage,
        None,
        quiet=quiet,
        verbose=verbose,
        helper=helper,
        log_to=log_to,
    )


COMMANDS = [worker_command]
