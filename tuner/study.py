"""An Optuna study over the registry: its settings, its sampler and pruner, and the objective
that runs one MLX trial and hands its record to storage once, at its end.
"""

from __future__ import annotations

import importlib.util
import math
import random
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import version
from typing import Any

import numpy as np
import optuna

from tuner.errors import BadInput, TunerError, did_you_mean
from tuner.plugins import Registry
from tuner.space import SearchSpace, build_space
from tuner.watcher import Progress, Watcher

SAMPLERS = ("tpe", "random", "cmaes", "gp", "qmc")
PRUNERS = ("median", "hyperband", "sha", "none")
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
# A study whose trials all fail tells nothing; stop it rather than spin.
MAX_FAILURES_IN_A_ROW = 5


@dataclass(frozen=True)
class SearchConfig:
    """What ``tuner search`` was asked for; None means the task's or the registry's default."""

    task: str | None = None
    trials: int = 60
    timeout: float | None = None
    steps: int | None = None
    batch_size: int | None = None
    eval_every: int | None = None
    study: str | None = None
    seed: int = 0
    device: str | None = None
    optimizers: Sequence[str] | None = None
    schedules: Sequence[str] | None = None
    space: Sequence[str] = ()
    sampler: str = "tpe"
    pruner: str = "median"
    metric: str | None = None
    command: str = ""


@dataclass(frozen=True)
class Plan:
    """A validated search: everything resolved, nothing written yet."""

    config: SearchConfig
    registry: Registry
    task: Any
    space: SearchSpace
    steps: int
    batch_size: int
    eval_every: int
    direction: str
    settings: dict[str, Any] = field(default_factory=dict)


def plan_search(
    config: SearchConfig, registry: Registry, stored: Mapping[str, Any] | None = None
) -> Plan:
    """Check the request against the registry and resolve its defaults; raise on bad input.

    ``stored`` holds the settings of the study the request resumes. What the request leaves out
    is taken from them, so that a study keeps the task, steps, metric and search space it was
    created with, whatever plugins were installed since; what it gives must match them.
    """
    if config.trials < 1:
        raise BadInput(f"--trials must be at least 1, got {config.trials}")
    for option, name, known in (
        ("sampler", config.sampler, SAMPLERS),
        ("pruner", config.pruner, PRUNERS),
    ):
        if name not in known:
            raise BadInput(f"unknown --{option} '{name}'{did_you_mean(name, known)}")
    for sampler, package in (("gp", "torch"), ("cmaes", "cmaes")):
        if config.sampler == sampler and importlib.util.find_spec(package) is None:
            raise BadInput(
                f"--sampler {sampler} needs the {package} package: pip install {package}"
            )
    for option, names in (("optimizers", config.optimizers), ("schedules", config.schedules)):
        if names is not None and not names:
            raise BadInput(f"--{option} names none; give at least one, or leave it out for all")
    if stored:
        config = replace(
            config,
            **{key: getattr(config, key) or stored.get(key) for key in KEPT_ON_RESUME},
        )
    if config.task is None:
        if not registry.tasks:
            raise TunerError("no task is registered; see `tuner plugins` for plugin errors")
        # The built-ins register first, so the default is theirs unless a plugin's comes first.
        config = replace(config, task=next(iter(registry.tasks)))
    task_spec = registry.get("task", config.task)
    if stored and config.optimizers is None and config.schedules is None and not config.space:
        space = SearchSpace.from_json(stored["space"])
        for kind, names in (("optimizer", space.optimizers), ("schedule", space.schedules)):
            for name in names:
                _require(registry, kind, name, config.study)
    else:
        optimizers = registry.select("optimizer", config.optimizers)
        schedules = registry.select("schedule", config.schedules)
        space = build_space(
            {name: spec.space for name, spec in optimizers.items()},
            {name: spec.space for name, spec in schedules.items()},
            config.space,
        )
    task = task_spec.build()
    steps = config.steps or task.steps
    eval_every = min(config.eval_every or task.eval_every, steps)
    metric = config.metric or "val_loss"
    if metric == "val_loss":
        direction = "minimize"
    elif metric in task.metrics:
        direction = task.metrics[metric].direction
    else:
        known = ["val_loss", *task.metrics]
        raise BadInput(
            f"unknown metric '{metric}' of task '{config.task}'{did_you_mean(metric, known)}"
        )
    batch_size = config.batch_size or task.batch_size
    settings = {
        "task": config.task,
        "metric": metric,
        "direction": direction,
        "steps": steps,
        "batch_size": batch_size,
        "eval_every": eval_every,
        "space": space.to_json(),
        "sampler": config.sampler,
        "pruner": config.pruner,
    }
    config = replace(config, metric=metric)
    return Plan(config, registry, task, space, steps, batch_size, eval_every, direction, settings)


# What a resumed study takes from its stored settings when the request leaves it out.
KEPT_ON_RESUME = ("task", "metric", "steps", "batch_size", "eval_every")
# What a resumed study may change: they steer the search, not what its trials measure.
STEERING = ("sampler", "pruner")


def _require(registry: Registry, kind: str, name: str, study: str | None) -> None:
    if name not in registry.specs(kind):
        raise BadInput(
            f"study '{study}' searches {kind} '{name}', which no loaded plugin registers now: "
            "install its plugin again or pass it with --plugin"
        )


def differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """What a resumed study would change, in words; empty when it may simply continue."""
    changes = []
    for key, value in wanted.items():
        if key == "space" or key in STEERING:
            continue
        if stored.get(key) != value:
            changes.append(f"{key} {stored.get(key)!r}, not {value!r}")
    if stored.get("space") != wanted["space"]:
        changes.append(
            f"a different search space ({_space_change(stored['space'], wanted['space'])})"
        )
    return changes


def _space_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
                inner = _space_change(old[key], new[key])
                return f"{key}.{inner}" if not inner.startswith("was") else f"{key} {inner}"
            return f"{key} was {old.get(key)}, now {new.get(key)}"
    return "unchanged"


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler ``--sampler`` names, reseeded for each trial from ``seed`` and its number."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if name == "qmc":
        # Its sequence is seeded once and indexed by the trials in storage: already per trial.
        return optuna.samplers.QMCSampler(seed=seed)
    return SeededPerTrial(lambda trial_seed: _sampler(name, trial_seed), seed)


def _sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        # group=True lets TPE model each optimizer's conditional parameters on their own.
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        # CMA-ES models only the parameters every trial shares; the rest are sampled at random.
        return optuna.samplers.CmaEsSampler(
            seed=seed, independent_sampler=optuna.samplers.RandomSampler(seed=seed)
        )
    return optuna.samplers.GPSampler(seed=seed)


class SeededPerTrial(optuna.samplers.BaseSampler):
    """A sampler made anew for each trial with a seed from the study's seed and the trial's
    number. A study then replays trial by trial, however often it was stopped and resumed,
    and workers that share it, each holding its own sampler, never draw the same settings."""

    def __init__(self, make: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._make = make
        self._seed = seed
        self._sampler = make(seed)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._sampler = self._make(trial_seed(self._seed, trial.number))
        self._sampler.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, optuna.distributions.BaseDistribution]:
        return self._sampler.infer_relative_search_space(study, trial)

    def sample_relative(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        search_space: dict[str, optuna.distributions.BaseDistribution],
    ) -> dict[str, Any]:
        return self._sampler.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> Any:
        return self._sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        state: optuna.trial.TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._sampler.after_trial(study, trial, state, values)


def make_pruner(name: str, steps: int, eval_every: int) -> optuna.pruners.BasePruner:
    """The pruner ``--pruner`` names, measured in training steps."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=eval_every)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=eval_every, max_resource=steps)
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=eval_every)
    return optuna.pruners.NopPruner()


def trial_seed(study_seed: int, number: int) -> int:
    """A seed for trial ``number`` that depends on nothing but the study's seed."""
    return int(np.random.SeedSequence([study_seed, number]).generate_state(1)[0])


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


class Interrupted(Exception):
    """The user stopped the search: Optuna records the trial in flight as failed, tuner as
    interrupted, and neither counts it among the finished."""


def objective_for(
    plan: Plan, store: Any, device: str, watcher: Watcher, stop: threading.Event
) -> Callable[[optuna.Trial], float]:
    """The Optuna objective: sample, train, report at eval points, store one record.

    Once ``stop`` is set, the trial in flight ends at its next step as interrupted.
    """
    from tuner.db import TrialRecord
    from tuner.train import run_trial

    registry, config = plan.registry, plan.config

    def objective(trial: optuna.Trial) -> float:
        seed = trial_seed(config.seed, trial.number)

        def on_eval(step: int, value: float) -> bool:
            if math.isfinite(value):
                trial.report(value, step)
            return trial.should_prune()

        def unrun(outcome: str, reason: str) -> TrialRecord:
            trial.set_user_attr("reason", reason)
            return TrialRecord(
                **_identity(trial, seed),
                steps=0,
                wall_time_s=time.monotonic() - started,
                step_time_s=None,
                compiled=False,
                metrics={},
                value=None,
                outcome=outcome,
                reason=reason,
            )

        started = time.monotonic()
        if stop.is_set():
            store.save_trial(unrun("interrupted", "interrupted before its first step"))
            raise Interrupted("interrupted before its first step")
        try:
            sample = plan.space.sample(trial)
            watcher.trial_started(trial.number, sample, plan.steps)
            result = run_trial(
                plan.task,
                registry.optimizers[sample.optimizer],
                registry.schedules[sample.schedule],
                sample,
                steps=plan.steps,
                batch_size=plan.batch_size,
                eval_every=plan.eval_every,
                seed=seed,
                objective=config.metric,
                on_eval=on_eval,
                on_build=lambda: watcher.building(trial.number),
                on_step=lambda done: watcher.trial_step(trial.number, done),
                stop=stop,
            )
        except Exception as error:
            store.save_trial(unrun("failed", f"{type(error).__name__}: {error}".splitlines()[0]))
            raise
        store.save_trial(TrialRecord(**_identity(trial, seed), **asdict(result)))
        if result.outcome == "interrupted":
            trial.set_user_attr("reason", result.reason)
            raise Interrupted(result.reason)
        if result.outcome != "complete":
            raise optuna.TrialPruned(result.reason)
        return result.value

    return objective


def _identity(trial: optuna.Trial, seed: int) -> dict[str, Any]:
    """What a trial's record says of it before it has any result."""
    return {
        "study": trial.study.study_name,
        "number": trial.number,
        "optuna_trial_id": trial._trial_id,
        "optimizer": trial.params.get("optimizer", "-"),
        "schedule": trial.params.get("schedule", "-"),
        "params": trial.params,
        "seed": seed,
    }


def check_device(device: str | None) -> str:
    """Make ``device`` MLX's default and return its name; None picks the GPU when there is one."""
    import mlx.core as mx

    if device is None:
        device = "gpu" if mx.is_available(mx.gpu) else "cpu"
    if device == "gpu" and not mx.is_available(mx.gpu):
        raise BadInput(
            "this MLX build has no GPU: on Linux install tuner[cuda] (mlx[cuda13]) for NVIDIA "
            "GPUs; on a Mac with Apple silicon, mlx brings Metal"
        )
    mx.set_default_device(mx.gpu if device == "gpu" else mx.cpu)
    return device


def run_search(
    plan: Plan,
    storage_url: str,
    watcher: Watcher | None = None,
    stop: threading.Event | None = None,
) -> optuna.Study:
    """Create or resume the study and run trials until it holds ``trials`` finished ones.

    Setting ``stop`` (from a signal handler, say) ends the trial in flight at its next step,
    records it as interrupted, and returns: no trial is left running.
    """
    from tuner.db import StudyRecord, open_store, optuna_storage

    config = plan.config
    watcher = watcher or Watcher()
    stop = stop or threading.Event()
    device = check_device(config.device)
    store = open_store(storage_url)
    storage = optuna_storage(storage_url)
    names = optuna.get_all_study_names(storage=storage)
    name = config.study or new_study_name(config.task, names)
    new = name not in names
    if not new and store.study(name) is None:
        raise BadInput(
            f"study '{name}' was not made by tuner (it has no record of tuner's): "
            "give another --study name"
        )
    twins = store.twins(config.seed, plan.settings) if new else []
    if new:
        # Ours before Optuna's: a worker that finds Optuna's study must find this record too.
        record = StudyRecord(
            name=name, task=config.task, settings=plan.settings, **provenance(plan, device)
        )
        store.save_study(record)
    # Another worker's, when it started this study first.
    changes = differences(store.study(name).settings, plan.settings)
    if changes:
        raise BadInput(
            f"study '{name}' was created with {'; '.join(changes)}: "
            "run it with its own settings, or give a new --study name"
        )
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=plan.direction,
        sampler=make_sampler(config.sampler, config.seed),
        pruner=make_pruner(config.pruner, plan.steps, plan.eval_every),
        load_if_exists=True,
    )
    watcher.started(name, new=new, twins=twins)
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    progress = Progress(total=config.trials)
    if finished >= config.trials or stop.is_set():
        return study

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if stop.is_set():
            study.stop()
        elif trial.state == optuna.trial.TrialState.FAIL:
            progress.failures_in_a_row += 1
            progress.last_failure = trial.user_attrs.get("reason")
            if progress.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                study.stop()
        else:
            progress.failures_in_a_row = 0
        watcher.trial_ended(study, trial, progress)

    study.optimize(
        objective_for(plan, store, device, watcher, stop),
        timeout=config.timeout,
        callbacks=[optuna.study.MaxTrialsCallback(config.trials, states=FINISHED), after_trial],
        catch=(Exception,),
    )
    if progress.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
        raise TunerError(
            f"stopped after {MAX_FAILURES_IN_A_ROW} failed trials in a row in study '{name}'; "
            f"the last: {progress.last_failure}"
        )
    return study
