"""Search spaces: the shared dimensions, the space of a study built from the parameters the
plugins declare (:mod:`tuner.params`) and ``--space``'s overrides (read by
:mod:`tuner.space_grammar`), and the conditional sampling of one trial's settings from an
Optuna trial.

Beside the optimizer and its schedule, a study may search the batch size and its task's own
parameters, which its model factory receives; both are fixed until ``--space`` names them, and
each of their values is a graph of its own (a shape, or a constant of the model's).

It knows nothing of MLX: a space is names and ranges, and a sample is plain Python values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tuner.errors import BadInput, did_you_mean
from tuner.params import Choice, Float, Int, Param, param_from_json
from tuner.space_grammar import parse_param

# The whole search space of a study.

LR = Float(1e-4, 1.0, log=True)
# Warmup is a fraction of the steps: none, or the 5 % and 10 % that common practice uses.
WARMUP = Choice((0.0, 0.05, 0.1))
SHARED = {"lr": LR, "warmup": WARMUP}
# Searched only when ``--space batch_size=32,64,128`` says so: a choice, since each batch size
# is a shape of the step's, and so a graph of its own.
BATCH_SIZE = Choice((32, 64, 128), limits=(1, math.inf))


@dataclass(frozen=True)
class Sample:
    """One trial's settings."""

    optimizer: str
    optimizer_params: dict[str, Any]
    schedule: str
    schedule_params: dict[str, Any]
    lr: float
    warmup: float
    # None: the study's batch size, not searched.
    batch_size: int | None = None
    # What the task's model factory receives; empty unless the study searches them.
    task_params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], task: str = "") -> Sample:
        """The sample a trial drew, from Optuna's flat ``trial.params``.

        Optuna keeps one flat dict per trial, named as :meth:`SearchSpace.sample` suggests them:
        ``optimizer``, ``schedule``, ``lr``, ``warmup``, ``batch_size`` where searched, then
        ``<optimizer>.<param>``, ``<schedule>.<param>`` and ``<task>.<param>``. Plugin names
        hold no dot, so the prefix names the owner; ``task`` names the study's task.
        Raises ValueError when a shared parameter is missing.
        """
        missing = [name for name in ("optimizer", "schedule", *SHARED) if name not in params]
        if missing:
            raise ValueError(f"the trial's parameters lack {', '.join(missing)}")

        def own(prefix: str) -> dict[str, Any]:
            start = f"{prefix}."
            return {k[len(start) :]: v for k, v in params.items() if k.startswith(start)}

        return cls(
            optimizer=params["optimizer"],
            optimizer_params=own(params["optimizer"]),
            schedule=params["schedule"],
            schedule_params=own(params["schedule"]),
            lr=params["lr"],
            warmup=params["warmup"],
            batch_size=params.get("batch_size"),
            task_params=own(task) if task else {},
        )


@dataclass(frozen=True)
class SearchSpace:
    """A categorical optimizer and schedule, each with its own conditional parameters; the
    shared ones (``lr``, ``warmup``, and ``batch_size`` where searched); and the parameters of
    the ``task`` that are searched, which its model factory receives."""

    optimizers: dict[str, dict[str, Param]]
    schedules: dict[str, dict[str, Param]]
    shared: dict[str, Param] = field(default_factory=lambda: dict(SHARED))
    task: str = ""
    task_params: dict[str, Param] = field(default_factory=dict)

    def sample(self, trial: Any) -> Sample:
        """Draw one trial's settings from an ``optuna.Trial``."""
        shared = {name: _suggest(trial, name, p) for name, p in self.shared.items()}
        optimizer = trial.suggest_categorical("optimizer", list(self.optimizers))
        schedule = trial.suggest_categorical("schedule", list(self.schedules))
        return Sample(
            optimizer=optimizer,
            optimizer_params=_suggest_all(trial, optimizer, self.optimizers[optimizer]),
            schedule=schedule,
            schedule_params=_suggest_all(trial, schedule, self.schedules[schedule]),
            lr=shared["lr"],
            warmup=shared["warmup"],
            batch_size=shared.get("batch_size"),
            task_params=_suggest_all(trial, self.task, self.task_params),
        )

    def to_json(self) -> dict[str, Any]:
        def params(space: Mapping[str, Param]) -> dict[str, Any]:
            return {name: p.to_json() for name, p in space.items()}

        task = {"task": {self.task: params(self.task_params)}} if self.task_params else {}
        return {
            **{name: p.to_json() for name, p in self.shared.items()},
            "optimizers": {name: params(s) for name, s in self.optimizers.items()},
            "schedules": {name: params(s) for name, s in self.schedules.items()},
            **task,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SearchSpace:
        """The space that :meth:`to_json` wrote, as a study stores it."""

        def params(space: Mapping[str, Any]) -> dict[str, Param]:
            return {name: param_from_json(p) for name, p in space.items()}

        ((task, task_params),) = data.get("task", {"": {}}).items()
        return cls(
            optimizers={name: params(s) for name, s in data["optimizers"].items()},
            schedules={name: params(s) for name, s in data["schedules"].items()},
            shared=params({name: data[name] for name in (*SHARED, "batch_size") if name in data}),
            task=task,
            task_params=params(task_params),
        )


def _suggest(trial: Any, name: str, param: Param) -> Any:
    if isinstance(param, Float):
        return trial.suggest_float(name, param.low, param.high, log=param.log)
    if isinstance(param, Int):
        return trial.suggest_int(name, param.low, param.high, log=param.log)
    return trial.suggest_categorical(name, list(param.values))


def _suggest_all(trial: Any, prefix: str, space: Mapping[str, Param]) -> dict[str, Any]:
    return {name: _suggest(trial, f"{prefix}.{name}", p) for name, p in space.items()}


def build_space(
    optimizers: Mapping[str, Mapping[str, Param]],
    schedules: Mapping[str, Mapping[str, Param]],
    overrides: Sequence[str] = (),
    task: str = "",
    task_space: Mapping[str, Param] | None = None,
) -> SearchSpace:
    """The search space over the given optimizers and schedules, with ``--space`` overrides.

    Each override is ``NAME=VALUE`` for a shared parameter (``lr``, ``warmup``,
    ``batch_size``) or ``PLUGIN.PARAM=VALUE`` for one optimizer's or schedule's parameter, or
    one of ``task_space``, the parameters that ``task`` declares: those are searched only once
    named here, as is the batch size.
    """
    space = SearchSpace(
        optimizers={name: dict(p) for name, p in optimizers.items()},
        schedules={name: dict(p) for name, p in schedules.items()},
        task=task,
    )
    for expr in overrides:
        key, sep, value = expr.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadInput(f"--space '{expr}': expected NAME=VALUE, like lr=1e-4..1e-1:log")
        plugin, dot, name = key.rpartition(".")
        if not dot:
            if name not in [*space.shared, "batch_size"]:
                hint = did_you_mean(name, [*space.shared, "batch_size"])
                raise BadInput(
                    f"--space '{expr}': unknown shared parameter '{name}'{hint}; "
                    "plugin and task parameters are written PLUGIN.PARAM"
                )
            target, declared = space.shared, space.shared.get(name, BATCH_SIZE)
        else:
            target, declared = _plugin_space(space, plugin, expr, task_space or {})
            if name not in declared:
                hint = did_you_mean(name, declared) if declared else "; it has no parameters"
                raise BadInput(f"--space '{expr}': '{plugin}' has no parameter '{name}'{hint}")
            declared = declared[name]
        target[name] = parse_param(value, declared, f"--space {key}")
    _check_shared(space.shared)
    return space


def _check_shared(shared: Mapping[str, Param]) -> None:
    lows_highs = {
        name: (min(p.values), max(p.values)) if isinstance(p, Choice) else (p.low, p.high)
        for name, p in shared.items()
    }
    if lows_highs["lr"][0] <= 0:
        raise BadInput(f"--space lr={shared['lr']}: a learning rate must be above 0")
    low, high = lows_highs["warmup"]
    if low < 0 or high >= 1:
        raise BadInput(
            f"--space warmup={shared['warmup']}: warmup is a fraction of the steps, "
            "at least 0 and below 1"
        )


def _plugin_space(
    space: SearchSpace, plugin: str, expr: str, task_space: Mapping[str, Param]
) -> tuple[dict[str, Param], Mapping[str, Param]]:
    """Where ``PLUGIN.PARAM`` of ``expr`` goes, and what its plugin declares: an optimizer's
    or schedule's space is both; a task's searched parameters are kept apart from those it
    declares."""
    found: list[tuple[dict[str, Param], Mapping[str, Param]]] = [
        (group[plugin], group[plugin])
        for group in (space.optimizers, space.schedules)
        if plugin in group
    ]
    if plugin == space.task:
        found.append((space.task_params, task_space))
    if len(found) > 1:
        raise BadInput(f"--space '{expr}': '{plugin}' names more than one plugin here")
    if not found:
        names = [*space.optimizers, *space.schedules, *([space.task] if space.task else [])]
        hint = did_you_mean(plugin, names)
        task = f", nor this study's task '{space.task}'" if space.task else ""
        raise BadInput(
            f"--space '{expr}': '{plugin}' is not a chosen optimizer or schedule{task}{hint}"
        )
    return found[0]
