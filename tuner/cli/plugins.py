"""``tuner plugins`` and ``tuner schedule``: what is loaded, and what a schedule does."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from tuner.api import PLUGIN_KINDS, load_plugins
from tuner.cli import completion, format_option, load_registry, plugin_option
from tuner.cli.output import echo_json, number, sparkline, table, wide_option, wrap
from tuner.errors import BadInput, missing_extra


@click.command("plugins")
@plugin_option
@wide_option
@format_option("table", "json")
def plugins_command(plugins: Sequence[str], width: int | None, fmt: str) -> None:
    """List the plugins loaded, what each one registers, and every search space.

    A plugin that failed to load is listed under errors, with the reason. Each search space
    is on a line of its own under its optimizer, schedule or task; --wide gives it a column.
    An optimizer's and a schedule's space is searched whenever they are; a task's parameters
    only where --space names them (tuner search --space digits.hidden=64,128).
    """
    registry = load_plugins(plugins)
    if fmt == "json":
        echo_json(registry.to_json())
        return
    rows = [(p.name, p.version or "-", p.source) for p in registry.plugins]
    click.echo(table(["plugin", "version", "source"], rows, width=width, shrink=["source"]))
    for kind in PLUGIN_KINDS:
        click.echo(f"\n{kind.capitalize()}s")
        if kind == "task":
            click.echo("A task's space is searched only where --space names it: TASK.PARAM=VALUES")
        rows = []
        for name, spec in registry.specs(kind).items():
            space = " ".join(f"{p}={param}" for p, param in getattr(spec, "space", {}).items())
            rows.append((name, registry.plugin_of(kind, name).name, spec.description, space))
        headers = ["name", "plugin", "description", "space"]
        fitted = table(headers, rows, width=width, below=["space"], shrink=["description"])
        click.echo(fitted if rows else "  (none)")
    if registry.errors:
        click.echo("\nErrors")
        for error in registry.errors:
            click.echo(wrap(f"  {error}", width, 4))


class WarmupType(click.ParamType):
    """Steps of warmup (``10``), or a part of the run: a percentage (``5%``) or a fraction below
    1 (``0.05``), the form of ``--space warmup`` and of ``tuner export``'s JSON. Steps come back
    as an int, a part as a float."""

    name = "STEPS|PERCENT%|FRACTION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | float:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        try:
            return _warmup(text)
        except ValueError:
            self.fail(
                f"{text!r} is not a number of steps (10), a percentage (5%) or a fraction below "
                "1 (0.05)",
                param,
                ctx,
            )


def _warmup(text: str) -> int | float:
    if text.isdigit():
        return int(text)
    part = float(text.removesuffix("%")) / (100 if text.endswith("%") else 1)
    # Written so that NaN fails too.
    if not 0 <= part < 1:
        raise ValueError(text)
    return part


@click.command("schedule")
@click.argument("name", shell_complete=completion.schedules)
@click.option("--lr", type=float, required=True, help="Peak learning rate.")
@click.option("--steps", type=click.IntRange(min=1), required=True, help="Steps of the run.")
@click.option(
    "--warmup",
    type=WarmupType(),
    default=0,
    show_default=True,
    help="Linear warmup from 0 before the schedule: steps (10), or a part of the run (5% or "
    "0.05, as --space warmup gives it), rounded to steps as a search rounds it.",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="A schedule parameter (repeatable); the others take the middle of their range. "
    "With --plot, a key given more than once draws a line for each value.",
)
@click.option(
    "--plot",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Draw the schedule to FILE: .png (matplotlib) or .html (plotly), with the report "
    "extra: pip install 'tuner[report]'.",
)
@plugin_option
@format_option("table", "json")
def schedule_command(
    name: str,
    lr: float,
    steps: int,
    warmup: int | float,
    settings: Sequence[str],
    plot: Path | None,
    plugins: Sequence[str],
    fmt: str,
) -> None:
    """Show the learning rate of schedule NAME over --steps steps.

    Prints a sparkline of every step and a table of about 20 evenly spaced steps, the end of
    the warmup and the last step among them; --format json gives every step from 0 to --steps.
    --plot FILE draws it instead, one line for each variant of --set.

    \b
    Examples:
      tuner schedule cosine --lr 0.1 --steps 200 --warmup 10 --set end_factor=0
      tuner schedule linear --lr 0.01 --steps 300 --warmup 5%
      tuner schedule cosine --lr 0.1 --steps 200 \\
          --set end_factor=0 --set end_factor=0.5 --plot cosine.png
    """
    # Here for start-up time: tuner.lr brings in MLX.
    from tuner.api import schedule_rates, schedule_variants, warmup_steps

    if plot is not None:
        try:
            # Here for start-up time, and because the extra may be missing.
            from tuner.api import check_destination, check_kind, plot_schedule, write_whole
        except ModuleNotFoundError as error:
            raise missing_extra(error, "tuner schedule --plot") from None
        check_kind(plot)
        check_destination(plot)
    spec = load_registry(plugins).get("schedule", name)
    warmup = warmup_steps(warmup, steps)
    variants = schedule_variants(spec, settings)
    if plot is not None:
        drawn = [(params, schedule_rates(spec, lr, steps, warmup, params)) for params in variants]
        title = f"{name}: lr={lr:g}, {steps} steps, warmup {warmup} steps"
        write_whole(plot_schedule(title, drawn, plot), plot)
        click.echo(f"Wrote {plot}: {name}, {len(variants)} variant{'s' * (len(variants) > 1)}.")
        return
    if len(variants) > 1:
        keys = sorted({k for v in variants for k in v if v[k] != variants[0][k]})
        raise BadInput(
            f"--set gives {len(variants)} variants of {', '.join(keys)}: --plot FILE draws them "
            "all; the table and JSON show one"
        )
    (params,) = variants
    rates = schedule_rates(spec, lr, steps, warmup, params)
    if fmt == "json":
        echo_json([{"step": step, "lr": rate} for step, rate in enumerate(rates)])
        return
    settings_shown = [f"{key}={value}" for key, value in params.items()]
    warmup_shown = f"warmup={warmup} steps ({100 * warmup / steps:.3g}%)"
    click.echo(" ".join([name, *settings_shown, f"lr={lr:g}", f"steps={steps}", warmup_shown]))
    click.echo(sparkline(rates))
    picked = sorted({*(round(i * steps / 20) for i in range(21)), warmup, steps})
    click.echo(table(["step", "lr"], [(s, number(rates[s], 6)) for s in picked]))


COMMANDS = [plugins_command, schedule_command]
