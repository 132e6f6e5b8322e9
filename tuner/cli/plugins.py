"""``tuner plugins`` and ``tuner schedule``: what is loaded, and what a schedule does."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import click

from tuner.cli import format_option, load_registry, plugin_option
from tuner.cli.output import echo_json, number, sparkline, table, wide_option, wrap
from tuner.errors import BadInput, did_you_mean
from tuner.plugins import load_plugins
from tuner.space import Choice, parse_param

KIND_KEYS = {"optimizer": "optimizers", "schedule": "schedules", "task": "tasks"}


@click.command("plugins")
@plugin_option
@wide_option
@format_option("table", "json")
def plugins_command(plugins: Sequence[str], width: int | None, fmt: str) -> None:
    """List the plugins loaded, what each one registers, and every search space.

    A plugin that failed to load is listed under errors, with the reason. Each search space
    is on a line of its own under its optimizer or schedule; --wide gives it a column.
    """
    registry = load_plugins(plugins)
    data: dict[str, Any] = {
        "plugins": [vars(p) for p in registry.plugins],
        **{key: [] for key in KIND_KEYS.values()},
        "errors": [{"plugin": e.plugin, "message": e.message} for e in registry.errors],
    }
    for kind, key in KIND_KEYS.items():
        for name, spec in registry.specs(kind).items():
            entry = {"name": name, "plugin": registry.plugin_of(kind, name).name}
            entry["description"] = spec.description
            if kind != "task":
                entry["space"] = {p: param.to_json() for p, param in spec.space.items()}
            data[key].append(entry)
    if fmt == "json":
        echo_json(data)
        return
    rows = [(p["name"], p["version"] or "-", p["source"]) for p in data["plugins"]]
    click.echo(table(["plugin", "version", "source"], rows, width=width, shrink=["source"]))
    for kind, key in KIND_KEYS.items():
        click.echo(f"\n{key.capitalize()}")
        rows = []
        for entry in data[key]:
            spec = registry.specs(kind)[entry["name"]]
            space = " ".join(f"{p}={param}" for p, param in getattr(spec, "space", {}).items())
            rows.append((entry["name"], entry["plugin"], entry["description"], space))
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
@click.argument("name")
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
    help="A schedule parameter (repeatable); the others take the middle of their range.",
)
@plugin_option
@format_option("table", "json")
def schedule_command(
    name: str,
    lr: float,
    steps: int,
    warmup: int | float,
    settings: Sequence[str],
    plugins: Sequence[str],
    fmt: str,
) -> None:
    """Show the learning rate of schedule NAME over --steps steps.

    Prints a sparkline of every step and a table of about 20 evenly spaced steps, the end of
    the warmup and the last step among them; --format json gives every step from 0 to --steps.

    \b
    Examples:
      tuner schedule cosine --lr 0.1 --steps 200 --warmup 10 --set end_factor=0
      tuner schedule linear --lr 0.01 --steps 300 --warmup 5%
    """
    import mlx.core as mx

    from tuner.lr import make_schedule

    registry = load_registry(plugins)
    spec = registry.get("schedule", name)
    warmup_steps = warmup if isinstance(warmup, int) else round(warmup * steps)
    if warmup_steps >= steps:
        given = warmup if isinstance(warmup, int) else f"{warmup:.4g} ({warmup_steps} steps)"
        raise BadInput(f"--warmup {given} must be below --steps {steps}")
    if not (math.isfinite(lr) and lr > 0):
        raise BadInput(f"--lr must be a number above 0, not {lr}")
    params = {key: param.midpoint() for key, param in spec.space.items()}
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep:
            raise BadInput(f"--set '{setting}': expected KEY=VALUE")
        if key not in spec.space:
            raise BadInput(f"--set '{setting}': {_unknown_param(name, key, spec.space)}")
        param = parse_param(value, spec.space[key], f"--set {key}")
        if not isinstance(param, Choice) or len(param.values) != 1:
            raise BadInput(f"--set '{setting}': give one value, not a range or a list")
        params[key] = param.values[0]
    try:
        schedule = make_schedule(spec, lr, steps, warmup_steps, params)
        # Every step at once, as the optimizer's uint64 step counter: one graph, not N.
        rates = mx.broadcast_to(schedule(mx.arange(steps + 1, dtype=mx.uint64)), (steps + 1,))
        mx.eval(rates)
    except Exception as error:
        settings_text = ", ".join(f"{k}={v}" for k, v in params.items()) or "no settings"
        raise BadInput(
            f"schedule '{name}' cannot run with {settings_text}: {type(error).__name__}: {error}"
        ) from None
    points = [{"step": step, "lr": rate} for step, rate in enumerate(rates.tolist())]
    if fmt == "json":
        echo_json(points)
        return
    settings_shown = [f"{key}={value}" for key, value in params.items()]
    warmup_shown = f"warmup={warmup_steps} steps ({100 * warmup_steps / steps:.3g}%)"
    click.echo(" ".join([name, *settings_shown, f"lr={lr:g}", f"steps={steps}", warmup_shown]))
    click.echo(sparkline([p["lr"] for p in points]))
    picked = sorted({*(round(i * steps / 20) for i in range(21)), warmup_steps, steps})
    click.echo(table(["step", "lr"], [(s, number(points[s]["lr"], 6)) for s in picked]))


def _unknown_param(name: str, key: str, space: dict[str, Any]) -> str:
    if not space:
        return f"'{name}' has no parameters"
    return f"'{name}' has no parameter '{key}'{did_you_mean(key, space)}"


COMMANDS = [plugins_command, schedule_command]
