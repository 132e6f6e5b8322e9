"""Search spaces: the shared dimensions, the space of a study built from the plugins' and
``--space``'s parameters (:mod:`tuner.params`), and the conditional sampling of one trial's
settings from an Optuna trial.

It knows nothing of MLX: a space is names and ranges, and a sample is plain Python values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tuner.errors import BadInput, did_you_mean
from tuner.params import Choice, Float, Int, Param, parse_param

# The whole search space of a study.

LR = Float(1e-4, 1.0, log=True)
# Warmup is a fraction of the steps: none, or the 5 % and 10 % that common practice uses.
WARMUP = Choice((0.0, 0.05, 0.1))
SHARED = {"lr": LR, "warmup": WARMUP}


@dataclass(frozen=True)
class Sample:
    """One trial's settings."""

    optimizer: str
    optimizer_params: dict[str, Any]
    schedule: str
    schedule_params: dict[str, Any]
    lr: float
    warmup: float

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Sample:
        """The sample a trial drew, from Optuna's flat ``trial.params``.

        Optuna keeps one flat dict per trial, named as :meth:`SearchSpace.sample` suggests them:
        ``optimizer``, ``schedule``, ``lr``, ``warmup``, then ``<optimizer>.<param>`` and
        ``<schedule>.<param>``. Plugin names hold no dot, so the prefix names the owner.
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
        )


@dataclass(frozen=True)
class SearchSpace:
    """A categorical optimizer and schedule, each with its own conditional parameters."""

    optimizers: dict[str, dict[str, Param]]
    schedules: dict[str, dict[str, Param]]
    shared: dict[str, Param] = field(default_factory=lambda: dict(SHARED))

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
        )

    def to_json(self) -> dict[str, Any]:
        def params(space: Mapping[str, Param]) -> dict[str, Any]:
            return {name: p.to_json() for name, p in space.items()}

        return {
            **{name: p.to_json() for name, p in self.shared.items()},
            "optimizers": {name: params(s) for name, s in self.optimizers.items()},
            "schedules": {name: params(s) for name, s in self.schedules.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SearchSpace:
        """The space that :meth:`to_json` wrote, as a study stores it."""

        def params(space: Mapping[str, Any]) -> dict[str, Param]:
            return {name: param_from_json(p) for name, p in space.items()}

        return cls(
            optimizers={name: params(s) for name, s in data["optimizers"].items()},
            schedules={name: params(s) for name, s in data["schedules"].items()},
            shared=params({name: data[name] for name in SHARED}),
        )


def param_from_json(data: Mapping[str, Any]) -> Param:
    """The parameter whose ``to_json`` gave ``data``."""
    if data["type"] == "choice":
        return Choice(tuple(data["values"]))
    kind = Float if data["type"] == "float" else Int
    return kind(data["low"], data["high"], log=data["log"])


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
) -> SearchSpace:
    """The search space over the given optimizers and schedules, with ``--space`` overrides.

    Each override is ``NAME=VALUE`` for a shared parameter (``lr``, ``warmup``) or
    ``PLUGIN.PARAM=VALUE`` for one optimizer's or schedule's parameter.
    """
    space = SearchSpace(
        optimizers={name: dict(p) for name, p in optimizers.items()},
        schedules={name: dict(p) for name, p in schedules.items()},
    )
    for expr in overrides:
        key, sep, value = expr.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadInput(f"--space '{expr}': expected NAME=VALUE, like lr=1e-4..1e-1:log")
        plugin, dot, name = key.rpartition(".")
        if not dot:
            if name not in space.shared:
                hint = did_you_mean(name, space.shared)
                raise BadInput(
                    f"--space '{expr}': unknown shared parameter '{name}'{hint}; "
                    "plugin parameters are written PLUGIN.PARAM"
                )
            target = space.shared
        else:
            target = _plugin_space(space, plugin, expr)
            if name not in target:
                hint = did_you_mean(name, target) if target else "; it has no parameters"
                raise BadInput(f"--space '{expr}': '{plugin}' has no parameter '{name}'{hint}")
        target[name] = parse_param(value, target[name], f"--space {key}")
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


def _plugin_space(space: SearchSpace, plugin: str, expr: str) -> dict[str, Param]:
    found = [group[plugin] for group in (space.optimizers, space.schedules) if plugin in group]
    if len(found) > 1:
        raise BadInput(f"--space '{expr}': '{plugin}' is both an optimizer and a schedule")
    if not found:
        hint = did_you_mean(plugin, [*space.optimizers, *space.schedules])
        raise BadInput(f"--space '{expr}': '{plugin}' is not a chosen optimizer or schedule{hint}")
    return found[0]
