"""The ``tuner`` command line: one click group, the options its commands share, and the rule
that every error is one line on stderr (exit 2 for bad usage, 1 for failures) unless
``TUNER_DEBUG=1``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import click

from tuner.errors import TunerError
from tuner.plugins import Registry, load_plugins

DEFAULT_STORAGE = "sqlite:///tuner.db"


class UsageLine(click.ClickException):
    """A usage error shown as one line, without click's usage banner."""

    exit_code = 2


class TunerGroup(click.Group):
    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as error:
            raise UsageLine(error.format_message()) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            raise UsageLine(error.format_message()) from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            if os.environ.get("TUNER_DEBUG") == "1":
                raise
            code = error.exit_code if isinstance(error, TunerError) else 1
            message = str(error) if isinstance(error, TunerError) else _unexpected(error)
            click.echo(f"Error: {message}", err=True)
            ctx.exit(code)


def _unexpected(error: Exception) -> str:
    return f"{type(error).__name__}: {error} (set TUNER_DEBUG=1 for the traceback)"


@click.group(cls=TunerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tuner")
def cli() -> None:
    """Find the best optimizer and learning-rate schedule for an MLX model.

    Optimizers, schedules and tasks are plugins; `tuner plugins` lists them. `tuner search`
    runs an Optuna study of short MLX trials and stores the results.
    """


def plugin_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the repeatable ``--plugin PATH_OR_MODULE`` option."""
    return click.option(
        "--plugin",
        "plugins",
        multiple=True,
        metavar="PATH_OR_MODULE",
        help="Load a plugin from a .py file or an importable module (repeatable). "
        "TUNER_PLUGINS=a,b does the same.",
    )(command)


def format_option(*choices: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add ``--format`` with the given choices, the first being the default."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default=choices[0],
        show_default=True,
        help="Output format: tables are for people, JSON for scripts.",
    )


def load_registry(plugins: Sequence[str]) -> Registry:
    """Load every plugin, warning on stderr about each one that failed."""
    registry = load_plugins(plugins)
    for error in registry.errors:
        click.echo(f"Warning: {error}", err=True)
    return registry


def storage_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--storage URL``, read from TUNER_STORAGE, default a SQLite file here."""
    return click.option(
        "--storage",
        envvar="TUNER_STORAGE",
        default=DEFAULT_STORAGE,
        show_default=True,
        metavar="URL",
        help="Database URL: sqlite:///PATH, or postgresql+psycopg://USER@HOST/DB "
        "(pip install tuner[postgres]). Env: TUNER_STORAGE.",
    )(command)


def main() -> None:
    cli(prog_name="tuner")


def _add_commands() -> None:
    from tuner.cli import db, export, plugins, results, search

    for command in [
        *plugins.COMMANDS,
        *search.COMMANDS,
        *results.COMMANDS,
        *db.COMMANDS,
        *export.COMMANDS,
    ]:
        cli.add_command(command)


_add_commands()
