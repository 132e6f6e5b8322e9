"""``tuner plugins`` and ``tuner schedule``: what is loaded, and what a schedule does."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import click

from tuner.cli import format_option, load_registry, plugin_option
from tuner.cli.output import echo_json, number, sparkline, table
from tuner.errors import BadInput, did_you_mean
from tuner.plugins import load_plugins
from tuner.space import Choice, parse_param

KIND_KEYS = {"optimizer": "optimizers", "schedule": "schedules", "task": "tasks"}


@click.command("plugins")
@plugin_option
@format_option("table", "json")
def plugins_command(plugins: Sequence[str], fmt: str) -> None:
    """List the plugins loaded, what each one registers, and every search space.

    A plugin that failed to load is listed under errors, with the reason.
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
    click.echo(table(["plugin", "version", "source"], rows))
    for kind, key in KIND_KEYS.items():
        click.echo(f"\n{key.capitalize()}")
        rows = []
        for entry in data[key]:
            spec = registry.specs(kind)[entry["name"]]
            space = " ".join(f"{p}={param}" for p, param in getattr(spec, "space", {}).items())
            rows.append((entry["name"], entry["plugin"], entry["description"], space))
        headers = ["name", "plugin", "description", "space"]
        click.echo(table(headers, rows) if rows else "  (none)")
    if registry.errors:
        click.echo("\nErrors")
        for error in registry.errors:
            click.echo(f"  {error}")


@click.command("schedule")
@click.argument("name")
@click.option("--lr", type=float, required=True, help="Peak learning rate.")
@click.option("--steps", type=click.IntRange(min=1), required=True, help="Steps of the run.")
@click.option(
    "--warmup",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Steps of linear warmup from 0 before the schedule.",
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
    warmup: int,
    settings: Sequence[str],
    plugins: Sequence[str],
    fmt: str,
) -> None:
    """Show the learning rate of schedule NAME at every step from 0 to --steps.

    \b
    Example:
      tuner schedule cosine --lr 0.1 --steps 200 --warmup 10 --set end_factor=0
    """
    import mlx.core as mx

    from tuner.lr import make_schedule

    registry = load_registry(plugins)
    spec = registry.get("schedule", name)
    if warmup >= steps:
        raise BadInput(f"--warmup {warmup} must be below --steps {steps}")
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
        schedule = make_schedule(spec, lr, steps, warmup, params)
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
    click.echo(
        " ".join([name, *settings_shown, f"lr={lr:g}", f"steps={steps}", f"warmup={warmup}"])
    )
    click.echo(sparkline([p["lr"] for p in points]))
    stride = max(1, steps // 20)
    picked = sorted({*range(0, steps + 1, stride), warmup, steps})
    click.echo(table(["step", "lr"], [(s, number(points[s]["lr"], 6)) for s in picked]))


def _unknown_param(name: str, key: str, space: dict[str, Any]) -> str:
    if not space:
        return f"'{name}' has no parameters"
    return f"'{name}' has no parameter '{key}'{did_you_mean(key, space)}"


COMMANDS = [plugins_command, schedule_command]
