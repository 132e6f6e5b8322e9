"""``tuner search --config FILE``: the options of a search read from a search file
(:mod:`tuner.search_file`), each one that the command line gives overriding the file's."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from tuner.cli import UsageLine
from tuner.errors import BadInput

# Where the file read for this command waits, in ctx.meta, for the command to run.
_FILE = "tuner.search_file"


def _read(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # Eager, so that it runs before the other options take their values: the file's become
    # their defaults (click's default_map), below the command line and the environment.
    if value is None:
        return value
    # Here for start-up time: the search file's schema and tomllib, only for --config.
    from tuner.api import read_search_file

    try:
        file = read_search_file(value)
    except BadInput as error:
        raise UsageLine(str(error)) from None
    defaults = dict(file.settings)
    for key in ("optimizers", "schedules"):
        if key in defaults:
            defaults[key] = ",".join(defaults[key])
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    ctx.meta[_FILE] = file
    return value


def config_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--config FILE`` to ``tuner search``. A ``--space`` given besides the file's
    space overrides it parameter by parameter, as a later ``--space`` overrides an earlier
    one; the search's errors about a setting from the file name its line."""

    @functools.wraps(command)
    def with_file(config: str | None, **params: Any) -> Any:
        ctx = click.get_current_context()
        file = ctx.meta.get(_FILE)
        if file is None:
            return command(**params)
        given: tuple[str, ...] = ()
        if ctx.get_parameter_source("space") is ParameterSource.COMMANDLINE:
            given = tuple(params["space"])
            ctx.params["space"] = params["space"] = (*file.settings.get("space", ()), *given)
        from_file = ParameterSource.DEFAULT_MAP
        used = [key for key in file.settings if ctx.get_parameter_source(key) is from_file]
        try:
            return command(**params)
        except BadInput as error:
            raise BadInput(file.locate(str(error), [*used, "space"], given)) from None

    return click.option(
        "--config",
        type=click.Path(exists=True, dir_okay=False),
        metavar="FILE",
        is_eager=True,
        callback=_read,
        help="Read the options from a search file (TOML; `tuner show STUDY --config` writes "
        "one, examples/search.toml shows every key): the command line and TUNER_* variables "
        "override it, --space parameter by parameter.",
    )(with_file)
