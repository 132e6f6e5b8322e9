"""Confirmation runs: after a search, its best configurations trained again, each in full and
unpruned with the same few fresh seeds, so that the winner is told apart from the luck of its
one seed.

The runs are tuner's records alone, never Optuna trials: no sampler learns from them, and a
study's trial counts leave them out. The seeds depend only on the study's seed, so the runs
replay; runs already stored are not run again, so an interrupted confirmation continues.
"""

from __future__ import annotations

import functools
import threading
import time

import numpy as np

from tuner.db import ConfirmationRow, open_store, run_of
from tuner.graphs import GraphCache
from tuner.plan import Plan
from tuner.query import open_results
from tuner.results import Outcome
from tuner.space import Sample
from tuner.study_attrs import describe_confirmation
from tuner.train import run_trial
from tuner.trial import TrialResult, failure
from tuner.watcher import Watcher


def confirmation_seed(study_seed: int, index: int) -> int:
    """Seed ``index`` of a study's confirmation runs, the same for every configuration (so
    that they start from the same weights and see the same batches), and apart from every
    trial's seed."""
    sequence = np.random.SeedSequence([study_seed, index], spawn_key=(1,))
    return int(sequence.generate_state(1)[0])


def run_confirmations(
    plan: Plan,
    storage_url: str,
    study: str,
    top: int,
    seeds: int,
    watcher: Watcher | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Train the ``top`` best configurations of ``study`` (at most one for each optimizer and
    schedule pair) for the plan's full steps, once with each of ``seeds`` seeds, and store each
    run; then write the verdict where Optuna's tools read it. Runs already stored are skipped;
    a run that raises is stored as failed, with why. Setting ``stop`` ends the run in flight
    at its next step, unstored, and returns."""
    watcher = watcher or Watcher()
    stop = stop or threading.Event()
    with open_results(storage_url) as results:
        trials = results.to_confirm(study, top)
        confirmed = results.confirmation(study).configs
        done = {(config.trial.number, run.seed) for config in confirmed for run in config.runs}
        study_seed = results.provenance(study).seed
    runs = [
        (trial, index, seed)
        for trial in trials
        for index, seed in enumerate(confirmation_seed(study_seed, i) for i in range(seeds))
        if (trial.number, seed) not in done
    ]
    store = open_store(storage_url)
    graphs = GraphCache()
    try:
        for trial, index, seed in runs:
            if stop.is_set():
                break
            sample = Sample.from_params(trial.params, plan.config.task)
            watcher.confirming(trial, index, seeds, plan.steps)
            row = _run(plan, trial.number, sample, seed, graphs, watcher, stop)
            if row is None:
                break
            if store.save_confirmation(study, row):
                watcher.confirmed(trial, index, seeds, run_of(row))
    finally:
        store.close()
    describe_confirmation(storage_url, study)


def _run(
    plan: Plan,
    number: int,
    sample: Sample,
    seed: int,
    graphs: GraphCache,
    watcher: Watcher,
    stop: threading.Event,
) -> ConfirmationRow | None:
    """One confirmation run of trial ``number``'s configuration, as its record; None when
    ``stop`` cut it short. A run that raises is recorded as failed, with why."""
    started = time.monotonic()
    try:
        result = run_trial(
            plan.task,
            plan.registry.optimizers[sample.optimizer],
            plan.registry.schedules[sample.schedule],
            sample,
            steps=plan.steps,
            batch_size=plan.batch_size_of(sample),
            eval_every=plan.eval_every,
            seed=seed,
            graphs=graphs,
            objective=plan.config.metric,
            on_step=functools.partial(watcher.trial_step, number),
            stop=stop,
            test=True,
        )
    except Exception as error:
        result = TrialResult.unrun(Outcome.FAILED, failure(error), time.monotonic() - started)
    if result.outcome is Outcome.INTERRUPTED:
        return None
    return ConfirmationRow.of_run(number, seed, result)
