"""The storage operations that the commands run beside a search: migrating, checking and
reading the state of tuner's tables, deleting a study, and telling a study's name from a typo.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuner.db import SchemaState, check, delete_study, mask_url, schema_state, upgrade
from tuner.db.filesystems import refuse_shared_over_network
from tuner.db.optuna import interrupted_by, read_only_storage, study_user_attrs
from tuner.db.retry import retrying
from tuner.errors import typo_of
from tuner.query import open_results
from tuner.results import StudySummary

__all__ = [
    "SchemaState",
    "StudyContents",
    "check",
    "delete_study",
    "interrupted_by",
    "mask_url",
    "near_study",
    "read_only_storage",
    "refuse_shared_over_network",
    "schema_state",
    "study_contents",
    "study_user_attrs",
    "upgrade",
    "upgrade_storage",
]


def upgrade_storage(storage: str) -> tuple[SchemaState, SchemaState, int]:
    """Create or upgrade tuner's tables in ``storage``, then fail the trials of workers that
    died and queue their settings once more: the tables' state before and after, and how many
    trials were failed."""
    # Here for the start-up time of the other commands: tuner.reaping brings in Optuna.
    from tuner.reaping import reap_every_study

    before, after = upgrade(storage)
    return before, after, reap_every_study(storage)


@dataclass(frozen=True)
class StudyContents:
    """What deleting a study removes: its trials and confirmation runs, from tuner's tables
    (``summary``, None when Optuna's tables alone hold it) and Optuna's."""

    storage: str
    summary: StudySummary | None
    in_optuna: bool
    trials: int
    confirmation_runs: int


def study_contents(storage: str, study: str) -> StudyContents:
    """What ``storage`` holds of ``study``, tuner's and Optuna's; ``storage`` masked."""
    with open_results(storage) as results:
        optuna_only = results.optuna_only_studies()
        if study in optuna_only:
            return StudyContents(results.storage, None, True, optuna_only[study], 0)
        summary = results.study(study)
        runs = sum(len(config.runs) for config in results.confirmation(study).configs)
        return StudyContents(
            results.storage, summary, summary.in_optuna, summary.counts.total, runs
        )


def near_study(storage: str, study: str) -> tuple[bool, str | None]:
    """Whether ``study`` is in ``storage``, and if not, the study whose name it is most likely
    a typo of. Reads only, and creates no SQLite file: without tables that are current (none,
    or tables that a search migrates first) there is no study of tuner's to miss."""

    def read() -> list[str] | None:
        if schema_state(storage).status != "current":
            return None
        with open_results(storage) as results:
            return results.study_names()

    # A search's first read: a server that restarts as it starts is waited for.
    known = retrying(read)
    if known is None:
        return False, None
    if study in known:
        return True, None
    return False, typo_of(study, known)
