"""What a search was asked for, checked against the registry and resolved: the plan that a
study runs. It knows nothing of Optuna, so a request is refused before anything is stored.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tuner.errors import BadInput, TunerError, did_you_mean
from tuner.params import Choice, Param
from tuner.plugins import Registry
from tuner.space import Sample, SearchSpace, build_space
from tuner.space_grammar import scalar_text, stored_space

SAMPLERS = ("tpe", "random", "cmaes", "gp", "qmc")
PRUNERS = ("quartile", "median", "hyperband", "sha", "none")
# Optuna's samplers seed numpy's RandomState, which takes no seed outside 0..2**32 - 1.
MAX_SEED = 2**32 - 1
# The seed of a new study given none, where it is set, rather than a drawn one.
SEED_ENV = "TUNER_SEED"
# The Optuna study attribute that holds the --trials of the search that last ran on it: what a
# tuner worker without --trials works to.
COUNT_ATTR = "tuner.trials"
# Optuna's limit on a study's name, and the width of tuner's column for it.
MAX_STUDY_NAME = 512
# A trial keeps the loss, learning rate and time of every step in memory (about 100 bytes a
# step) and stores its curve (up to 16 bytes a step): 100 MB a trial at this many steps, which
# at a millisecond a step is already a quarter of an hour. Ten times more is a typo.
MAX_STEPS = 1_000_000
# A trial draws the row order of all its batches before its first step (tuner.train): 16 bytes
# a row at the peak, in numpy and again in MLX, so 1.6 GB at this many rows.
MAX_ROWS_DRAWN = 100_000_000


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
    # None: a resumed study's own seed, or a random one for a new study.
    seed: int | None = None
    device: str | None = None
    optimizers: Sequence[str] | None = None
    schedules: Sequence[str] | None = None
    space: Sequence[str] = ()
    sampler: str = "tpe"
    pruner: str = "quartile"
    metric: str | None = None
    command: str = ""
    # Whether a new study tries its optimizers' known-good settings first.
    defaults: bool = True
    # After the search: the best configurations to train again, and the seeds for each.
    confirm: tuple[int, int] = (3, 3)
    # Trials of one graph trained together; None picks a size for the task and the device.
    population: int | None = None
    # A tuner worker's: it joins a study that a search made and never makes one (the study
    # gone since it looked was deleted), and its --trials stays its own, where a search's
    # becomes the study's count, which a worker without --trials works to.
    worker: bool = False


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
    # What a new study tries first: Optuna's parameters, and where they come from.
    starts: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    # The numbers (weights and biases) of the task's model: what --population auto sizes by.
    parameters: int = 0

    def batch_size_of(self, sample: Sample) -> int:
        """The batch size a trial of ``sample`` trains with: its own where it is searched."""
        return sample.batch_size or self.batch_size


def plan_search(
    config: SearchConfig, registry: Registry, stored: Mapping[str, Any] | None = None
) -> Plan:
    """Check the request against the registry and resolve its defaults; raise on bad input.

    ``stored`` holds the settings of the study the request resumes, and its ``seed``. What the
    request leaves out is taken from them, so that a study keeps the task, steps, metric, seed
    and search space it was created with, whatever plugins were installed since; what it gives
    must match them. Before anything is written, the chosen optimizers and schedules are built
    once and the task's loss is tried (:mod:`tuner.checks`): what could never train is refused.
    """
    if config.trials < 1:
        raise BadInput(f"--trials must be at least 1, got {config.trials}")
    if config.seed is not None and not 0 <= config.seed <= MAX_SEED:
        raise BadInput(
            f"--seed must be from 0 to {MAX_SEED} (2**32 - 1, what Optuna's samplers take), "
            f"got {config.seed}"
        )
    if config.study is not None and not config.study.strip():
        raise BadInput(
            "--study is empty or only spaces: give the study a name, or leave --study out for "
            "a new one"
        )
    if config.study is not None and len(config.study) > MAX_STUDY_NAME:
        raise BadInput(
            f"--study is {len(config.study)} characters long: a study's name has at most "
            f"{MAX_STUDY_NAME} (Optuna's limit)"
        )
    if config.population is not None and config.population < 1:
        raise BadInput(f"--population must be auto or at least 1, got {config.population}")
    if min(config.confirm) < 0:
        raise BadInput(f"--confirm needs counts of 0 or more, got {config.confirm}")
    for option, name, known in (
        ("sampler", config.sampler, SAMPLERS),
        ("pruner", config.pruner, PRUNERS),
    ):
        if name not in known:
            raise BadInput(f"unknown --{option} '{name}'{did_you_mean(name, known)}")
    for sampler, package in (("gp", "torch"), ("cmaes", "cmaes")):
        if config.sampler == sampler and importlib.util.find_spec(package) is None:
            # Not a usage error: what is missing is in the environment, as a missing extra is.
            raise TunerError(
                f"--sampler {sampler} needs the {package} package: pip install {package}"
            )
    for option, names in (("optimizers", config.optimizers), ("schedules", config.schedules)):
        if names is not None and not names:
            raise BadInput(f"--{option} names none; give at least one, or leave it out for all")
    requested = config
    seed = config.seed
    if stored:
        config = replace(config, **{k: getattr(config, k) or stored.get(k) for k in SETTINGS_KEPT})
        if stored.get("seed") is not None:
            if seed is not None and seed != stored["seed"]:
                raise BadInput(
                    f"study '{config.study}' was created with seed {stored['seed']}, not {seed}: "
                    "leave --seed out to continue it, or give a new --study name"
                )
            seed = stored["seed"]
    if config.task is None:
        if not registry.tasks:
            raise TunerError("no task is registered; see `tuner plugins` for plugin errors")
        # The built-ins register first, so the default is theirs unless a plugin's comes first.
        config = replace(config, task=next(iter(registry.tasks)))
    if stored and config.task == stored.get("task"):
        _require(registry, "task", config.task, config.study)
    task_spec = registry.get("task", config.task)
    if stored and not any(getattr(config, option) for option in SPACE_OPTIONS):
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
            config.task,
            task_spec.space,
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
    _check_sizes(requested, config.task, task, steps, batch_size)
    if "batch_size" in space.shared:
        _check_batch_sizes(requested, space.shared["batch_size"], config.task, task, steps)
    _check_warmup(space.shared["warmup"], steps)
    # Here, not above: MLX loads with the task, once the BLAS it calls is chosen.
    from tuner.checks import check_trainable

    parameters = check_trainable(config.task, task, registry, space, steps)
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
    config = replace(config, metric=metric, seed=random_seed() if seed is None else seed)
    starts = starting_points(space, registry) if config.defaults and not stored else []
    return Plan(
        config,
        registry,
        task,
        space,
        steps,
        batch_size,
        eval_every,
        direction,
        settings,
        starts,
        parameters,
    )


def random_seed() -> int:
    """A new study's seed when none is given: ``TUNER_SEED`` where it is set (a resumed study
    keeps its own), else drawn, so that running the same command again searches anew rather
    than repeating the trials of the last study; stored and printed, so that the study can
    still be replayed."""
    given = os.environ.get(SEED_ENV, "").strip()
    if not given:
        return secrets.randbelow(MAX_SEED + 1)
    if not given.isdigit() or int(given) > MAX_SEED:
        raise BadInput(
            f"{SEED_ENV}='{given}': give a new study's seed, a whole number from 0 to {MAX_SEED}"
        )
    return int(given)


def _check_sizes(
    requested: SearchConfig, name: str, task: Any, steps: int, batch_size: int
) -> None:
    """Refuse the --steps and --batch-size asked for that the task cannot use or a machine
    cannot hold. What the request leaves out, a task's default or a resumed study's setting,
    is as its maker chose it."""
    rows = task.train[0].shape[0]
    if requested.steps is not None:
        if requested.steps < 1:
            raise BadInput(f"--steps must be at least 1, got {requested.steps}")
        if requested.steps > MAX_STEPS:
            raise BadInput(
                f"--steps {requested.steps} is more than {MAX_STEPS}: a trial keeps the loss and "
                "learning rate of every step, in memory and in the database"
            )
    if requested.batch_size is not None:
        if requested.batch_size < 1:
            raise BadInput(f"--batch-size must be at least 1, got {requested.batch_size}")
        if requested.batch_size > rows:
            raise BadInput(
                f"--batch-size {requested.batch_size} is more than the {rows} training rows of "
                f"task '{name}': a batch holds at most all of them"
            )
    drawn = steps * batch_size
    if (requested.steps or requested.batch_size) and drawn > MAX_ROWS_DRAWN:
        raise BadInput(
            f"{steps} steps of {batch_size} rows draw {drawn} rows, more than {MAX_ROWS_DRAWN}: "
            "a trial holds the order of all its rows in memory from its first step "
            "(16 bytes a row); ask for fewer --steps or a smaller --batch-size"
        )


def _check_batch_sizes(
    requested: SearchConfig, searched: Choice, name: str, task: Any, steps: int
) -> None:
    """Refuse a searched batch size that the task cannot use or a trial cannot hold, as
    ``--batch-size`` is refused."""
    if requested.batch_size is not None:
        raise BadInput(
            f"--batch-size {requested.batch_size} and --space batch_size={searched}: give one, "
            "a fixed batch size or the ones to search"
        )
    rows = task.train[0].shape[0]
    largest = max(searched.values)
    if largest > rows:
        raise BadInput(
            f"--space batch_size={searched}: {largest} is more than the {rows} training rows "
            f"of task '{name}': a batch holds at most all of them"
        )
    if steps * largest > MAX_ROWS_DRAWN:
        raise BadInput(
            f"--space batch_size={searched}: {steps} steps of {largest} rows draw "
            f"{steps * largest} rows, more than {MAX_ROWS_DRAWN}: a trial holds the order of "
            "all its rows in memory from its first step (16 bytes a row)"
        )


def _check_warmup(warmup: Param, steps: int) -> None:
    # Rounded to steps as tuner.graphs rounds a trial's: the largest must leave the schedule a
    # step, or every trial that draws it fails.
    largest = max(warmup.values) if isinstance(warmup, Choice) else warmup.high
    if round(largest * steps) >= steps:
        raise BadInput(
            f"--space warmup={warmup}: a warmup of {largest:g} of the {steps} steps rounds to "
            f"{round(largest * steps)}, leaving no step after it"
        )


def parse_names(value: str | Sequence[str]) -> list[str]:
    """The names of ``--optimizers`` or ``--schedules``: ``"adam, sgd"`` split at its commas,
    or a list; each stripped, and empty ones left out."""
    names = value.split(",") if isinstance(value, str) else value
    return [name.strip() for name in names if name.strip()]


def parse_confirm(text: str) -> tuple[int, int]:
    """``--confirm``'s ``KxS`` (the K best configurations, S seeds each) or ``0`` (none)."""
    if text.strip() == "0":
        return 0, 0
    match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", text)
    if match is None or 0 in (int(match[1]), int(match[2])):
        raise BadInput(
            f"--confirm '{text}': give KxS, the K best configurations with S seeds each "
            "(such as 3x3), or 0 for none"
        )
    return int(match[1]), int(match[2])


def parse_population(text: str) -> int | None:
    """``--population``'s size K, or None for ``auto``."""
    if text == "auto":
        return None
    if not text.isdigit() or int(text) < 1:
        raise BadInput(f"--population '{text}': give auto, or K, a whole number from 1")
    return int(text)


def starting_points(space: SearchSpace, registry: Registry) -> list[tuple[dict[str, Any], str]]:
    """The known-good settings that the optimizers of ``space`` declare and that fit in it, in
    the order of its optimizers: each as Optuna's parameters (``optimizer``, ``lr``,
    ``adamw.beta1``, and so on) with its source. A setting outside the space, as ``--space`` or
    ``--schedules`` narrowed it, is left out rather than tried."""
    starts = []
    for name, own in space.optimizers.items():
        spec = registry.optimizers.get(name)
        for default in spec.defaults if spec else ():
            parts = [
                ("", space.shared, {"lr": default.lr, "warmup": default.warmup}),
                (f"{name}.", own, default.params),
                (
                    f"{default.schedule}.",
                    space.schedules.get(default.schedule),
                    default.schedule_params,
                ),
            ]
            if any(params is None or not _fits(values, params) for _, params, values in parts):
                continue
            flat = {"optimizer": name, "schedule": default.schedule}
            for prefix, _, values in parts:
                flat.update({prefix + key: value for key, value in values.items()})
            starts.append((flat, default.source or f"{name}'s default"))
    return starts


def _fits(values: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    return all(key in params and value in params[key] for key, value in values.items())


# What a resumed study takes from its stored settings when the request leaves it out.
SETTINGS_KEPT = ("task", "metric", "steps", "batch_size", "eval_every")
# What makes a search space: a resumed study keeps its own when the request gives none of them.
SPACE_OPTIONS = ("optimizers", "schedules", "space")
# All a resumed study keeps: its seed too, and ``defaults``, which only a new study uses.
KEPT_ON_RESUME = (*SETTINGS_KEPT, "seed", "defaults", *SPACE_OPTIONS)
# What a resumed study may change: they steer the search, not what its trials measure.
STEERING = ("sampler", "pruner")


def _require(registry: Registry, kind: str, name: str, study: str | None) -> None:
    if name not in registry.specs(kind):
        does = "trains" if kind == "task" else "searches"
        raise BadInput(
            f"study '{study}' {does} {kind} '{name}', which no loaded plugin registers now: "
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


def _space_change(old: dict[str, Any], new: dict[str, Any], owner: str = "") -> str:
    """The first difference between two stored spaces, in ``--space``'s words: the optimizers
    or schedules searched, or a parameter's range or values, as stored and as asked."""
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if _is_param(before) or _is_param(after):
            name = f"{owner}.{key}" if owner else key
            return f"{name} {_param_text(before)}, not {_param_text(after)}"
        if set(before or {}) != set(after or {}):
            return (
                f"{key} {','.join(before or {}) or 'none'}, not {','.join(after or {}) or 'none'}"
            )
        return _space_change(before, after, key)
    return "unchanged"


def _is_param(stored: Any) -> bool:
    return isinstance(stored, dict) and isinstance(stored.get("type"), str)


def _param_text(stored: dict[str, Any] | None) -> str:
    if stored is None:
        return "not searched"
    ((_, text),) = stored_space({"": stored})
    # Values to choose from as --space writes them: true,false, not [True, False].
    return ",".join(map(scalar_text, text)) if isinstance(text, list) else scalar_text(text)
