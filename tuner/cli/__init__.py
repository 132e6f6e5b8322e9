"""The ``tuner`` command line: one click group, the options its commands share, and the rule
that every error is one line on stderr (exit 2 for bad usage, 1 for failures) unless
``TUNER_DEBUG=1``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from tuner.api import DEFAULT_STORAGE, Registry, load_plugins, refuse_failed
from tuner.errors import TunerError
from tuner.invocation import started_as

# As a shell reports a process that SIGPIPE ended (128 + 13), `git log | head` for one.
CLOSED_PIPE_STATUS = 141
INTERRUPTED_STATUS = 130
_PLUGIN_HINT = "give the path of a plugin's .py file, or the name of an installed module"


class UsageLine(click.ClickException):
    """A usage error shown as one line, without click's usage banner."""

    exit_code = 2


class TunerGroup(click.Group):
    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as error:
            _help(error.ctx)
        except click.UsageError as error:
            raise UsageLine(error.format_message()) from None
        except BrokenPipeError:
            _reader_gone()

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _reader_gone()
        except KeyboardInterrupt:
            # As a shell reports a process that Ctrl-C ended (128 + SIGINT), not click's
            # "Aborted!" and status 1, which reads as a failure of tuner's own.
            raise click.exceptions.Exit(INTERRUPTED_STATUS) from None
        except click.exceptions.NoArgsIsHelpError as error:
            _help(error.ctx)
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


def _help(ctx: click.Context | None) -> NoReturn:
    # `tuner` or `tuner db` alone asks what there is: the help, on stdout, and no error.
    if ctx is not None:
        click.echo(ctx.get_help())
    raise click.exceptions.Exit(0)


def _reader_gone() -> NoReturn:
    # The reader of stdout left early, as `head` does: not an error, so nothing is said. What
    # stdout still buffers goes to /dev/null, or flushing it at exit would fail again.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    raise click.exceptions.Exit(CLOSED_PIPE_STATUS)


def _unexpected(error: Exception) -> str:
    return f"{type(error).__name__}: {error} (set TUNER_DEBUG=1 for the traceback)"


@click.group(cls=TunerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tuner")
def cli() -> None:
    """Find the best optimizer and learning-rate schedule for an MLX model.

    Optimizers, schedules and tasks are plugins; `tuner plugins` lists them. `tuner search`
    runs an Optuna study of short MLX trials and stores the results.
    """


def _findable(module: str) -> bool:
    """Whether ``module`` can be found, without importing it where Python allows: finding a
    submodule imports its parent packages. A parent that fails to import for any reason but
    being absent counts as found, so that loading the plugin reports the failure by name."""
    if module.startswith("."):
        return False
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError as error:
        return not (module == error.name or module.startswith(f"{error.name}."))
    except (Exception, SystemExit):
        return True


def _plugins_found(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> Sequence[str]:
    # A plugin typed for this command that is not there is a typo: refused before anything is
    # opened or written. One that is there but fails to load is refused once loaded (see
    # load_registry); those of TUNER_PLUGINS, which is standing configuration, are warnings.
    for value in values:
        if value.endswith(".py"):
            if not Path(value).is_file():
                raise click.BadParameter(f"no such file '{value}': {_PLUGIN_HINT}", ctx, param)
        elif not _findable(value):
            raise click.BadParameter(
                f"no module '{value}' is importable: {_PLUGIN_HINT}", ctx, param
            )
    return values


def plugin_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the repeatable ``--plugin PATH_OR_MODULE`` option; one that cannot be found is a
    usage error."""
    return click.option(
        "--plugin",
        "plugins",
        multiple=True,
        metavar="PATH_OR_MODULE",
        callback=_plugins_found,
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
    """Load every plugin, refusing one of ``plugins`` that failed to load (BadInput), and
    warning on stderr about each other one that failed."""
    registry = load_plugins(plugins)
    refuse_failed(registry, plugins)
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
        "(pip install 'tuner[postgres]'). Env: TUNER_STORAGE.",
    )(command)


def main() -> None:
    started_as(sys.argv[0])
    cli(prog_name="tuner")


def _add_commands() -> None:
    # The command modules import this one for its options: they can be imported once it is.
    from tuner.cli import (
        confirm,
        dashboard,
        db,
        delete,
        export,
        plugins,
        report,
        results,
        search,
        show,
        worker,
    )

    for command in [
        *plugins.COMMANDS,
        *search.COMMANDS,
        *worker.COMMANDS,
        *results.COMMANDS,
        *show.COMMANDS,
        *confirm.COMMANDS,
        *db.COMMANDS,
        *export.COMMANDS,
        *delete.COMMANDS,
        *dashboard.COMMANDS,
        *report.COMMANDS,
    ]:
        cli.add_command(command)


_add_commands()
