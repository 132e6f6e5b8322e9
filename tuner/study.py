"""An Optuna study of a plan: the objective that runs one MLX trial and hands its record to
storage once, at its end, and the loop that runs trials until the study holds enough.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from importlib.metadata import version
from typing import Any

import optuna

from tuner.blas import check_device
from tuner.companions import auto_size
from tuner.db import (
    GRACE_BEATS,
    ClaimLock,
    Store,
    StudyRow,
    TrialRow,
    database_error,
    heartbeat_s,
    open_store,
    parse_url,
    storage_failure,
    tuner_made,
)
from tuner.errors import BadInput, TunerError
from tuner.objective import Halt, Search, objective_for
from tuner.plan import COUNT_ATTR, Plan, differences
from tuner.query import open_results
from tuner.reader import from_optuna
from tuner.reaping import fill_in, reap, reaped_because, reaping_storage
from tuner.results import Outcome, rank
from tuner.samplers import make_pruner, make_sampler
from tuner.study_attrs import describe_study
from tuner.watcher import Progress, Watcher

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
# An Optuna study callback: called with the study and each trial once it has ended.
StudyCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]
# A study whose trials all fail tells nothing; stop it rather than spin.
MAX_FAILURES_IN_A_ROW = 5
# How often a worker that waits for others' last trials looks again.
AWAIT_S = 0.5
# The words of the names tuner gives new studies: readable, and new to the storage.
WORDS = (
    "amber azure brisk calm crisp dawn eager fern gold hazel ivory jade keen lilac "
    "mossy noble ocean pine quiet rapid sage swift tidy umber vivid warm zesty"
).split()
ANIMALS = (
    "otter falcon heron lynx marten newt owl panda quail raven seal tapir viper wren yak "
    "badger crane dingo egret finch gecko ibis koala lemur mole"
).split()


def new_study_name(task: str, taken: Sequence[str]) -> str:
    """A readable name such as ``digits-brisk-otter`` that no study in storage has yet."""
    rng = random.Random()
    attempt = 0
    while True:
        # Numbered once most of the word pairs are taken, so that the search always ends.
        suffix = f"-{attempt}" if attempt >= len(WORDS) * len(ANIMALS) else ""
        name = f"{task}-{rng.choice(WORDS)}-{rng.choice(ANIMALS)}{suffix}"
        if name not in taken:
            return name
        attempt += 1


def provenance(plan: Plan, device: str) -> dict[str, Any]:
    """What produced the study: plugin versions, library versions, device, seed, command."""
    used = (
        {("optimizer", name) for name in plan.space.optimizers}
        | {("schedule", name) for name in plan.space.schedules}
        | {("task", plan.config.task)}
    )
    plugins = {
        plan.registry.plugin_of(kind, name).name: plan.registry.plugin_of(kind, name).version
        for kind, name in sorted(used)
    }
    return {
        "plugins": plugins,
        "versions": {lib: version(lib) for lib in ("mlx", "optuna", "tuner")},
        "device": device,
        "seed": plan.config.seed,
        "command": plan.config.command,
    }


def run_search(
    plan: Plan,
    storage_url: str,
    watcher: Watcher | None = None,
    stop: threading.Event | None = None,
    callbacks: Sequence[StudyCallback] = (),
    on_ready: Callable[[str], None] | None = None,
) -> str:
    """Create or resume the study and run trials until it holds ``trials`` finished ones;
    return the study's name. ``on_ready(name)`` is called once the study exists, before the
    watcher hears that it does.

    Setting ``stop`` (from a signal handler, say) ends the trial in flight at its next step,
    records it as interrupted, and returns: no trial is left running. Each of ``callbacks``
    is called as Optuna calls a study callback, after each trial this process ran, once
    tuner's record of it is stored: a population's members each in turn.
    """
    # tuner reports each trial itself; Optuna's line a trial would drown it.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    device = check_device(plan.config.device)
    store = open_store(storage_url)
    storage = reaping_storage(storage_url)
    try:
        watcher = watcher or Watcher()
        return _search(
            plan, storage_url, store, storage, device, watcher, stop, callbacks, on_ready
        )
    except TunerError:
        raise
    except Exception as error:
        # Optuna wraps a database's errors (a full disk among them) in its own, or in an
        # AssertionError raised while it handles them: say what the database said.
        cause = database_error(error)
        if cause is None:
            raise
        raise storage_failure(cause, parse_url(storage_url)) from error
    finally:
        # Closed now, not when collected: SQLite folds its write-ahead log into the file when
        # its last connection closes, and that must not happen later, in another command.
        storage.remove_session()
        storage.engine.dispose()
        store.close()


def _search(
    plan: Plan,
    storage_url: str,
    store: Store,
    storage: optuna.storages.RDBStorage,
    device: str,
    watcher: Watcher,
    stop: threading.Event | None,
    callbacks: Sequence[StudyCallback],
    on_ready: Callable[[str], None] | None,
) -> str:
    config = plan.config
    stop = stop or threading.Event()
    deadline = None if config.timeout is None else time.monotonic() + config.timeout
    halt = Halt(stop, deadline)
    names = optuna.get_all_study_names(storage=storage)
    name = config.study or new_study_name(config.task, names)
    new = name not in names
    if new and config.worker:
        raise TunerError(f"study '{name}' is gone: deleted while this worker started")
    with open_results(storage_url) as results:
        if not new and name not in results.study_names():
            raise BadInput(
                f"study '{name}' was not made by tuner (it has no record of tuner's): "
                "give another --study name"
            )
        # Not itself, which another worker starting it together may have recorded already.
        twins = [t for t in results.twins(config.seed, plan.settings) if t != name] if new else []
        if new:
            # Ours before Optuna's: a worker that finds Optuna's study must find this record.
            record = StudyRow(
                name=name, task=config.task, settings=plan.settings, **provenance(plan, device)
            )
            store.save_study(record)
        # Another worker's, when it started this study first.
        changes = differences(results.settings(name), plan.settings)
        seed = results.provenance(name).seed
    if seed is not None and seed != config.seed:
        # Made meanwhile by a search that drew another seed (neither was given one): the
        # study has one seed, which every worker samples with.
        plan = replace(plan, config=replace(config, seed=seed))
        config = plan.config
    if changes:
        raise BadInput(
            f"study '{name}' was created with {'; '.join(changes)}: "
            "run it with its own settings, or give a new --study name"
        )
    sampler = make_sampler(config.sampler, config.seed)
    pruner = make_pruner(config.pruner, plan.steps, plan.eval_every)
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction=plan.direction,
            sampler=sampler,
            pruner=pruner,
        )
    except optuna.exceptions.DuplicatedStudyError:
        # Another worker's, made first: its maker alone enqueues the defaults.
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    else:
        describe_study(study, plan.settings)
        # No more than the trials asked for: the rest would wait in the study, unstarted.
        for params, source in plan.starts[: config.trials]:
            # Tried first, so that the search never ends worse than the textbook setting.
            study.enqueue_trial(params, user_attrs={"default": source})
    if not config.worker:
        study.set_user_attr(COUNT_ATTR, config.trials)
    # Reaped now, not when the next trial starts: a study that is full starts none.
    reaped = reap(study, storage)
    fill_in(study, storage, storage_url)
    if on_ready is not None:
        on_ready(name)
    watcher.started(name, new=new, twins=twins)
    progress = Progress(total=config.trials)
    for trial in reaped:
        # Said, rather than found later in tuner trials: the search did not wait for them.
        reason = reaped_because(trial, None)[1]
        watcher.trial_ended(replace(from_optuna(trial, Outcome.FAILED), reason=reason), progress)
    claim = ClaimLock(storage.engine, name)
    try:
        return _optimize(
            plan, study, storage, device, store, watcher, halt, progress, claim, callbacks
        )
    except Exception:
        # Deleted meanwhile (tuner delete, optuna delete-study, the dashboard), the study
        # fails whichever write comes next, in Optuna's code or ours, in its own way.
        if _deleted(storage, name):
            raise TunerError(
                f"study '{name}' was deleted while this search ran on it: the search stopped"
            ) from None
        raise
    finally:
        claim.release()


def _deleted(storage: optuna.storages.RDBStorage, name: str) -> bool:
    """Whether study ``name`` is gone from Optuna's tables; False when the database cannot
    say, for its own error is then the one to report."""
    try:
        return name not in optuna.get_all_study_names(storage)
    except Exception:
        return False


def _optimize(
    plan: Plan,
    study: optuna.Study,
    storage: optuna.storages.RDBStorage,
    device: str,
    store: Store,
    watcher: Watcher,
    halt: Halt,
    progress: Progress,
    claim: ClaimLock,
    callbacks: Sequence[StudyCallback],
) -> str:
    config, name = plan.config, study.study_name
    # The trials that had ended when this run began, and those it has shown since.
    known: set[int] | None = None

    def look(trials: list[optuna.trial.FrozenTrial]) -> None:
        # Other workers' trials are shown as this one's are, as one process would show them.
        nonlocal known
        ended = {t.number: t for t in trials if t.state.is_finished()}
        if known is None:
            known = set(ended)
        for number in sorted(ended.keys() - known):
            known.add(number)
            watcher.trial_ended(from_optuna(ended[number]), progress)

    def own(number: int) -> None:
        if known is not None:
            known.add(number)

    counted = partial(_counted, study, storage, progress, config.trials, halt, claim, look)
    if counted():
        return name
    ended: dict[int, TrialRow] = {}

    def settle(trial: optuna.trial.FrozenTrial, record: TrialRow | None) -> None:
        # Stored once Optuna has told the trial's state, so that no kill can leave a record
        # that says complete beside a trial that Optuna will fail: killed before this, the
        # trial is Optuna's alone, and reads as Optuna's state says.
        if record is not None:
            store.save_trial(study.study_name, record)
        if record is not None and record.outcome == Outcome.INTERRUPTED and trial.params:
            # Stopped, not judged: its settings run again, after those already queued, so
            # that a known-good setting cut short by Ctrl-C or --timeout is still tried.
            default = {"default": record.default} if record.default else {}
            study.enqueue_trial(trial.params, user_attrs=default)
        # A trial cut short by Ctrl-C or --timeout is Optuna's FAIL, but no failure.
        if trial.state == optuna.trial.TrialState.FAIL and not halt.is_set():
            progress.failures_in_a_row += 1
            progress.last_failure = trial.user_attrs.get("reason")
        elif not halt.is_set():
            progress.failures_in_a_row = 0
        for callback in callbacks:
            callback(study, trial)

    def ended_with(trial: optuna.trial.FrozenTrial, record: TrialRow | None) -> None:
        # A trial that failed before its objective noted anything failed in sampling.
        outcome = Outcome.FAILED if record is None else Outcome(record.outcome)
        watcher.trial_ended(from_optuna(trial, outcome), progress)

    def member_told(trial: optuna.trial.FrozenTrial, record: TrialRow) -> None:
        own(trial.number)
        settle(trial, record)
        # Counted here until the next stock-taking, which the population's first trial makes.
        progress.finished += trial.state in FINISHED
        ended_with(trial, record)

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        record = ended.pop(trial.number, None)
        own(trial.number)
        settle(trial, record)
        if halt.is_set() or progress.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
            _take_stock(study, progress)
            study.stop()
        elif counted():
            study.stop()
        ended_with(trial, record)

    def population() -> int:
        return config.population or auto_size(plan.parameters, device, progress.finished)

    search = Search(plan, population, watcher, halt, claim, progress, storage, ended, member_told)
    study.optimize(
        objective_for(search),
        timeout=config.timeout,
        callbacks=[after_trial],
        catch=(Exception,),
    )
    if progress.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
        raise TunerError(
            f"stopped after {MAX_FAILURES_IN_A_ROW} failed trials in a row in study '{name}'; "
            f"the last: {progress.last_failure}"
        )
    return name


def _counted(
    study: optuna.Study,
    storage: optuna.storages.RDBStorage,
    progress: Progress,
    trials: int,
    halt: Halt,
    claim: ClaimLock,
    look: Callable[[list[optuna.trial.FrozenTrial]], None],
) -> bool:
    """Whether the study holds its count of finished trials, or will once other workers'
    trials in flight end: waiting for those rather than start one more, which would overshoot.
    One that fails, or whose worker dies (its trial is failed after the heartbeat's grace, and
    its settings queued again), leaves the count short.

    Decided under the claim lock, so that no two workers count alike and both start a trial.
    When the answer is no, the lock is kept until this worker's next trial is written as
    running (the objective lets it go), so that the next worker to count counts that one."""
    if not claim.acquire(halt.is_set):
        return True
    look(_take_stock(study, progress))
    # A dead worker's trial is failed within the grace; the beat more is for the reaping.
    deadline = time.monotonic() + (GRACE_BEATS + 1) * heartbeat_s()
    while progress.finished < trials <= progress.claimed and not halt.is_set():
        if time.monotonic() > deadline:
            break
        time.sleep(AWAIT_S)
        reap(study, storage)
        look(_take_stock(study, progress))
    if progress.claimed >= trials or halt.is_set():
        claim.release()
        return True
    return False


def _take_stock(study: optuna.Study, progress: Progress) -> list[optuna.trial.FrozenTrial]:
    """Count the study's finished and running trials, every worker's, and find its best, in
    one read, which it returns: tuner's trials, not those another Optuna client wrote."""
    trials = [trial for trial in study.get_trials(deepcopy=False) if tuner_made(trial)]
    progress.finished = sum(trial.state in FINISHED for trial in trials)
    progress.running = sum(trial.state == optuna.trial.TrialState.RUNNING for trial in trials)
    direction = study.direction.name.lower()
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    # Ranked from the fields the key reads: a TrialSummary of the best alone, not of each.
    best = min(
        complete, key=lambda t: rank(direction, Outcome.COMPLETE, t.value, t.number), default=None
    )
    progress.best = None if best is None else from_optuna(best, Outcome.COMPLETE)
    return trials
