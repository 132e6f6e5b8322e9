"""Shell completion of the names tuner knows: studies from the storage, and the tasks,
optimizers and schedules that the plugins register, for click's ``shell_complete``.

A shell runs these on every TAB, so they must answer fast and never fail aloud: names are read
with SQLAlchemy alone, straight from the tables (never through :mod:`tuner.db`, whose import
brings alembic, nor Optuna's storage), and any error completes nothing. Only the registry's
names load the plugins, and with them MLX.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click
from click.shell_completion import CompletionItem

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DEFAULT_STORAGE = "sqlite:///tuner.db"

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


def _engine(url: str) -> Engine | None:
    """An engine that only reads ``url``; None for a SQLite file that does not exist, which
    completing must not create, and for a database tuner cannot store into."""
    # Imported here: importing tuner.cli, which names these functions, loads no SQLAlchemy.
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        # A server that does not answer must not hold the shell for long.
        return create_engine(parsed, connect_args={"connect_timeout": 2})
    path = parsed.database
    if backend != "sqlite" or not path or not os.path.isfile(path):
        return None
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    return create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True))


def _read(ctx: click.Context, queries: Iterable[str], **values: str) -> list[str]:
    """The first column of each query's rows, from the storage the command line names so far;
    a query that fails (its table absent) adds nothing."""
    url = ctx.params.get("storage") or os.environ.get("TUNER_STORAGE") or DEFAULT_STORAGE
    try:
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        engine = _engine(url)
    except Exception:
        return []
    if engine is None:
        return []
    names: list[str] = []
    try:
        for query in queries:
            # A connection each: on PostgreSQL a failed query spoils its transaction.
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
        from tuner.plugins import load_plugins

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
