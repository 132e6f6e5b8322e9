"""The search file: the options of ``tuner search`` in one TOML file, the search space as a
table keyed by parameter, checked against one schema (:data:`SCHEMA`) that
``tuner search --config``, ``tuner.search(config=...)`` and ``tuner show STUDY --config`` share.

TOML, because Python reads it (``tomllib``) with no new dependency and its tables fit a space
keyed by parameter; YAML would bring a package in for the same mapping. tomllib gives no line
numbers, so :class:`Lines` finds each key's line in the text, for the errors to name it.

The space is read by :mod:`tuner.space_grammar`: each entry becomes the ``--space``
expression it stands for (``lr = {low = 1e-4, high = 0.1, log = true}`` is
``--space lr=0.0001..0.1:log``), checked where ``--space``'s are.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import re
import tomllib
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tuner.errors import BadInput, did_you_mean
from tuner.plan import MAX_SEED, PRUNERS, SAMPLERS, parse_confirm, parse_names
from tuner.space_grammar import (
    Wrong,
    is_int,
    kind_of,
    scalar_text,
    space_entries,
    space_expressions,
)

Check = Callable[[Any], Any]


def _integer(low: int, high: int | None = None) -> Check:
    def check(value: Any) -> int:
        if not is_int(value):
            raise Wrong(f"must be an integer, not {kind_of(value)}")
        if high is not None and not low <= value <= high:
            raise Wrong(f"must be from {low} to {high}, not {value}")
        if value < low:
            raise Wrong(f"must be at least {low}, not {value}")
        return value

    return check


def _seconds(value: Any) -> float:
    if not (is_int(value) or isinstance(value, float)):
        raise Wrong(f"must be a number of seconds, not {kind_of(value)}")
    if not (math.isfinite(value) and value > 0):
        raise Wrong(f"must be above 0, not {scalar_text(value)}")
    return float(value)


def _text(*choices: str) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Wrong(f"must be a string, not {kind_of(value)}")
        if choices and value not in choices:
            raise Wrong(f"must be one of {', '.join(choices)}, not '{value}'")
        return value

    return check


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Wrong(f"must be true or false, not {kind_of(value)}")
    return value


def _names(value: Any) -> list[str]:
    # "a,b" as on the command line, or an array.
    if not isinstance(value, str | list) or not all(isinstance(n, str) for n in value):
        raise Wrong(f"must be an array of names, not {kind_of(value)}")
    names = parse_names(value)
    if not names:
        raise Wrong("names none; give at least one, or leave the key out for all")
    return names


def _auto_or_count(value: Any) -> str:
    if value == "auto" or (is_int(value) and value >= 1):
        return str(value)
    raise Wrong(f'must be "auto" or a whole number from 1, not {kind_of(value)}')


def _confirm(value: Any) -> str:
    if is_int(value) and value == 0:
        return "0"
    if isinstance(value, str):
        with contextlib.suppress(BadInput):
            top, seeds = parse_confirm(value)
            return f"{top}x{seeds}" if top else "0"
    raise Wrong(f'must be "KxS", the K best with S seeds each ("3x3"), or 0, not {kind_of(value)}')


def _plugins(value: Any) -> list[str]:
    plugins = [value] if isinstance(value, str) else value
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise Wrong(f"must be an array of plugin paths or modules, not {kind_of(value)}")
    return plugins


def _space(value: Any) -> list[str]:
    return [expression for _, expression, _ in space_entries(value)]


# The schema: each option of a search, named as `tuner search` (its click parameter) and
# `tuner.search` (its keyword) name it, with the check that its value passes in a file.
SCHEMA: dict[str, Check] = {
    "task": _text(),
    "trials": _integer(1),
    "timeout": _seconds,
    "steps": _integer(1),
    "batch_size": _integer(1),
    "eval_every": _integer(1),
    "study": _text(),
    "new": _flag,
    "storage": _text(),
    "seed": _integer(0, MAX_SEED),
    "device": _text("cpu", "gpu"),
    "optimizers": _names,
    "schedules": _names,
    "space": _space,
    "metric": _text(),
    "sampler": _text(*SAMPLERS),
    "pruner": _text(*PRUNERS),
    "defaults": _flag,
    "jobs": _auto_or_count,
    "oversubscribe": _flag,
    "confirm": _confirm,
    "blas": _text("auto", "bundled"),
    "population": _auto_or_count,
    "plugins": _plugins,
    "quiet": _flag,
    "verbose": _flag,
    "log_to": _text(),
}
# The options of the command alone, which tuner.search, one search in this process, has not.
CLI_ONLY = frozenset({"new", "jobs", "oversubscribe", "verbose", "log_to"})


class Lines:
    """The line of each key of a TOML text, found simply: each ``key =`` line and ``[table]``
    header, under the table above it. A key inside an inline table or an array is on its
    parent's line."""

    _KEY = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
    _DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
    _HEADER = re.compile(rf"\s*\[\s*({_DOTTED})\s*\]")
    _ASSIGN = re.compile(rf"\s*({_DOTTED})\s*=")

    def __init__(self, text: str) -> None:
        self._lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), 1):
            header = self._HEADER.match(line)
            assign = None if header else self._ASSIGN.match(line)
            if header and (path := _key_path(header[1])):
                table = path
                self._lines.setdefault(table, number)
            elif assign and (path := _key_path(assign[1])):
                path = (*table, *path)
                for end in range(1, len(path) + 1):
                    self._lines.setdefault(path[:end], number)

    def find(self, path: Sequence[str]) -> int | None:
        """The line of ``path``, or of the nearest key above it that has one."""
        for end in range(len(path), 0, -1):
            if tuple(path[:end]) in self._lines:
                return self._lines[tuple(path[:end])]
        return None


def _key_path(dotted: str) -> tuple[str, ...]:
    # TOML's own reading of the key, quotes and escapes included; none for a line that only
    # looks like a key, inside a multi-line string.
    path: list[str] = []
    try:
        table: Any = tomllib.loads(f"{dotted} = 0")
    except tomllib.TOMLDecodeError:
        return ()
    while isinstance(table, dict):
        (key, table), *_ = table.items()
        path.append(key)
    return tuple(path)


# How the search's errors name a setting given by name: an unknown one is quoted.
NAMED = {"task": "task", "metric": "metric", "optimizers": "optimizer", "schedules": "schedule"}


@dataclass(frozen=True)
class SearchFile:
    """The options a search file (or a mapping of them) holds, checked and in the forms that
    ``tuner.search`` takes: ``space`` as ``--space`` expressions."""

    settings: dict[str, Any]
    # The file's path as given, or "config" for a mapping.
    source: str = "config"
    lines: Lines | None = None
    # Each parameter of the file's space: its name, its --space expression, its path.
    space: list[tuple[str, str, tuple]] = field(default_factory=list)

    def where(self, path: Sequence[str]) -> str:
        """``file:line: `` of a key, for an error to begin with."""
        line = self.lines.find(path) if self.lines else None
        return f"{self.source}:{line}: " if line else f"{self.source}: "

    def locate(self, message: str, used: Collection[str], space_given: Sequence[str]) -> str:
        """``message``, an error of the search, begun with the file and line of the setting
        it is about, where it names one that the search took from the file: one of ``used``,
        or a parameter of its space that ``space_given``, the expressions given besides,
        left as the file set it."""
        if self.lines is None:
            return message
        given = {expression.partition("=")[0].strip() for expression in space_given}
        for name, expression, path in self.space:
            # --space's errors quote the expression, or name the parameter alone.
            marks = [re.escape(f"'{expression}'")]
            marks += [] if name in given else [rf"--space {re.escape(name)}[:= ]"]
            if any(re.search(mark, message) for mark in marks):
                return f"{self.where(path)}{message}"
        for key in sorted(set(used) - {"space"}):
            value = self.settings[key]
            marks = [rf"--{key.replace('_', '-')}\b"]
            if key in NAMED:
                values = value if isinstance(value, list) else [value]
                marks += [re.escape(f"{NAMED[key]} '{v}'") for v in values]
            if any(re.search(mark, message) for mark in marks):
                return f"{self.where((key,))}{message}"
        return message


def read(config: str | os.PathLike[str] | Mapping[str, Any]) -> SearchFile:
    """Check a search file, given by its path or as the mapping it holds; raise
    :class:`BadInput`, naming the key and its line, on the first wrong one."""
    if isinstance(config, Mapping):
        return _checked(config, SearchFile({}))
    source = os.fspath(config)
    try:
        with open(source, "rb") as file:
            text = file.read().decode()
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else error
        raise BadInput(f"{source}: {reason}") from None
    return _checked(data, SearchFile({}, source, Lines(text)))


def _checked(data: Mapping[str, Any], file: SearchFile) -> SearchFile:
    for key, value in data.items():
        if key not in SCHEMA:
            raise BadInput(f"{file.where((key,))}unknown key '{key}'{did_you_mean(key, SCHEMA)}")
        try:
            file.settings[key] = SCHEMA[key](value)
        except Wrong as error:
            path = error.path or (key,)
            raise BadInput(f"{file.where(path)}{'.'.join(path)} {error.reason}") from None
    if "space" in data:
        file.space.extend(space_entries(data["space"]))
    return file


def file_options(search: Callable[..., Any]) -> Callable[..., Any]:
    """``tuner.search`` with its ``config`` read: the options of that file or mapping, below
    those passed, and ``space`` as a mapping too, the file's overridden parameter by
    parameter. The options of the command alone (:data:`CLI_ONLY`) are left out, with a
    warning."""
    signature = inspect.signature(search)

    @functools.wraps(search)
    def with_file(*args: Any, **kwargs: Any) -> Any:
        given = signature.bind(*args, **kwargs).arguments
        config = given.pop("config", None)
        if config is None:
            if "space" in given:
                given["space"] = space_expressions(given["space"])
            return search(**given)
        file = read(config)
        for key in CLI_ONLY & file.settings.keys():
            warnings.warn(
                f"{file.where((key,))}{key} is tuner search's alone: tuner.search leaves it out",
                stacklevel=2,
            )
        options = {k: v for k, v in file.settings.items() if k not in CLI_ONLY}
        space_given = space_expressions(given.pop("space", ()))
        used = [k for k in options if k not in given]
        options |= given
        options["space"] = [*options.get("space", ()), *space_given]
        try:
            return search(**options)
        except BadInput as error:
            raise BadInput(file.locate(str(error), used, space_given)) from None

    return with_file
