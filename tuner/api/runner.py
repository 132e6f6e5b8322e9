"""A planned search run to its end: ``prepare`` checks it, ``run`` runs it with the worker
processes of ``--jobs`` and then the confirmation runs; and the searches that ``tuner worker``
and ``tuner confirm`` run on a study that exists."""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tuner import blas as blas_choice
from tuner.api.study_results import StudyResults
from tuner.api.workers import Helpers
from tuner.db import heartbeat_s, schema_state
from tuner.db.filesystems import refuse_shared_over_network
from tuner.db.optuna import study_user_attrs
from tuner.db.retry import retrying
from tuner.errors import BadInput
from tuner.plan import COUNT_ATTR, Plan, SearchConfig, plan_search
from tuner.plugins import Registry
from tuner.query import open_results
from tuner.watcher import Watcher

if TYPE_CHECKING:
    from tuner.results import Confirmation, StudySummary
    from tuner.study import StudyCallback


def prepare(config: SearchConfig, registry: Registry, storage: str) -> Plan:
    """The plan of ``config``: checked against the registry and, when it names a study that
    exists, against what that study was made with. Raises BadInput; writes nothing."""
    # Checked now, as every option is: Optuna's storage reads it only once the study is made.
    heartbeat_s()
    # The search's first reads: a server that restarts is waited for, as open_store waits.
    stored = retrying(lambda: _stored_settings(storage, config.study)) if config.study else None
    plan = plan_search(config, registry, stored)
    # Here, as tuner.study is in run: importing MLX waits until the BLAS is chosen.
    from tuner.graphs import find_compiler

    find_compiler()
    return plan


def _stored_settings(storage: str, study: str) -> dict[str, Any] | None:
    """The settings study ``study`` was made with, and its seed, if it exists; reads only, and
    creates no SQLite file. Tables that are behind hold nothing to check yet: the search
    migrates them."""
    if schema_state(storage).status != "current":
        return None
    with open_results(storage) as results:
        if study not in results.study_names():
            return None
        if not results.study(study).in_optuna:
            # Its trial numbers would start again, beside the records of the deleted ones.
            raise BadInput(
                f"study '{study}' was deleted from Optuna's tables: "
                f"tuner delete {shlex.quote(study)} removes what tuner kept of it, "
                "or give another --study name"
            )
        return {**results.settings(study), "seed": results.provenance(study).seed}


def run(
    plan: Plan,
    storage: str,
    watcher: Watcher | None = None,
    stop: threading.Event | None = None,
    plugins: Sequence[str] = (),
    callbacks: Sequence[StudyCallback] = (),
    *,
    jobs: int = 1,
    log_to: str | None = None,
) -> StudyResults:
    """Run the study of ``plan`` (see :func:`tuner.study.run_search`, which calls
    ``callbacks``), then its confirmation runs, and return its results; ``plugins`` are those
    to load again to export its trials. With ``jobs`` above 1, that many less one ``tuner
    worker`` processes (:mod:`tuner.api.workers`) join it as soon as the study exists, and the
    confirmation runs wait for them all. Each process logs its own trials to ``log_to``, a
    tracker (see :mod:`tuner.trackers`)."""
    # Here so that importing this module loads no MLX, which tuner.study imports: the BLAS
    # that MLX calls is chosen before it loads (see tuner.blas).
    from tuner.confirm import run_confirmations
    from tuner.study import run_search
    from tuner.trackers import tracker

    stop = stop or threading.Event()
    watcher = watcher or Watcher()
    config = plan.config
    helpers = Helpers(
        jobs - 1, storage, config.trials, config.timeout, plugins, config.population, log_to
    )
    callbacks = [*callbacks, *([] if log_to is None else [tracker(log_to, storage)])]

    def start_workers(study: str) -> None:
        watcher.workers_started(helpers.start(study))

    try:
        name = run_search(
            plan, storage, watcher, stop, callbacks, start_workers if helpers.count else None
        )
        if stop.is_set():
            helpers.stop()
        helpers.wait()
        if helpers.count:
            stopped = stop.is_set()
            watcher.workers_ended(
                [] if stopped else helpers.failures(), helpers.cut_short(name) if stopped else []
            )
        top, seeds = config.confirm
        if top and not stop.is_set():
            run_confirmations(plan, storage, name, top, seeds, watcher, stop)
    except BaseException:
        helpers.stop()
        helpers.wait()
        raise
    return StudyResults(name, storage, tuple(plugins))


def worker_config(
    storage: str,
    study: str,
    *,
    trials: int | None,
    timeout: float | None,
    confirm: tuple[int, int],
    population: int | None,
    command: str,
) -> SearchConfig:
    """The search that ``tuner worker`` runs on ``study``, beside its other workers: with the
    settings the study was made with, until it holds ``trials`` finished trials (by default
    the count of the search that last ran on it)."""
    refuse_shared_over_network(storage)

    def read() -> tuple[StudySummary, dict[str, Any], int]:
        with open_results(storage) as results:
            return results.study(study), results.settings(study), results.provenance(study).seed

    # A worker's first reads: one started while its server restarts waits for it.
    stored, settings, seed = retrying(read)
    return SearchConfig(
        task=stored.task,
        trials=_study_count(storage, study) if trials is None else trials,
        timeout=timeout,
        study=study,
        seed=seed,
        sampler=settings.get("sampler", "tpe"),
        pruner=settings.get("pruner", "median"),
        confirm=confirm,
        population=population,
        worker=True,
        command=command,
    )


def _study_count(storage: str, study: str) -> int:
    """The --trials of the search that last ran on ``study``."""
    attrs = study_user_attrs(storage, study)
    if COUNT_ATTR not in attrs:
        raise BadInput(
            f"study '{study}' holds no count of trials (an earlier tuner made it): "
            "give the count with --trials"
        )
    return int(attrs[COUNT_ATTR])


def confirm_study(
    storage: str,
    study: str,
    top: int,
    seeds: int,
    registry: Callable[[], Registry],
    watcher: Watcher | None = None,
) -> Confirmation:
    """Train the ``top`` best configurations of ``study`` again with ``seeds`` seeds each, as
    ``tuner confirm`` does, and return its confirmation; ``registry`` loads the plugins, once
    the BLAS is chosen and the study found."""
    # Here, as in run: tuner.confirm imports MLX, once the BLAS is chosen.
    from tuner.confirm import run_confirmations

    blas_choice.load(None)

    def find() -> None:
        with open_results(storage) as results:
            results.study(study)

    # Its first read: a server that restarts as it starts is waited for.
    retrying(find)
    plan = prepare(SearchConfig(study=study), registry(), storage)
    run_confirmations(plan, storage, study, top, seeds, watcher)
    with open_results(storage) as results:
        return results.confirmation(study)
