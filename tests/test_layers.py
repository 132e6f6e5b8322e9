"""The import contracts that `lint-imports` checks ([tool.importlinter] in pyproject.toml) keep
the command line from every module of tuner but the few it may import, a module added later
included: import-linter's forbidden contract names modules one by one, not by pattern."""

import pkgutil
import tomllib
from pathlib import Path

import tuner

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"
# What the command line imports itself: the API, the errors it words, the data it prints, the
# columns it prints them in, and how it was started.
CLI_MAY_IMPORT = {"cli", "api", "errors", "results", "columns", "invocation"}


def contract(name):
    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["name"] == name)


def modules():
    return {module.name for module in pkgutil.iter_modules(tuner.__path__)}


def test_the_command_line_is_kept_from_every_module_but_those_it_may_import():
    forbidden = contract("The command line reaches the library through tuner.api alone")

    assert set(forbidden["forbidden_modules"]) == {"optuna"} | {
        f"tuner.{name}" for name in modules() - CLI_MAY_IMPORT
    }
