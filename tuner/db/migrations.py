"""tuner's alembic history, run from code: tables made ready at first use, or on purpose.

Optuna owns ``alembic_version``, so tuner's revision lives in ``tuner_alembic_version`` and
alembic is told to see only the ``tuner_`` tables. An embedded SQLite file is upgraded on the
spot; a shared PostgreSQL database only by ``tuner db upgrade``, when no older worker runs.
Migrators of one database take turns, so workers that start together on it cannot collide.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import alembic.command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, TypeDecorator, text

from tuner.db.engine import READ_ONLY, engine_for
from tuner.db.models import TABLE_PREFIX, Base
from tuner.db.urls import mask_url
from tuner.errors import TunerError

VERSION_TABLE = "tuner_alembic_version"
# Any constant will do: it only has to be the same in every tuner that migrates one server.
PG_MIGRATION_LOCK = 0x74756E6572


def migrations_folder() -> Path:
    """Where the migrations are: inside the package when installed from a wheel (pyproject maps
    ``alembic/`` to ``tuner.migrations``), at the repository's root in a checkout."""
    package = Path(__file__).resolve().parent.parent
    for folder in (package / "migrations", package.parent / "alembic"):
        if (folder / "env.py").is_file() and (folder / "versions").is_dir():
            return folder
    raise TunerError("tuner's migrations are missing from this installation: reinstall tuner")


def _is_ours(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    # Optuna's tables, and any other application's, are not ours to compare or migrate.
    return type_ != "table" or (name or "").startswith(TABLE_PREFIX)


def _render_item(type_: str, item: Any, autogen_context: Any) -> str | bool:
    # A migration freezes the type stored, not tuner's Python type, which may change later.
    if type_ == "type" and isinstance(item, TypeDecorator):
        return f"sa.{item.impl!r}"
    return False


def migration_options() -> dict[str, Any]:
    """How alembic sees tuner's tables; env.py and :func:`check` both configure with these."""
    return {
        "version_table": VERSION_TABLE,
        "target_metadata": Base.metadata,
        "include_name": _is_ours,
        # SQLite alters a table by copying it, which alembic does in "batch" operations.
        "render_as_batch": True,
        "render_item": _render_item,
        "compare_type": True,
    }


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_folder()))
    config.attributes["connection"] = connection
    return config


@dataclass(frozen=True)
class SchemaState:
    """Where a database's tuner tables stand against this tuner's migrations."""

    storage: str
    revision: str | None
    head: str
    status: Literal["missing", "empty", "behind", "current", "ahead"]

    @property
    def problem(self) -> str | None:
        """Why this tuner cannot use the tables as they stand, in one line; None if it can."""
        upgrade = "run `tuner db upgrade` with this --storage"
        if self.status == "missing":
            return f"there is no database at {self.storage}: {upgrade}"
        if self.status == "empty":
            return f"{self.storage} has no tuner tables (this tuner needs {self.head}): {upgrade}"
        if self.status == "behind":
            return (
                f"the tuner tables in {self.storage} are at revision {self.revision}, older than "
                f"this tuner needs ({self.head}): {upgrade}"
            )
        if self.status == "ahead":
            return (
                f"the tuner tables in {self.storage} are at revision {self.revision}, newer than "
                f"this tuner knows (its newest is {self.head}): upgrade tuner; nothing was changed"
            )
        return None


def _script() -> ScriptDirectory:
    return ScriptDirectory(str(migrations_folder()))


def _head(script: ScriptDirectory) -> str:
    head = script.get_current_head()
    assert head is not None, "tuner's migrations must have one head"
    return head


def _state(connection: Connection, storage: str) -> SchemaState:
    script = _script()
    head = _head(script)
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    revisions = context.get_current_heads()
    if not revisions:
        return SchemaState(storage, None, head, "empty")
    revision = ",".join(revisions)
    known = {migration.revision for migration in script.walk_revisions()}
    if not set(revisions) <= known:
        return SchemaState(storage, revision, head, "ahead")
    return SchemaState(storage, revision, head, "current" if revision == head else "behind")


def read_state(engine: Engine) -> SchemaState:
    """Where the tuner tables behind ``engine`` stand, read without taking a write lock."""
    storage = engine.url.render_as_string(hide_password=True)
    with engine.connect().execution_options(**{READ_ONLY: True}) as connection:
        return _state(connection, storage)


def _migrate(engine: Engine, step: Literal["upgrade", "downgrade"], revision: str) -> None:
    """Run alembic's upgrade or downgrade ``step`` to ``revision`` in one transaction, which
    concurrent migrators of the same database take in turn."""
    storage = engine.url.render_as_string(hide_password=True)
    on_sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if on_sqlite:
            # SQLite alters a table by dropping and copying it; with foreign keys enforced the
            # drop would cascade into the tables that refer to it. They are checked at the end.
            connection.connection.dbapi_connection.execute("PRAGMA foreign_keys = OFF")
        try:
            with connection.begin():
                if not on_sqlite:
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK}
                    )
                state = _state(connection, storage)
                if state.status == "ahead":
                    raise TunerError(state.problem)
                getattr(alembic.command, step)(_alembic_config(connection), revision)
                if on_sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise TunerError(f"migrating {storage} would break its foreign keys")
        finally:
            if on_sqlite:
                connection.connection.dbapi_connection.execute("PRAGMA foreign_keys = ON")


def ensure_ready(engine: Engine) -> None:
    """Make tuner's tables usable, or say why they are not, before anything is read or written.

    Tables that are absent are created on any backend, as Optuna creates its own: workers that
    start together take turns under the migration's lock. Tables that an older tuner made are
    upgraded on the spot in an embedded SQLite file, but in a shared PostgreSQL database only on
    purpose, by ``tuner db upgrade``, when no worker of the older tuner runs.
    """
    state = read_state(engine)
    if state.status == "current":
        return
    if state.status == "ahead" or (state.status == "behind" and engine.dialect.name != "sqlite"):
        raise TunerError(state.problem)
    _migrate(engine, "upgrade", "head")


def _missing(url: str) -> SchemaState:
    return SchemaState(mask_url(url), None, _head(_script()), "missing")


def schema_state(url: str) -> SchemaState:
    """Where the tuner tables at ``url`` stand; changes nothing, creates no SQLite file."""
    with engine_for(url, create=False, read_only=True) as engine:
        return _missing(url) if engine is None else read_state(engine)


def upgrade(url: str) -> tuple[SchemaState, SchemaState]:
    """Bring the tuner tables at ``url`` to this tuner's revision; the states before and after."""
    with engine_for(url, create=True) as engine:
        assert engine is not None
        before = read_state(engine)
        if before.status == "ahead":
            raise TunerError(before.problem)
        if before.status != "current":
            _migrate(engine, "upgrade", "head")
        return before, read_state(engine)


def downgrade(url: str, revision: str) -> SchemaState:
    """Take the tuner tables at ``url`` back to ``revision`` ("base": none at all)."""
    with engine_for(url, create=False) as engine:
        if engine is None:
            return _missing(url)
        _migrate(engine, "downgrade", revision)
        return read_state(engine)


def _describe(difference: Any) -> str:
    # alembic's differences are tuples that start with the operation's name, or lists of the
    # modify_* tuples of one column.
    if isinstance(difference, list):
        return "; ".join(_describe(item) for item in difference)
    operation = difference[0]
    if operation.startswith("modify_"):
        return f"{operation} {difference[2]}.{difference[3]}"
    if operation in ("add_column", "remove_column"):
        return f"{operation} {difference[2]}.{difference[3].name}"
    return f"{operation} {getattr(difference[1], 'name', difference[1])}"


def check(url: str) -> tuple[SchemaState, list[str]]:
    """The state of the tuner tables at ``url``, and how the tables differ from the models
    (nothing, when they are at this tuner's revision and untouched by hand)."""
    with engine_for(url, create=False, read_only=True) as engine:
        if engine is None:
            return _missing(url), []
        state = read_state(engine)
        if state.status != "current":
            return state, []
        with engine.connect().execution_options(**{READ_ONLY: True}) as connection:
            context = MigrationContext.configure(connection, opts=migration_options())
            differences = compare_metadata(context, Base.metadata)
        return state, [_describe(difference) for difference in differences]
