"""Every read of a search's results that a command or a script needs: ``Results``.

After a search people ask what won, how sure they can be, and how each optimizer and schedule
did. Optuna could answer through ``study.trials``, but that loads every parameter, attribute
and intermediate value of every trial: seconds for a study of ten thousand. tuner's own tables
hold one row per trial with its optimizer, schedule, outcome and value in indexed columns, so
these reads select the few columns they need and let the database filter, sort and limit.
Curves are read for the one trial shown, never for a listing. Optuna is asked only about the
trials that have no row of ours. The answers are the types of :mod:`tuner.results`; a
comparison's statistics are :mod:`tuner.compare`'s.

The SQL of these reads is :mod:`tuner.db.reads`'s; opening the storage, finding a study and
reading what only Optuna knows are :mod:`tuner.reader`'s, which never writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tuner.compare import GROUPINGS, group_stats, judge, judge_confirmed
from tuner.errors import BadInput, did_you_mean
from tuner.reader import StorageReader
from tuner.results import (
    FINISHED,
    Comparison,
    Confirmation,
    Confirmed,
    Counts,
    Outcome,
    Provenance,
    StudySummary,
    TrialDetail,
    TrialSummary,
)

if TYPE_CHECKING:
    import pandas
    from optuna.trial import FrozenTrial

SORTS = ("value", "number", "duration")
# Where tuner searches and reads unless told otherwise: a SQLite file in the working directory.
DEFAULT_STORAGE = "sqlite:///tuner.db"


def open_results(url: str) -> Results:
    """The studies stored at ``url``, for reading; use it as a context manager to close it."""
    return Results(url)


class Results(StorageReader):
    """Read-only access to the studies in one storage.

    Each method is one short read; a study is named as in ``tuner search --study``. Bad
    requests (an unknown study, trial, state or filter) raise :class:`tuner.errors.BadInput`
    with a one-line message that says what exists.
    """

    def __init__(self, url: str) -> None:
        super().__init__(url)
        from tuner.db import to_results  # start-up time

        self._rows = to_results

    def _repr_html_(self) -> str:
        """The studies, as a notebook shows this object."""
        # Here for start-up time: every command imports this module, and only a notebook needs
        # the HTML, which brings in html.
        from tuner.views import studies_html

        return studies_html(self.storage, self.studies())

    # --- The questions ---------------------------------------------------------------------

    def study_names(self) -> list[str]:
        """The name of every study, oldest first."""
        if not self._has_tables:
            return []
        with self._reading() as connection:
            return self._sql.study_names(connection)

    def studies(self) -> list[StudySummary]:
        """Every study, oldest first."""
        return [self.study(name) for name in self.study_names()]

    @property
    def has_tuner_tables(self) -> bool:
        """Whether tuner's tables are in the database; without them it holds no study of
        tuner's, though Optuna's tables may (see :meth:`optuna_only_studies`)."""
        return self._has_tables

    def optuna_only_studies(self) -> dict[str, int]:
        """The studies that Optuna's tables hold and tuner's do not, oldest first, each with its
        number of trials: made by Optuna or another tool, or tuner's whose records were removed
        with tuner's tables. tuner reads none of their trials; ``tuner delete`` removes them."""
        with self._reading() as connection:
            if not self._has_optuna_tables(connection):
                return {}
            return self._optuna.optuna_only_studies(connection, ours=self._has_tables)

    def twins(self, seed: int, settings: dict[str, Any]) -> list[str]:
        """The studies made with this seed and these settings, oldest first: a new study like
        them would repeat their trials one by one."""
        if not self._has_tables:
            return []
        with self._reading() as connection:
            return self._sql.twins(connection, seed, settings)

    def study(self, name: str) -> StudySummary:
        """One study, with its counts and best trial; one whose Optuna side was deleted by
        another tool has none, and says so (``in_optuna``)."""
        with self._reading() as connection:
            record = self._find(connection, name)
            if not self._in_optuna(connection, record):
                return StudySummary(
                    name=record.name,
                    task=record.task,
                    metric=record.settings.get("metric", "value"),
                    direction=self._sql.direction(record),
                    counts=Counts(),
                    best=None,
                    created_at=record.created_at,
                    in_optuna=False,
                )
            unrecorded = self._optuna_trials(self._unrecorded_ids(connection, record))
            foreign = self._unrecorded_ids(connection, record, ours=False)
            return self._sql.summary(connection, record, unrecorded, len(foreign))

    def settings(self, study: str) -> dict[str, Any]:
        """The settings ``tuner search`` stored for the study: its ``task``, ``metric``,
        ``direction``, ``steps``, ``batch_size``, ``eval_every``, search ``space``, ``sampler``
        and ``pruner``."""
        with self._reading() as connection:
            return dict(self._find(connection, study).settings)

    def counts(
        self,
        study: str,
        *,
        optimizer: str | Sequence[str] | None = None,
        schedule: str | Sequence[str] | None = None,
    ) -> Counts:
        """How the study's trials of these optimizers and schedules ended; of all its trials
        when neither is given."""
        with self._read_study(study) as (connection, record, unrecorded):
            wanted = self._sql.filters(connection, record, optimizer, schedule)
            return self._sql.counts(connection, record, wanted, unrecorded)

    def best(
        self,
        study: str,
        n: int = 5,
        *,
        optimizer: str | Sequence[str] | None = None,
        schedule: str | Sequence[str] | None = None,
    ) -> list[TrialSummary]:
        """The top ``n`` finished trials, best first.

        Complete trials rank before pruned ones, and pruned before diverged: a pruned trial's
        value was measured before the end and is not comparable. Within each, the better value
        comes first in the study's direction, ties broken by trial number, and a trial whose
        value is missing or not finite ranks after every trial with a finite one. So the first
        is Optuna's ``study.best_trial``. Empty when no trial has finished.
        """
        if n < 1:
            raise BadInput(f"n must be at least 1, got {n}")
        with self._read_study(study) as (connection, record, unrecorded):
            wanted = self._sql.filters(connection, record, optimizer, schedule)
            return self._sql.trials(connection, record, wanted, FINISHED, "value", n, unrecorded)

    def trials(
        self,
        study: str,
        *,
        state: str | Sequence[str] | None = None,
        optimizer: str | Sequence[str] | None = None,
        schedule: str | Sequence[str] | None = None,
        sort: str = "number",
        limit: int | None = None,
    ) -> list[TrialSummary]:
        """The study's trials, running ones included, filtered, sorted and limited.

        ``state`` is one or more :class:`~tuner.results.Outcome` values; ``sort`` is
        ``number``, ``value`` (best first, as :meth:`best` ranks, then failed and running
        trials) or ``duration`` (shortest first, running trials last).
        """
        sql = self._sql
        states = tuple(Outcome) if state is None else sql.names(state)
        for name in states:
            if name not in tuple(Outcome):
                raise BadInput(f"unknown state '{name}'{did_you_mean(name, list(Outcome))}")
        if sort not in SORTS:
            raise BadInput(f"unknown sort '{sort}'{did_you_mean(sort, SORTS)}")
        if limit is not None and limit < 1:
            raise BadInput(f"limit must be at least 1, got {limit}")
        with self._read_study(study) as (connection, record, unrecorded):
            wanted = sql.filters(connection, record, optimizer, schedule)
            return sql.trials(connection, record, wanted, states, sort, limit, unrecorded)

    def trial(self, study: str, number: int) -> TrialDetail:
        """One trial in full, learning curve included."""
        with self._reading() as connection:
            record = self._live(connection, study)
            row = self._sql.trial_row(connection, record.id, number)
            if row is None:
                optuna_id = self._optuna_trial_id(connection, record, number)
                (unrecorded,) = self._optuna_trials([optuna_id])
                return TrialDetail(
                    **vars(unrecorded),
                    seed=None,
                    step_time_s=None,
                    compiled=None,
                    provenance=self._rows.provenance(record),
                    losses=[],
                    lrs=[],
                    evals=[],
                )
        return self._rows.detail_from_row(row, record)

    def population(self, study: str, lead: int) -> list[int]:
        """The numbers of the trials that trained together in population ``lead`` (its first
        trial's number), running ones included, in order."""
        with self._read_study(study) as (connection, record, unrecorded):
            found = self._sql.members(connection, record, lead)
        return sorted([*found, *(t.number for t in unrecorded if t.population == lead)])

    def complete_trials(self, study: str) -> list[FrozenTrial]:
        """The study's complete trials as Optuna holds them, each with its parameters'
        distributions: what Optuna's own plots (``optuna.visualization``) draw from."""
        # Imported here for start-up time, as Optuna's storage is.
        from optuna.trial import TrialState

        from tuner.db.workers import tuner_made

        with self._reading() as connection:
            record = self._live(connection, study)
            storage = self._read_only_optuna()
            study_id = storage.get_study_id_from_name(record.name)
            complete = (TrialState.COMPLETE,)
            trials = storage.get_all_trials(study_id, deepcopy=False, states=complete)
            return [trial for trial in trials if tuner_made(trial)]

    def to_dataframe(self, study: str) -> pandas.DataFrame:
        """Every trial of ``study``, one row each, in the columns of ``tuner trials --format
        csv`` (the JSON of :class:`TrialSummary` flattened: ``params.lr``, ``metrics.r2``), with
        each finished trial's ``rank`` as :meth:`best` ranks (see
        :func:`tuner.views.trials_frame`)."""
        from tuner.views import trials_frame  # start-up time, as in _repr_html_

        return trials_frame(self.trials(study, sort="value"))

    def compare(self, study: str, by: str = "optimizer") -> Comparison:
        """The study's trials grouped by ``optimizer`` or ``schedule``, and which group leads,
        as :func:`tuner.compare.judge` judges: a group leads by its best trial, ranked as
        :meth:`best` ranks, and clearly when its lead exceeds the spread within groups."""
        if by not in GROUPINGS:
            raise BadInput(f"cannot group by '{by}'; group by optimizer or schedule")
        with self._read_study(study) as (connection, record, unrecorded):
            rows = self._sql.outcomes_by(connection, record, by, unrecorded)
            bests = self._sql.group_bests(connection, record, by, unrecorded)
        groups = group_stats(rows, bests)
        metric = record.settings.get("metric", "value")
        return judge(record.name, by, metric, self._sql.direction(record), groups)

    def provenance(self, study: str) -> Provenance:
        """What produced the study: plugin and library versions, device, seed, command."""
        with self._reading() as connection:
            return self._rows.provenance(self._find(connection, study))

    def to_confirm(self, study: str, top: int) -> list[TrialSummary]:
        """The trials whose configurations confirmation runs train again: the ``top`` best
        complete ones, at most one for each optimizer and schedule pair, best first."""
        if top < 1:
            raise BadInput(f"top must be at least 1, got {top}")
        with self._reading() as connection:
            return self._sql.pair_bests(connection, self._find(connection, study), top)

    def confirmation(self, study: str) -> Confirmation:
        """The study's confirmed configurations, the best mean first, with the verdict on the
        winner's lead (see :func:`tuner.compare.judge_confirmed`); no configurations when the
        study has no confirmation runs."""
        with self._reading() as connection:
            record = self._find(connection, study)
            runs = self._sql.confirmation_runs(connection, record)
            trials = self._sql.recorded(connection, record, list(runs))
        configs = [Confirmed(trial, runs[trial.number]) for trial in trials]
        metric = record.settings.get("metric", "value")
        return judge_confirmed(record.name, metric, self._sql.direction(record), configs)
