"""Where results live: tuner's own tables beside Optuna's, in the one database a URL names.

Each module has one job: :mod:`~tuner.db.urls` checks and masks storage URLs,
:mod:`~tuner.db.engine` makes every engine, :mod:`~tuner.db.retry` tries again an operation
whose PostgreSQL connection was lost, :mod:`~tuner.db.models` declares tuner's tables,
:mod:`~tuner.db.migrations` runs their alembic history, :mod:`~tuner.db.store` writes
their records, :mod:`~tuner.db.optuna` holds every coupling to Optuna's storage and tables,
:mod:`~tuner.db.delete` deletes a study from both, :mod:`~tuner.db.reads` holds the SQL of every
read of tuner's tables, for :mod:`tuner.query`, and :mod:`~tuner.db.to_results` turns the rows
it reads into :mod:`tuner.results` types.
Each imports only modules named before it, never one after. The rest of tuner imports from
here.
"""

from tuner.db.claims import ClaimLock
from tuner.db.delete import delete_study
from tuner.db.engine import READ_ONLY, engine_kwargs, make_engine
from tuner.db.migrations import (
    SchemaState,
    check,
    downgrade,
    migration_options,
    schema_state,
    upgrade,
)
from tuner.db.models import ConfirmationRow, CurveRow, StudyRow, TrialRow
from tuner.db.optuna import (
    GRACE_BEATS,
    beatless_trial_ids,
    heartbeat_s,
    optuna_storage,
    silence,
    unrecorded_ids,
)
from tuner.db.store import Store, open_store
from tuner.db.to_results import run_of
from tuner.db.urls import database_error, mask_url, parse_url, sqlite_path, storage_failure
from tuner.db.workers import WORKER_ATTR, dead_here, this_worker, tuner_made

__all__ = [
    "GRACE_BEATS",
    "READ_ONLY",
    "WORKER_ATTR",
    "ClaimLock",
    "ConfirmationRow",
    "CurveRow",
    "SchemaState",
    "Store",
    "StudyRow",
    "TrialRow",
    "beatless_trial_ids",
    "check",
    "database_error",
    "dead_here",
    "delete_study",
    "downgrade",
    "engine_kwargs",
    "heartbeat_s",
    "make_engine",
    "mask_url",
    "migration_options",
    "open_store",
    "optuna_storage",
    "parse_url",
    "run_of",
    "schema_state",
    "silence",
    "sqlite_path",
    "storage_failure",
    "this_worker",
    "tuner_made",
    "unrecorded_ids",
    "upgrade",
]
