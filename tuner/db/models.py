"""tuner's own tables, beside Optuna's in the one database a URL names.

Optuna's ``RDBStorage`` keeps the state of a study, but its generic tables answer badly what
people ask of a search: which optimizer, which schedule, what the learning curve looked like,
what produced it. These tables answer that; their names start with ``tuner_`` so that they
never meet Optuna's or another application's, and alembic migrates them (see
:mod:`tuner.db.migrations`).
"""

from __future__ import annotations

import math
import zlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedAsDataclass, mapped_column, relationship

from tuner.results import Outcome

if TYPE_CHECKING:
    from tuner.trial import TrialResult

TABLE_PREFIX = "tuner_"
# The outcomes a trial's record can have: a running trial has none yet.
OUTCOMES = tuple(outcome for outcome in Outcome if outcome is not Outcome.RUNNING)


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


VALUE_TYPES = ("finite", "inf_pos", "inf_neg", "nan")


def split_value(value: float | None) -> tuple[float | None, str | None]:
    """``value`` as stored: the number when it is finite, and its type (None for no value)."""
    if value is None:
        return None, None
    if math.isfinite(value):
        return value, "finite"
    return None, "nan" if math.isnan(value) else ("inf_pos" if value > 0 else "inf_neg")


def read_value(value: float | None, value_type: str | None) -> float | None:
    """The value that :func:`split_value` stored."""
    return _NON_FINITE_VALUES.get(value_type, value)


_NON_FINITE_VALUES = {"nan": math.nan, "inf_pos": math.inf, "inf_neg": -math.inf}


# --- Tables -----------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


class Base(MappedAsDataclass, DeclarativeBase):
    """Rows that are also dataclasses: the records tuner writes are these rows themselves, and
    a row read back equals the row written (the database's own ids are not compared)."""

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
    """What produced a study, written once when it is created: its task and settings (the
    search space among them), the plugins and library versions, the device, the seed and the
    command line.

    Optuna's study is linked by name, and its trials by number, by value: a foreign key into
    Optuna's tables would tie our migrations to a schema Optuna changes between versions, and
    would let Optuna's own migrations (which on SQLite rebuild tables) or ``delete_study``
    cascade into our records.
    """

    __tablename__ = "tuner_studies"

    id: Mapped[int] = mapped_column(
        Integer, primary_key=True, init=False, compare=False, repr=False
    )
    # 512 is Optuna's own limit on a study's name.
    name: Mapped[str] = mapped_column(String(512), unique=True)
    task: Mapped[str] = mapped_column(String(256))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    plugins: Mapped[dict[str, str | None]] = mapped_column(JSON)
    versions: Mapped[dict[str, str]] = mapped_column(JSON)
    device: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(BigInteger)
    command: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default_factory=_now)


class CurveRow(Base):
    """A trial's learning curve: the loss and learning rate of every step, and the metrics of
    every evaluation. One row per trial, kept apart from its trial's row, so that scanning and
    sorting thousands of trials never reads their curves."""

    __tablename__ = "tuner_curves"

    trial_id: Mapped[int] = mapped_column(
        ForeignKey("tuner_trials.id", ondelete="CASCADE"),
        primary_key=True,
        init=False,
        compare=False,
        repr=False,
    )
    losses: Mapped[list[float]] = mapped_column(FloatArray)
    lrs: Mapped[list[float]] = mapped_column(FloatArray)
    evals: Mapped[list[dict[str, Any]]] = mapped_column(MetricsJSON)


def _ending_checks() -> tuple[CheckConstraint, ...]:
    """The constraints of a row that records how a training run ended, and its value."""
    return (
        CheckConstraint(
            "outcome IN ({})".format(", ".join(f"'{o}'" for o in OUTCOMES)),
            name="outcome",
        ),
        CheckConstraint(
            "value_type IN ({})".format(", ".join(f"'{t}'" for t in VALUE_TYPES)),
            name="value_type",
        ),
    )


class _Ending:
    """What a row that records how a training run ended checks, and how it stores its value
    (see :func:`split_value`)."""

    outcome: str
    value: float | None
    value_type: str | None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"an outcome is one of {OUTCOMES}, not {self.outcome!r}")
        self.value, self.value_type = split_value(self.value)


def _ending(result: TrialResult) -> dict[str, Any]:
    """What a row that records how a training run ended takes from its ``result``, a trial's
    or a confirmation run's alike."""
    return {
        "steps": result.steps,
        "duration_s": result.duration_s,
        "metrics": result.metrics,
        "value": result.value,
        "outcome": result.outcome,
        "reason": result.reason,
    }


class TrialRow(_Ending, Base):
    """One finished trial: what ran, how long it took, how it ended, and its curve.

    ``value`` is stored as Optuna stores one: a finite number in ``value``, and in
    ``value_type`` whether it was finite, infinite or NaN (which SQLite cannot store), so that
    SQL ranks values without re-deriving which are finite. Built with any float, the row splits
    it; :func:`read_value` puts it back together.
    """

    __tablename__ = "tuner_trials"
    __table_args__ = (
        UniqueConstraint("study_id", "number"),
        # The queries are per study, and filter or sort on these.
        Index(None, "study_id", "optimizer"),
        Index(None, "study_id", "schedule"),
        Index(None, "study_id", "outcome"),
        Index(None, "study_id", "value"),
        *_ending_checks(),
    )

    id: Mapped[int] = mapped_column(
        Integer, primary_key=True, init=False, compare=False, repr=False
    )
    study_id: Mapped[int] = mapped_column(
        ForeignKey(StudyRow.id, ondelete="CASCADE"), init=False, compare=False, repr=False
    )
    number: Mapped[int] = mapped_column(Integer)
    optimizer: Mapped[str] = mapped_column(String(128))
    schedule: Mapped[str] = mapped_column(String(128))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    seed: Mapped[int] = mapped_column(BigInteger)
    steps: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column("wall_time_s", Double, key="duration_s")
    step_time_s: Mapped[float | None] = mapped_column(Double)
    compiled: Mapped[bool] = mapped_column(Boolean)
    metrics: Mapped[dict[str, Any]] = mapped_column(MetricsJSON)
    value: Mapped[float | None] = mapped_column(Double)
    outcome: Mapped[str] = mapped_column(String(16))
    curve: Mapped[CurveRow] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    # Where the known-good setting the trial tried comes from; None for a sampled trial.
    default: Mapped[str | None] = mapped_column("default_source", Text, key="default", default=None)
    # The number of the first trial of the population the trial trained in, the same for each
    # of its members; None for a trial trained alone.
    population: Mapped[int | None] = mapped_column(Integer, default=None)
    value_type: Mapped[str | None] = mapped_column(String(8), init=False)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime, default_factory=_now)

    @classmethod
    def of_trial(
        cls, trial: Any, seed: int, result: TrialResult, population: int | None = None
    ) -> TrialRow:
        """The record of Optuna's ``trial`` (a ``Trial`` or ``FrozenTrial``), which ran with
        ``seed``, trained in ``population`` (None: alone) and did ``result``: what it ran, from
        Optuna's side, and how it ended, from ``result``. A trial that ended before it trained
        (a dead worker's) has an unrun result, so that every record is built here."""
        # Optuna copies a trial's parameters at each read of them.
        params = trial.params
        return cls(
            number=trial.number,
            optimizer=params.get("optimizer", "-"),
            schedule=params.get("schedule", "-"),
            params=params,
            seed=seed,
            step_time_s=result.step_time_s,
            compiled=result.compiled,
            curve=CurveRow(losses=result.losses, lrs=result.lrs, evals=result.evals),
            default=trial.user_attrs.get("default"),
            population=population,
            **_ending(result),
        )


class ConfirmationRow(_Ending, Base):
    """A confirmation run: a trial's configuration trained again after the search, in full,
    without pruning, with a fresh seed, to tell its merit from its luck.

    It is no Optuna trial, so no sampler learns from it. Its curve is kept in its own row: a
    study has a handful of runs, not thousands. ``test_metrics`` are measured on the task's
    held-out test set, which no trial reads; empty when the task has none.
    """

    __tablename__ = "tuner_confirmations"
    __table_args__ = (
        UniqueConstraint("study_id", "trial", "seed"),
        *_ending_checks(),
    )

    id: Mapped[int] = mapped_column(
        Integer, primary_key=True, init=False, compare=False, repr=False
    )
    study_id: Mapped[int] = mapped_column(
        ForeignKey(StudyRow.id, ondelete="CASCADE"), init=False, compare=False, repr=False
    )
    # The number of the trial whose configuration this run trains again.
    trial: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    steps: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column("wall_time_s", Double, key="duration_s")
    metrics: Mapped[dict[str, Any]] = mapped_column(MetricsJSON)
    test_metrics: Mapped[dict[str, Any]] = mapped_column(MetricsJSON)
    value: Mapped[float | None] = mapped_column(Double)
    outcome: Mapped[str] = mapped_column(String(16))
    losses: Mapped[list[float]] = mapped_column(FloatArray)
    lrs: Mapped[list[float]] = mapped_column(FloatArray)
    evals: Mapped[list[dict[str, Any]]] = mapped_column(MetricsJSON)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    value_type: Mapped[str | None] = mapped_column(String(8), init=False)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime, default_factory=_now)

    @classmethod
    def of_run(cls, trial: int, seed: int, result: TrialResult) -> ConfirmationRow:
        """The record of a confirmation run of trial ``trial``'s configuration, which ran with
        ``seed`` and did ``result``."""
        return cls(
            trial=trial,
            seed=seed,
            test_metrics=result.test_metrics,
            losses=result.losses,
            lrs=result.lrs,
            evals=result.evals,
            **_ending(result),
        )
