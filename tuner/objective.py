"""The Optuna objective of a search: sample a trial, train it (alone, or with the trials that
share its graph, in a population), report at eval points, and record what it did.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import optuna

from tuner.companions import beating, family, fixed_family
from tuner.db import ClaimLock, CurveRow, TrialRow
from tuner.graphs import GraphCache
from tuner.plan import Plan
from tuner.results import Outcome
from tuner.samplers import trial_seed
from tuner.space import Sample
from tuner.train import train
from tuner.trial import Member, TrialResult, failure
from tuner.watcher import Progress, Watcher


class Interrupted(Exception):
    """The user stopped the search: Optuna records the trial in flight as failed, tuner as
    interrupted, and neither counts it among the finished."""


class Halt:
    """What ends the trial in flight before its next step: a signal that set ``stop``, or the
    search's ``--timeout`` passing (``deadline``, on the monotonic clock)."""

    def __init__(self, stop: threading.Event, deadline: float | None) -> None:
        self.stop = stop
        self.deadline = deadline

    @property
    def timed_out(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def is_set(self) -> bool:
        return self.stop.is_set() or self.timed_out


class MemberFailed(Exception):
    """The trial failed on its own inside a population that went on without it."""


@dataclass
class Search:
    """What the objective works with beside the plan: how far the study is, how a trial that
    ends inside this objective (a population's other members) is settled, and the storage
    those members beat on."""

    plan: Plan
    # The size of the next population, as the study stands.
    population: Callable[[], int]
    watcher: Watcher
    halt: Halt
    claim: ClaimLock
    progress: Progress
    storage: optuna.storages.BaseStorage
    # The record of each trial that Optuna's optimize runs, stored once Optuna has told its
    # state (tuner.study's after_trial).
    ended: dict[int, TrialRow]
    # Stores a population member's record once it has been told to Optuna.
    settle: Callable[[optuna.trial.FrozenTrial, TrialRow], None]


def objective_for(search: Search) -> Callable[[optuna.Trial], float]:
    """The Optuna objective: sample, train, report at eval points, and leave the trial's
    record in ``search.ended``.

    Once ``halt`` is set, the trial in flight ends at its next step as interrupted. The trial
    has been written as running when the objective begins; with populations, the claim lock
    is kept until its companions are written too, so that no worker counts past the trials
    asked for.
    """
    plan, config = search.plan, search.plan.config
    graphs = GraphCache()

    def objective(trial: optuna.Trial) -> float:
        started = time.monotonic()
        seed = trial_seed(config.seed, trial.number)

        def unrun(outcome: Outcome, reason: str) -> TrialResult:
            return TrialResult.unrun(outcome, reason, time.monotonic() - started)

        if search.halt.is_set():
            search.claim.release()
            reason = "interrupted before its first step"
            search.ended[trial.number] = _record(
                trial, seed, unrun(Outcome.INTERRUPTED, reason), None
            )
            raise Interrupted(reason)
        companions: list[optuna.Trial] = []
        told: set[int] = set()
        try:
            with fixed_family(trial.study) as fix:
                try:
                    sample = plan.space.sample(trial)
                    room = config.trials - search.progress.claimed - 1
                    size = search.population()
                    if size > 1 and room > 0:
                        fix(family(plan.space, trial.params))
                        count = min(size - 1, room)
                        companions = [trial.study.ask() for _ in range(count)]
                finally:
                    search.claim.release()
                members = [(trial, sample)] + [(c, plan.space.sample(c)) for c in companions]
            with beating(search.storage, companions):
                lead = _train(search, graphs, members, told)
        except Exception as error:
            for companion in companions:
                if companion.number not in told:
                    _tell(search, companion, unrun(Outcome.FAILED, failure(error)), None)
            search.ended[trial.number] = _record(
                trial, seed, unrun(Outcome.FAILED, failure(error)), None
            )
            raise
        result, population = lead
        search.ended[trial.number] = _record(trial, seed, result, population)
        if result.outcome is Outcome.INTERRUPTED:
            raise Interrupted(result.reason)
        if result.outcome is Outcome.FAILED:
            raise MemberFailed(result.reason)
        if result.outcome is not Outcome.COMPLETE:
            raise optuna.TrialPruned(result.reason)
        return result.value

    return objective


def _train(
    search: Search,
    graphs: GraphCache,
    members: Sequence[tuple[optuna.Trial, Sample]],
    told: set[int],
) -> tuple[TrialResult, int | None]:
    """Train ``members``, those of a family together, and tell each family's trials but the
    first member's (Optuna's optimize tells that one) as soon as they end; return the first's
    result and population (its first member's number), if it trained in one."""
    plan, config = search.plan, search.plan.config
    families: dict[tuple[Any, ...], list[tuple[optuna.Trial, Sample]]] = {}
    for trial, sample in members:
        key = tuple(sorted(family(plan.space, trial.params).items()))
        families.setdefault(key, []).append((trial, sample))
    lead = members[0][0]
    ended: tuple[TrialResult, int | None] | None = None
    for group in families.values():
        first, sample = group[0]
        search.watcher.trial_started(first.number, sample, plan.steps, members=len(group))
        results = train(
            plan.task,
            plan.registry.optimizers[sample.optimizer],
            [
                Member(
                    plan.registry.schedules[sample.schedule],
                    sample,
                    trial_seed(config.seed, trial.number),
                    _on_eval(trial),
                )
                for trial, sample in group
            ],
            steps=plan.steps,
            batch_size=plan.batch_size,
            eval_every=plan.eval_every,
            graphs=graphs,
            objective=config.metric,
            on_build=lambda n=first.number: search.watcher.building(n),
            on_step=lambda done, n=first.number: search.watcher.trial_step(n, done),
            stop=search.halt,
        )
        population = first.number if len(group) > 1 else None
        for (trial, _), result in zip(group, results, strict=True):
            if result.outcome is Outcome.INTERRUPTED and search.halt.timed_out:
                result = replace(result, reason=f"stopped by --timeout at step {result.steps}")
            if trial is lead:
                ended = (result, population)
            else:
                _tell(search, trial, result, population)
                told.add(trial.number)
    assert ended is not None
    return ended


def _on_eval(trial: optuna.Trial) -> Callable[[int, float], bool]:
    def on_eval(step: int, value: float) -> bool:
        if math.isfinite(value):
            trial.report(value, step)
        return trial.should_prune()

    return on_eval


def _tell(search: Search, trial: optuna.Trial, result: TrialResult, population: int | None) -> None:
    """Record a companion's end, tell Optuna, and have the search store and count it."""
    seed = trial_seed(search.plan.config.seed, trial.number)
    row = _record(trial, seed, result, population)
    if result.outcome is Outcome.COMPLETE:
        frozen = trial.study.tell(trial, result.value)
    elif result.outcome in (Outcome.PRUNED, Outcome.DIVERGED):
        frozen = trial.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        frozen = trial.study.tell(trial, state=optuna.trial.TrialState.FAIL)
    search.settle(frozen, row)


def _record(
    trial: optuna.Trial, seed: int, result: TrialResult, population: int | None
) -> TrialRow:
    """The record of ``trial``, which ran with ``seed`` and did ``result``; its outcome, reason,
    steps, metrics and population also go to Optuna as user attributes, for Optuna's own tools
    to show."""
    ending = {"outcome": str(result.outcome), "reason": result.reason, "steps": result.steps}
    if population is not None:
        ending["population"] = population
    for key, value in {**result.metrics, **ending}.items():
        trial.set_user_attr(key, value)
    # Optuna copies a trial's parameters at each read of them.
    params = trial.params
    return TrialRow(
        number=trial.number,
        optimizer=params.get("optimizer", "-"),
        schedule=params.get("schedule", "-"),
        params=params,
        seed=seed,
        steps=result.steps,
        wall_time_s=result.wall_time_s,
        step_time_s=result.step_time_s,
        compiled=result.compiled,
        metrics=result.metrics,
        value=result.value,
        outcome=result.outcome,
        reason=result.reason,
        default_source=trial.user_attrs.get("default"),
        curve=CurveRow(losses=result.losses, lrs=result.lrs, evals=result.evals),
        population=population,
    )
