"""The options that ``tuner search`` and ``tuner worker`` share, with their checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from tuner.api import LOG_TO_ENV, parse_confirm, parse_jobs, parse_population
from tuner.errors import BadInput


def _kept_as_typed(parse: Callable[[str], object]) -> Callable[..., str]:
    """A callback that checks a value with ``parse``, for click's usage error, and keeps it as
    typed, to be given again in the command that continues the study (``--jobs auto`` parses
    to None, which no one could type)."""

    def check(ctx: click.Context, param: click.Parameter, value: str) -> str:
        try:
            parse(value)
        except BadInput as error:
            # Said, to someone who set the option's variable long ago and types no option.
            given = ctx.get_parameter_source(param.name or "") is ParameterSource.ENVIRONMENT
            where = f" (from {param.envvar})" if given else ""
            why = str(error).removeprefix(f"{param.opts[0]} ").replace(":", f"{where}:", 1)
            raise click.BadParameter(why, ctx, param) from None
        return value

    return check


check_confirm = _kept_as_typed(parse_confirm)
check_jobs = _kept_as_typed(parse_jobs)
_check_population = _kept_as_typed(parse_population)


def population_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--population``, which ``tuner search`` and ``tuner worker`` share."""
    return click.option(
        "--population",
        metavar="[auto|K]",
        default="auto",
        show_default=True,
        callback=_check_population,
        help="Train trials that share an optimizer and its discrete settings K at a time, in "
        "one vectorised step, each still its own trial with its own schedule, seed and "
        "result; auto grows K with the finished trials, from 4 at 64 to what the model's size "
        "and the device allow (16 for small models on a CPU, from 256 finished trials), 1 "
        "trains one trial at a time.",
    )(command)


def _check_log_to(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # Checked before anything is opened or written; tuner.trackers imports no tracker. Here for
    # start-up time: it brings in logging, which only --log-to needs.
    from tuner.api import parse_log_to

    return None if value is None else str(parse_log_to(value))


def log_to_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--log-to``, which ``tuner search`` and ``tuner worker`` share."""
    return click.option(
        "--log-to",
        metavar="TRACKER[:WHERE]",
        envvar=LOG_TO_ENV,
        callback=_check_log_to,
        help="Log each trial this process runs (its parameters, curve and outcome) as a run "
        "of an experiment named after the study: mlflow[:TRACKING_URI] (pip install "
        "'tuner[mlflow]') or wandb[:PROJECT] (pip install 'tuner[wandb]'); the workers of "
        "--jobs log theirs too. Env: TUNER_LOG_TO.",
    )(command)


def output_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--quiet`` and ``--verbose``, which ``tuner search`` and ``tuner worker`` share."""
    command = click.option(
        "-v",
        "--verbose",
        is_flag=True,
        help="Print a line on stderr for every finished trial, on a terminal or not.",
    )(command)
    return click.option(
        "-q", "--quiet", is_flag=True, help="Print only the study's name at the end."
    )(command)
