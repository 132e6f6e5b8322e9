"""The Optuna objective of a search: sample a trial, train it (alone, or with the trials that
share its graph, in a population), report at eval points, and record what it did.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import optuna

from tuner.companions import apart, beating, fixed_family
from tuner.db import ClaimLock, TrialRow
from tuner.db.steady_storage import SteadyStorage
from tuner.graphs import GraphCache, graph_settings
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


class Aborted(Exception):
    """A trial that a plugin ended with ``sys.exit()``, or that the watchdog ended: Optuna
    records it as failed, with its reason, and the search goes on (or stops, if halted)."""


class Stuck(BaseException):
    """Raised by the watchdog in a trial that went on past the search's halt. Not an Exception,
    so that no ``except Exception`` of the engine's (its compile fallback) or a plugin's
    swallows it."""


# How long a trial may go on after a signal or --timeout before the watchdog ends it: far more
# than a step, less than a user waits before reaching for SIGKILL.
STUCK_AFTER_S = 3.0
# How often the watchdog looks; its SIGALRM restarts the system calls it interrupts.
WATCH_EVERY_S = 0.5


@contextmanager
def watchdog(halt: Halt) -> Iterator[None]:
    """End the trial in flight with :class:`Stuck` once ``halt`` has been set for
    ``STUCK_AFTER_S`` and the trial has not stopped at a step: a plugin that sleeps or loops
    in Python would otherwise outlive --timeout and every signal but SIGKILL. Only in the main
    thread, where Python runs signal handlers; code that never returns to Python (a C library
    that hangs) is beyond it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    halted_at: list[float] = []

    def look(signum: int, frame: object) -> None:
        if not halt.is_set():
            return
        if not halted_at:
            halted_at.append(time.monotonic())
        elif time.monotonic() - halted_at[0] >= STUCK_AFTER_S:
            why = "--timeout" if halt.timed_out else "the signal that stopped the search"
            raise Stuck(
                f"still running {STUCK_AFTER_S:.0f} s after {why}, in a step that did not "
                "return (a plugin that hangs?): ended by tuner's watchdog"
            )

    previous = signal.signal(signal.SIGALRM, look)
    signal.siginterrupt(signal.SIGALRM, False)
    signal.setitimer(signal.ITIMER_REAL, WATCH_EVERY_S, WATCH_EVERY_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


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
    storage: SteadyStorage
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
    asked for, and let go before any of them samples.
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
            try:
                room = config.trials - search.progress.claimed - 1
                size = search.population()
                if size > 1 and room > 0:
                    with apart(trial.study):
                        for _ in range(min(size - 1, room)):
                            companions.append(trial.study.ask())
            finally:
                # The count needs the trials written as running, not their settings: drawing
                # those, most of a claim's time, runs beside the other workers' claims.
                search.claim.release()
            # From their ask, not their training: they sample outside the lock now, as long
            # as that takes, and a trial that never beat is taken for a dead worker's.
            with beating(search.storage, companions):
                # One transaction for the settings of every member, not one a setting.
                with search.storage.params_together():
                    sample = plan.space.sample(trial)
                    members = [(trial, sample)]
                    if companions:
                        optimizer = plan.registry.optimizers[sample.optimizer]
                        family = graph_settings(optimizer, sample, plan.space.task)
                        with fixed_family(trial.study, family):
                            members += [(c, plan.space.sample(c)) for c in companions]
                with watchdog(search.halt):
                    lead = _train(search, graphs, members, told)
        except (Exception, Stuck, SystemExit) as error:
            reason = _why(error)
            for companion in companions:
                if companion.number not in told:
                    _tell(search, companion, unrun(Outcome.FAILED, reason), None)
            search.ended[trial.number] = _record(trial, seed, unrun(Outcome.FAILED, reason), None)
            if isinstance(error, Exception):
                raise
            # Optuna would leave the trial running and end the process: it catches Exceptions.
            raise Aborted(reason) from error
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


def _why(error: BaseException) -> str:
    """Why a trial that raised ``error`` failed, in one line."""
    if isinstance(error, Exception):
        return failure(error)
    if isinstance(error, SystemExit):
        return f"a plugin called sys.exit({error.code!r}) during the trial"
    return str(error)


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
        optimizer = plan.registry.optimizers[sample.optimizer]
        key = tuple(sorted(graph_settings(optimizer, sample, plan.space.task).items()))
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
            batch_size=plan.batch_size_of(sample),
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
    return TrialRow.of_trial(trial, seed, result, population)
