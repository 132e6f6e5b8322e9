"""Shell completion of the names tuner knows: studies from the storage, and the tasks,
optimizers and schedules that the plugins register, for click's ``shell_complete``.

A shell runs these on every TAB, so they must answer fast and never fail aloud: names are read
straight from the tables, with Python's sqlite3 from a SQLite file and SQLAlchemy from
PostgreSQL (never through :mod:`tuner.db`, whose import brings alembic, nor Optuna's storage),
and any error completes nothing. Only the registry's names load the plugins, and with them MLX.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path

import click
from click.shell_completion import CompletionItem

from tuner.api import DEFAULT_STORAGE, load_plugins

_STUDIES = (
    "SELECT name FROM tuner_studies",
    # Studies Optuna's tables alone hold, which `tuner delete` and `tuner studies` name too.
    "SELECT study_name FROM studies",
)
_USED = (
    "SELECT DISTINCT t.{kind} FROM tuner_trials t JOIN tuner_studies s ON s.id = t.study_id"
    " WHERE s.name = :study"
)
_USED_ANYWHERE = "SELECT DISTINCT {kind} FROM tuner_trials"

Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


# A SQLite URL, and the file's path in it: read without importing SQLAlchemy, whose import
# alone takes longer than the rest of a completion.
_SQLITE = re.compile(r"^sqlite(?:\+pysqlite)?:///([^?]+)")


def _read(ctx: click.Context, queries: Iterable[str], **values: str) -> list[str]:
    """The first column of each query's rows, from the storage the command line names so far;
    a query that fails (its table absent) adds nothing, and so does a storage that fails."""
    # --storage as click read it: from the line, else TUNER_STORAGE, else the default.
    url = ctx.params.get("storage") or DEFAULT_STORAGE
    try:
        sqlite = _SQLITE.match(url)
        if sqlite:
            return _read_sqlite(sqlite.group(1), queries, values)
        if url.startswith(("postgresql", "postgres:")):
            return _read_postgresql(url, queries, values)
    except Exception:
        pass
    return []


def _read_sqlite(path: str, queries: Iterable[str], values: dict[str, str]) -> list[str]:
    # Read-only: completing must never create the file, nor write to one.
    if not os.path.isfile(path):
        return []
    connection = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    names: list[str] = []
    try:
        for query in queries:
            try:
                names += [row[0] for row in connection.execute(query, values)]
            except sqlite3.Error:
                continue
    finally:
        connection.close()
    return names


def _read_postgresql(url: str, queries: Iterable[str], values: dict[str, str]) -> list[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)
    # A server that does not answer must not hold the shell for long.
    engine = create_engine(url, connect_args={"connect_timeout": 2})
    names: list[str] = []
    try:
        for query in queries:
            # A connection each: a failed query spoils its transaction.
            try:
                with engine.connect() as connection:
                    names += [row[0] for row in connection.execute(text(query), values)]
            except SQLAlchemyError:
                continue
    finally:
        engine.dispose()
    return names


def _items(names: Iterable[str], incomplete: str) -> list[CompletionItem]:
    return [CompletionItem(name) for name in sorted(set(names)) if name.startswith(incomplete)]


def studies(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The storage's study names, tuner's and those Optuna's tables alone hold."""
    return _items(_read(ctx, _STUDIES), incomplete)


def _registered(kind: str, ctx: click.Context) -> list[str]:
    try:
        registry = load_plugins(tuple(ctx.params.get("plugins") or ()))
        return list(registry.specs(kind))
    except BaseException:
        # A plugin that raises or exits while it loads completes nothing: never a traceback.
        return []


def _listed(names: Callable[[click.Context], list[str]]) -> Completer:
    """A completer of one name, or of the last of a comma-separated list (``adam,sg``), which
    offers the names not already in the list."""

    def complete(
        ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        head, _, last = incomplete.rpartition(",")
        given = set(head.split(",")) if head else set()
        prefix = f"{head}," if head else ""
        return [
            CompletionItem(prefix + item.value)
            for item in _items(names(ctx), last)
            if item.value not in given
        ]

    return complete


def _registry(kind: str) -> Completer:
    return _listed(lambda ctx: _registered(kind, ctx))


def used(kind: str) -> Completer:
    """The names of ``kind`` the study given so far used, or every study when none is."""

    def names(ctx: click.Context) -> list[str]:
        study = ctx.params.get("study")
        if study:
            return _read(ctx, [_USED.format(kind=kind)], study=study)
        return _read(ctx, [_USED_ANYWHERE.format(kind=kind)])

    return _listed(names)


tasks = _registry("task")
optimizers = _registry("optimizer")
schedules = _registry("schedule")
