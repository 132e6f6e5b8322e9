"""Where results live: tuner's own tables beside Optuna's, in the one database a URL names.

Optuna's ``RDBStorage`` keeps the state of a study, but its generic tables answer badly what
people ask of a search: which optimizer, which schedule, what the learning curve looked like,
what produced it. So tuner keeps its own ``tuner_`` tables in the same database, migrated by its
own alembic history, whose version lives in ``tuner_alembic_version`` because Optuna owns
``alembic_version``. A trial's record is written once, at its end, in one transaction.

Every engine, tuner's and Optuna's, gets its settings here, so that one reader and several
writer processes can share a SQLite file, and many workers a PostgreSQL server.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import sqlite3
import time
import warnings
import weakref
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, quote_plus

import numpy as np
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Connection,
    DateTime,
    Dialect,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    joinedload,
    mapped_column,
    relationship,
    sessionmaker,
)

from tuner.errors import BadInput, TunerError

if TYPE_CHECKING:
    import optuna

VERSION_TABLE = "tuner_alembic_version"
HEARTBEAT_S = 30
OPTUNA_CREATE_TRIES = 5
TABLE_PREFIX = "tuner_"
OUTCOMES = ("complete", "pruned", "diverged", "failed", "interrupted")
# Long enough to outwait every other writer's one-transaction trial record, short enough that
# a wedged process is reported rather than waited on for ever.
SQLITE_BUSY_TIMEOUT_S = 60.0
# Any constant will do: it only has to be the same in every tuner that migrates one server.
PG_MIGRATION_LOCK = 0x74756E6572
# The transaction of a connection with this execution option begins DEFERRED on SQLite.
READ_ONLY = "tuner_read_only"

_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _forget_connections_in_child() -> None:
    # A forked child must open its own connections: a socket or SQLite handle shared with the
    # parent interleaves both processes' traffic. close=False leaves the parent's ones alone.
    for engine in list(_ENGINES):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_connections_in_child)


# --- URLs -------------------------------------------------------------------------------------

_USAGE = "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
_UNPARSED_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def mask_url(url: str) -> str:
    """The URL with its password, if any, shown as ``***``: the only way tuner prints one."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _UNPARSED_PASSWORD.sub(r"\1***@", url)


def _parse(url: str) -> URL:
    """The URL, if tuner can store into it; BadInput, before anything is touched, if not."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        hint = f"; for a file there, sqlite:///{url}" if "://" not in url else ""
        raise BadInput(f"not a storage URL: '{mask_url(url)}'; {_USAGE}{hint}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
            raise BadInput(f"unsupported SQLite driver in {mask_url(url)}; {_USAGE}")
        if not parsed.database or parsed.database == ":memory:":
            raise BadInput(
                f"{mask_url(url)} is an in-memory database, lost when tuner exits; "
                "give a file: sqlite:///PATH"
            )
        if parsed.query or parsed.host or parsed.username:
            raise BadInput(f"{mask_url(url)}: tuner sets SQLite's options itself; {_USAGE}")
        path = sqlite_path(parsed)
        if not path.parent.is_dir():
            raise BadInput(f"no folder {path.parent} to hold the SQLite database {path.name}")
        if path.is_dir():
            raise BadInput(f"{path} is a folder, not a SQLite database file")
        return parsed
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            return parsed.set(drivername="postgresql+psycopg")
        if parsed.drivername != "postgresql+psycopg":
            raise BadInput(
                f"tuner talks to PostgreSQL through psycopg 3, not {parsed.drivername}: "
                "use postgresql+psycopg://USER@HOST/DB"
            )
        return parsed
    raise BadInput(f"unsupported storage URL scheme '{parsed.drivername}'; {_USAGE}")


def sqlite_path(url: URL) -> Path:
    """The file of a SQLite URL."""
    # Absolute, so that a worker which changes directory still writes to the same file.
    return Path(url.database or "").expanduser().resolve()


def _scrub(message: str, url: URL) -> str:
    """The message without the URL's password, which some drivers echo back in their errors."""
    if url.password:
        password = str(url.password)
        for form in {password, quote(password, safe=""), quote_plus(password)}:
            message = message.replace(form, "***")
    return message


def storage_failure(error: SQLAlchemyError, url: URL) -> TunerError:
    """One line that says what went wrong with the database at ``url``, password masked."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    detail = _scrub(lines[0] if lines else type(cause).__name__, url)
    where = url.render_as_string(hide_password=True)
    if isinstance(cause, sqlite3.DatabaseError) and "not a database" in detail:
        return BadInput(f"{sqlite_path(url)} is not a SQLite database")
    return TunerError(f"{where}: {detail}")


# --- Engines ----------------------------------------------------------------------------------


def _connect_sqlite(path: str) -> sqlite3.Connection:
    """A SQLite connection that waits for the write lock rather than fail "database is locked".

    ``isolation_level="IMMEDIATE"`` makes the driver begin every transaction that writes with
    BEGIN IMMEDIATE, at its first write: the write lock is taken, or waited for, before the
    transaction has read anything, so two writers can never deadlock on upgrading their locks.
    Optuna's engine relies on that alone; tuner's engine also begins its transactions itself.
    """
    # timeout is SQLite's busy_timeout: how long a statement waits for a lock before failing.
    # A pooled connection may serve another thread later, such as Optuna's heartbeat.
    connection = sqlite3.connect(
        path, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level="IMMEDIATE", check_same_thread=False
    )
    try:
        connection.execute("PRAGMA foreign_keys = ON")
        # In WAL mode NORMAL survives any crash of the process; only a power cut can lose the
        # last few commits, and it cannot corrupt the file.
        connection.execute("PRAGMA synchronous = NORMAL")
        _switch_to_wal(connection)
    except sqlite3.Error:
        connection.close()
        raise
    return connection


def _switch_to_wal(connection: sqlite3.Connection) -> None:
    """WAL lets readers read while a writer writes; it is stored in the file, once for all.

    Processes that open a new file together race to switch it, and SQLite refuses a loser at
    once, without its busy timeout, since waiting could deadlock. Tried again a moment later,
    the switch finds the file in WAL mode already.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def engine_kwargs(url: str) -> dict[str, Any]:
    """The ``create_engine`` arguments every tuner engine and Optuna's storage share.

    All of them survive pickling, so that an ``RDBStorage`` sent to another process rebuilds
    its engine with the same settings.
    """
    parsed = _parse(url)
    # NaN is not JSON, and PostgreSQL refuses it: say so on SQLite too rather than differ.
    strict = {"json_serializer": functools.partial(json.dumps, allow_nan=False)}
    if parsed.get_backend_name() == "sqlite":
        return {**strict, "creator": functools.partial(_connect_sqlite, str(sqlite_path(parsed)))}
    return {
        **strict,
        # Every worker process holds two pools, tuner's and Optuna's, that keep one connection
        # each (more only while Optuna's heartbeat thread overlaps a write): N workers keep 2N
        # open, against PostgreSQL's default max_connections of 100. Beyond ~45 workers, put a
        # pooler such as PgBouncer in front.
        "pool_size": 1,
        "max_overflow": 4,
        "pool_pre_ping": True,
        "pool_recycle": 1800,
        "connect_args": {"connect_timeout": 10, "application_name": "tuner"},
    }


def _begin_sqlite(connection: Connection) -> None:
    # Writes begin IMMEDIATE so that they wait for the lock before reading; reads begin
    # DEFERRED so that, under WAL, they never wait at all.
    mode = "DEFERRED" if connection.get_execution_options().get(READ_ONLY) else "IMMEDIATE"
    connection.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str) -> Engine:
    """The engine for ``url``: the one factory, with the settings of :func:`engine_kwargs`.

    On SQLite its transactions begin IMMEDIATE, so that their reads and writes form one
    snapshot; pass ``execution_options={READ_ONLY: True}`` for one that only reads.
    """
    parsed = _parse(url)
    try:
        engine = create_engine(parsed, **engine_kwargs(url))
    except ImportError:
        raise TunerError(
            "PostgreSQL storage needs psycopg 3: pip install 'tuner[postgres]'"
        ) from None
    _ENGINES.add(engine)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "begin", _begin_sqlite)
    return engine


def _rdb_storage(
    parsed: URL, url: str, *, foreign_alembic_version: bool = False
) -> optuna.storages.RDBStorage:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            parsed.render_as_string(hide_password=False),
            engine_kwargs=engine_kwargs(url),
            # A worker that dies mid-trial leaves it RUNNING; without a heartbeat it would stay
            # so forever. With one, the next worker to start a trial marks it FAIL.
            heartbeat_interval=HEARTBEAT_S,
            grace_period=3 * HEARTBEAT_S,
            skip_compatibility_check=foreign_alembic_version,
        )


def _lost_creation_race(error: SQLAlchemyError) -> bool:
    return isinstance(error, IntegrityError) or "already exists" in str(error)


def _despite_foreign_alembic_version(
    error: RuntimeError, parsed: URL, url: str
) -> optuna.storages.RDBStorage:
    """Optuna's storage on a database whose ``alembic_version`` belongs to another application.

    Optuna keeps its schema revision in that table too, finds a revision it does not know, and
    refuses. When Optuna's own tables say this very Optuna made them, that revision is someone
    else's and the check is skipped; an Optuna schema of another version is for Optuna to
    upgrade.
    """
    import optuna

    message = str(error)
    if "table schema" not in message:
        raise error
    if f"(set up by optuna {optuna.__version__})" not in message:
        raise TunerError(f"{mask_url(url)}: {message.splitlines()[0]}") from None
    return _rdb_storage(parsed, url, foreign_alembic_version=True)


def optuna_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's storage on ``url``, with tuner's engine settings; tuner's tables are made ready
    first (created if absent; upgraded on SQLite, checked on PostgreSQL), as by
    :func:`open_store`.
    """
    parsed = _parse(url)
    open_store(url).close()
    for attempt in range(OPTUNA_CREATE_TRIES):
        try:
            storage = _rdb_storage(parsed, url)
            break
        except SQLAlchemyError as error:
            # Workers that start together on a new database race to create Optuna's tables;
            # the loser finds them made when it tries again.
            if attempt + 1 == OPTUNA_CREATE_TRIES or not _lost_creation_race(error):
                raise storage_failure(error, parsed) from None
            time.sleep(0.2)
        except RuntimeError as error:
            storage = _despite_foreign_alembic_version(error, parsed, url)
            break
    _ENGINES.add(storage.engine)
    return storage


# --- Column types -----------------------------------------------------------------------------


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime in UTC, which SQLite (that stores no time zone) also gives back."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"a naive datetime cannot be stored: {value}")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _encode_numbers(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _encode_numbers(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encode_numbers(item) for item in value]
    return value


def _decode_numbers(value: Any) -> Any:
    if isinstance(value, str):
        return _NON_FINITE.get(value, value)
    if isinstance(value, dict):
        return {key: _decode_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode_numbers(item) for item in value]
    return value


class MetricsJSON(TypeDecorator[Any]):
    """JSON whose numbers may be NaN or infinite, as a diverged trial's metrics are.

    JSON has no such numbers, so they are stored as the strings PostgreSQL's float8 accepts
    (``(metrics->>'val_loss')::float`` works) and read back as floats; a string that happens to
    be ``"NaN"`` comes back a float too, which is why only metrics use this type.
    """

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return _encode_numbers(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return _decode_numbers(value)


class FloatArray(TypeDecorator[list[float]]):
    """A list of floats as zlib-compressed little-endian float64: exact, NaN included, and a
    fifth (losses) to a third (learning rates) of the size of JSON text."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: list[float] | None, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        return zlib.compress(np.asarray(value, dtype="<f8").tobytes(), 1)

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> list[float] | None:
        if value is None:
            return None
        return np.frombuffer(zlib.decompress(value), dtype="<f8").tolist()


# --- Tables -----------------------------------------------------------------------------------


class Base(DeclarativeBase):
    # Named constraints, so that migrations can drop and alter them on every backend.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class StudyRow(Base):
    """What produced a study, written once when it is created.

    Optuna's study is linked by name and id, by value: a foreign key into Optuna's tables would
    tie our migrations to a schema Optuna changes between versions, and would let Optuna's own
    migrations (which on SQLite rebuild tables) or ``delete_study`` cascade into our records.
    """

    __tablename__ = "tuner_studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # 512 is Optuna's own limit on a study's name.
    name: Mapped[str] = mapped_column(String(512), unique=True)
    optuna_study_id: Mapped[int | None] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(256))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    plugins: Mapped[dict[str, str | None]] = mapped_column(JSON)
    versions: Mapped[dict[str, str]] = mapped_column(JSON)
    device: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(BigInteger)
    command: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TrialRow(Base):
    """One finished trial: what ran, how long it took, how it ended."""

    __tablename__ = "tuner_trials"
    __table_args__ = (
        UniqueConstraint("study_id", "number"),
        # The queries are per study, and filter or sort on these.
        Index(None, "study_id", "optimizer"),
        Index(None, "study_id", "schedule"),
        Index(None, "study_id", "outcome"),
        Index(None, "study_id", "value"),
        CheckConstraint(
            "outcome IN ({})".format(", ".join(f"'{o}'" for o in OUTCOMES)), name="outcome"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey(StudyRow.id, ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    # Joins Optuna's trials.trial_id, by value (see StudyRow).
    optuna_trial_id: Mapped[int | None] = mapped_column(Integer, index=True)
    optimizer: Mapped[str] = mapped_column(String(128))
    schedule: Mapped[str] = mapped_column(String(128))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    seed: Mapped[int] = mapped_column(BigInteger)
    steps: Mapped[int] = mapped_column(Integer)
    wall_time_s: Mapped[float] = mapped_column(Double)
    step_time_s: Mapped[float | None] = mapped_column(Double)
    compiled: Mapped[bool] = mapped_column(Boolean)
    metrics: Mapped[dict[str, Any]] = mapped_column(MetricsJSON)
    value: Mapped[float | None] = mapped_column(Double)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    curve: Mapped[CurveRow | None] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )


class CurveRow(Base):
    """A trial's learning curve, one row per trial and kept apart from its trial's row, so that
    scanning and sorting thousands of trials never reads their curves."""

    __tablename__ = "tuner_curves"

    trial_id: Mapped[int] = mapped_column(
        ForeignKey(TrialRow.id, ondelete="CASCADE"), primary_key=True
    )
    losses: Mapped[list[float]] = mapped_column(FloatArray)
    lrs: Mapped[list[float]] = mapped_column(FloatArray)
    evals: Mapped[list[dict[str, Any]]] = mapped_column(MetricsJSON)


# --- Records ----------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class StudyRecord:
    """What produced a study: its task and settings (the search space among them), the plugins
    and library versions, the device, the seed and the command line."""

    name: str
    task: str
    settings: dict[str, Any]
    plugins: dict[str, str | None]
    versions: dict[str, str]
    device: str
    seed: int
    command: str
    optuna_study_id: int | None = None
    created_at: datetime = field(default_factory=_now)


@dataclass
class TrialRecord:
    """One finished trial of a study and its learning curve: the loss and learning rate of
    every step, and the metrics of every evaluation."""

    study: str
    number: int
    optuna_trial_id: int | None
    optimizer: str
    schedule: str
    params: dict[str, Any]
    seed: int
    steps: int
    wall_time_s: float
    step_time_s: float | None
    compiled: bool
    metrics: dict[str, Any]
    value: float | None
    outcome: str
    reason: str | None = None
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    finished_at: datetime = field(default_factory=_now)


_STUDY_FIELDS = tuple(f.name for f in fields(StudyRecord))
_CURVE_FIELDS = ("losses", "lrs", "evals")
_TRIAL_FIELDS = tuple(
    f.name for f in fields(TrialRecord) if f.name not in ("study", *_CURVE_FIELDS)
)


def _trial_record(study: str, row: TrialRow, curves: bool) -> TrialRecord:
    record = TrialRecord(study=study, **{name: getattr(row, name) for name in _TRIAL_FIELDS})
    if curves and row.curve is not None:
        for name in _CURVE_FIELDS:
            setattr(record, name, getattr(row.curve, name))
    return record


class Store:
    """tuner's records of studies and trials, each read or written in one short transaction."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._engine: Engine = sessions.kw["bind"]

    def close(self) -> None:
        """Close the store's connections; a closed store reconnects if it is used again."""
        self._engine.dispose()

    @contextmanager
    def _transaction(self, *, read_only: bool = False) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                if read_only:
                    session.connection(execution_options={READ_ONLY: True})
                yield session
        except SQLAlchemyError as error:
            raise storage_failure(error, self._engine.url) from None

    def save_study(self, record: StudyRecord) -> None:
        """Record a study; a study that already has a record (one resumed) keeps its first."""
        values = {name: getattr(record, name) for name in _STUDY_FIELDS}
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(StudyRow).values(values).on_conflict_do_nothing()
        with self._transaction() as session:
            session.execute(statement)

    def study(self, name: str) -> StudyRecord | None:
        with self._transaction(read_only=True) as session:
            row = session.scalar(select(StudyRow).where(StudyRow.name == name))
            if row is None:
                return None
            return StudyRecord(**{name: getattr(row, name) for name in _STUDY_FIELDS})

    def twins(self, seed: int, settings: dict[str, Any]) -> list[str]:
        """The studies made with this seed and these settings, oldest first: a new study like
        them would repeat their trials one by one."""
        query = select(StudyRow.name, StudyRow.settings).where(StudyRow.seed == seed)
        with self._transaction(read_only=True) as session:
            rows = session.execute(query.order_by(StudyRow.created_at))
            return [name for name, stored in rows if stored == settings]

    def save_trial(self, record: TrialRecord) -> None:
        """Write a trial and its curve in one transaction: all of it is stored, or none."""
        if record.outcome not in OUTCOMES:
            raise ValueError(f"a trial's outcome is one of {OUTCOMES}, not {record.outcome!r}")
        with self._transaction() as session:
            study_id = session.scalar(select(StudyRow.id).where(StudyRow.name == record.study))
            if study_id is None:
                raise TunerError(f"study '{record.study}' has no record to add a trial to")
            taken = select(TrialRow.id).filter_by(study_id=study_id, number=record.number)
            if session.scalar(taken) is not None:
                raise TunerError(
                    f"trial {record.number} of study '{record.study}' is already recorded"
                )
            curve = CurveRow(**{name: getattr(record, name) for name in _CURVE_FIELDS})
            values = {name: getattr(record, name) for name in _TRIAL_FIELDS}
            session.add(TrialRow(study_id=study_id, curve=curve, **values))

    def trial(self, study: str, number: int) -> TrialRecord | None:
        with self._transaction(read_only=True) as session:
            row = session.scalar(
                select(TrialRow)
                .join(StudyRow)
                .where(StudyRow.name == study, TrialRow.number == number)
                .options(joinedload(TrialRow.curve))
            )
            return None if row is None else _trial_record(study, row, curves=True)

    def trials(self, study: str, *, curves: bool = True) -> list[TrialRecord]:
        """The study's trials by number; without ``curves`` their curve lists stay empty, which
        spares reading megabytes of curves to list a large study."""
        query = (
            select(TrialRow).join(StudyRow).where(StudyRow.name == study).order_by(TrialRow.number)
        )
        if curves:
            query = query.options(joinedload(TrialRow.curve))
        with self._transaction(read_only=True) as session:
            return [_trial_record(study, row, curves) for row in session.scalars(query)]


# --- Migrations -------------------------------------------------------------------------------


def _migrations_folder() -> Path:
    """Where the migrations are: inside the package when installed from a wheel (pyproject maps
    ``alembic/`` to ``tuner.migrations``), at the repository's root in a checkout."""
    here = Path(__file__).resolve().parent
    for folder in (here / "migrations", here.parent / "alembic"):
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
    config.set_main_option("script_location", str(_migrations_folder()))
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
    return ScriptDirectory(str(_migrations_folder()))


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


def _read_state(engine: Engine) -> SchemaState:
    storage = engine.url.render_as_string(hide_password=True)
    with engine.connect().execution_options(**{READ_ONLY: True}) as connection:
        return _state(connection, storage)


def _migrate(engine: Engine, step: Literal["upgrade", "downgrade"], revision: str) -> None:
    """Run alembic's upgrade or downgrade ``step`` to ``revision`` in one transaction, which
    concurrent migrators of the same database take in turn."""
    import alembic.command

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


def _ready(engine: Engine) -> None:
    """Make tuner's tables usable, or say why they are not, before anything is read or written.

    Tables that are absent are created on any backend, as Optuna creates its own: workers that
    start together take turns under the migration's lock. Tables that an older tuner made are
    upgraded on the spot in an embedded SQLite file, but in a shared PostgreSQL database only on
    purpose, by ``tuner db upgrade``, when no worker of the older tuner runs.
    """
    state = _read_state(engine)
    if state.status == "current":
        return
    if state.status == "ahead" or (state.status == "behind" and engine.dialect.name != "sqlite"):
        raise TunerError(state.problem)
    _migrate(engine, "upgrade", "head")


def open_store(url: str) -> Store:
    """The store on ``url``, its tables ready (see :func:`_ready`)."""
    engine = make_engine(url)
    try:
        _ready(engine)
    except SQLAlchemyError as error:
        engine.dispose()
        raise storage_failure(error, engine.url) from None
    except BaseException:
        engine.dispose()
        raise
    return Store(sessionmaker(engine, expire_on_commit=False))


@contextmanager
def _engine_for(url: str, *, create: bool) -> Iterator[Engine | None]:
    """An engine on ``url`` for the ``tuner db`` commands, closed afterwards; None when it is
    a SQLite file that does not exist and ``create`` is false, so that looking creates nothing.
    """
    parsed = _parse(url)
    if not create and parsed.get_backend_name() == "sqlite" and not sqlite_path(parsed).exists():
        yield None
        return
    engine = make_engine(url)
    try:
        yield engine
    except SQLAlchemyError as error:
        raise storage_failure(error, engine.url) from None
    finally:
        engine.dispose()


def _missing(url: str) -> SchemaState:
    return SchemaState(mask_url(url), None, _head(_script()), "missing")


def schema_state(url: str) -> SchemaState:
    """Where the tuner tables at ``url`` stand; changes nothing, creates no SQLite file."""
    with _engine_for(url, create=False) as engine:
        return _missing(url) if engine is None else _read_state(engine)


def find_study(url: str, name: str) -> StudyRecord | None:
    """The record of study ``name`` at ``url``, if there is one; reads only, and creates no
    SQLite file, so that a request can be checked against it before anything is written."""
    with _engine_for(url, create=False) as engine:
        if engine is None or _read_state(engine).status != "current":
            return None
        return Store(sessionmaker(engine, expire_on_commit=False)).study(name)


def upgrade(url: str) -> tuple[SchemaState, SchemaState]:
    """Bring the tuner tables at ``url`` to this tuner's revision; the states before and after."""
    with _engine_for(url, create=True) as engine:
        assert engine is not None
        before = _read_state(engine)
        if before.status == "ahead":
            raise TunerError(before.problem)
        if before.status != "current":
            _migrate(engine, "upgrade", "head")
        return before, _read_state(engine)


def downgrade(url: str, revision: str) -> SchemaState:
    """Take the tuner tables at ``url`` back to ``revision`` ("base": none at all)."""
    with _engine_for(url, create=False) as engine:
        if engine is None:
            return _missing(url)
        _migrate(engine, "downgrade", revision)
        return _read_state(engine)


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
    with _engine_for(url, create=False) as engine:
        if engine is None:
            return _missing(url), []
        state = _read_state(engine)
        if state.status != "current":
            return state, []
        with engine.connect().execution_options(**{READ_ONLY: True}) as connection:
            context = MigrationContext.configure(connection, opts=migration_options())
            from alembic.autogenerate import compare_metadata

            differences = compare_metadata(context, Base.metadata)
        return state, [_describe(difference) for difference in differences]
