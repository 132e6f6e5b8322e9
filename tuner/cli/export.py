"""``tuner export``: a trial's optimizer and schedule, to train with outside tuner."""

from __future__ import annotations

from collections.abc import Sequence

import click

from tuner.api import export_trial, python_code
from tuner.cli import completion, load_registry, plugin_option, storage_option
from tuner.cli.output import echo_json


@click.command("export")
@click.argument("study", shell_complete=completion.studies)
@click.option(
    "--trial",
    "number",
    type=click.IntRange(min=0),
    metavar="N",
    help="The trial's number [the confirmed winner, or else the best complete trial].",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["python", "json"]),
    default="python",
    show_default=True,
    help="python: MLX code that builds the optimizer; json: a config for tuner.build_optimizer.",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    metavar="N",
    help="Stretch the schedule over N steps, to train longer (or shorter) than the trial; "
    "the warmup stays the same fraction of them [the trial's steps].",
)
@storage_option
@plugin_option
def export_command(
    study: str,
    number: int | None,
    fmt: str,
    steps: int | None,
    storage: str,
    plugins: Sequence[str],
) -> None:
    """Print a trial's optimizer and schedule as MLX code, or as a JSON config.

    The code builds `optimizer` with mlx.optimizers alone when the plugins give their MLX code,
    as the built-ins from mlx.optimizers do; otherwise it calls tuner.build_optimizer. The JSON
    config is what tuner.build_optimizer(config, steps=...) takes. Both give the trial's
    learning rates, and the updates of tuner's own build of its optimizer, bit for bit. A
    pruned or failed trial is exported when named with --trial, with a note on stderr; so is an
    optimizer evaluated at other weights than it trains at, with the call that gives them.

    \b
    Examples:
      tuner export digits-brisk-otter > best_optimizer.py
      tuner export digits-brisk-otter --trial 12 --format json > trial12.json
      tuner export digits-brisk-otter --steps 3000 > train_longer.py
    """
    registry = load_registry(plugins)
    exported = export_trial(storage, study, number, registry, steps)
    code = python_code(exported.config, registry) if fmt == "python" else None
    for note in exported.notes:
        click.echo(f"Note: {note}", err=True)
    if code is None:
        echo_json(exported.config)
    else:
        click.echo(code, nl=False)


COMMANDS = [export_command]
