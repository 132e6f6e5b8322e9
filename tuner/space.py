"""Search spaces: the parameter types plugins declare, the ``--space`` override grammar, and
the conditional sampling of one trial's settings from an Optuna trial.

It knows nothing of MLX: a space is names and ranges, and a sample is plain Python values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tuner.errors import BadInput, did_you_mean


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Open:
    """A limit that values may come near but not reach: ``limits=(0.0, Open(1.0))`` for a
    factor that must stay below 1, as Adam's betas must."""

    value: float


Limits = tuple[float | Open, float | Open]


def _within(value: float, limits: Limits) -> bool:
    """Whether ``value`` lies within ``limits``, an open limit itself excluded."""
    low, high = limits
    above = value > low.value if isinstance(low, Open) else value >= low
    below = value < high.value if isinstance(high, Open) else value <= high
    return above and below


def _limits_text(limits: Limits) -> str:
    """``0..1`` (tuner's range notation) when both limits are finite and reached, else the
    interval as mathematics writes it: ``[0, 1)``, ``(0, inf)``."""
    low, high = (limit.value if isinstance(limit, Open) else limit for limit in limits)
    # No number reaches an infinite limit, however it was written.
    open_low, open_high = (
        isinstance(limit, Open) or math.isinf(bound)
        for limit, bound in zip(limits, (low, high), strict=True)
    )
    if not (open_low or open_high):
        return f"{low:g}..{high:g}"
    return f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"


def _check_limits(limits: Limits, values: Sequence[Any]) -> None:
    """Raise ValueError unless ``limits`` are numbers, infinite ones open, that hold
    ``values``."""
    bounds = [limit.value if isinstance(limit, Open) else limit for limit in limits]
    numbers = all(
        isinstance(b, int | float) and not isinstance(b, bool) and not math.isnan(b) for b in bounds
    )
    if not (numbers and bounds[0] < bounds[1] and all(_within(v, limits) for v in values)):
        shown = ", ".join(map(_format_value, values))
        raise ValueError(f"limits {limits} must be two numbers, low first, that hold {shown}")


@dataclass(frozen=True)
class Float:
    """A real number between ``low`` and ``high``, sampled log-uniformly when ``log``.

    ``limits``, optional, are the ``(lowest, highest)`` values that mean anything at all, such
    as ``(0.0, 1.0)`` for a fraction, or ``(0.0, Open(1.0))`` for one that must stay below 1,
    or ``(0.0, math.inf)``: ``--space`` may move the range past ``low`` and ``high``, but a
    value outside the limits is refused in one line rather than tried trial by trial.
    """

    low: float
    high: float
    log: bool = False
    limits: Limits | None = None

    def __post_init__(self) -> None:
        _check_range(self, float)
        if self.limits is not None:
            _check_limits(self.limits, (self.low, self.high))

    def midpoint(self) -> float:
        if self.log:
            return math.sqrt(self.low * self.high)
        return (self.low + self.high) / 2

    def __contains__(self, value: Any) -> bool:
        return _number(value) and self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.low:g}..{self.high:g}" + (":log" if self.log else "")

    def to_json(self) -> dict[str, Any]:
        return {"type": "float", "low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class Int:
    """An integer between ``low`` and ``high`` inclusive, sampled log-uniformly when ``log``."""

    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        _check_range(self, int)

    def midpoint(self) -> int:
        if self.log:
            return round(math.sqrt(self.low * self.high))
        return (self.low + self.high) // 2

    def __contains__(self, value: Any) -> bool:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and (self.low <= value <= self.high)
        )

    def __str__(self) -> str:
        return f"{self.low}..{self.high}" + (":log" if self.log else "")

    def to_json(self) -> dict[str, Any]:
        return {"type": "int", "low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class Choice:
    """One of a few values: booleans, numbers or strings. ``limits``, for a choice of
    numbers, are what ``Float``'s are: the values that ``--space`` may choose instead."""

    values: tuple[Any, ...]
    limits: Limits | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        if not self.values:
            raise ValueError("a choice needs at least one value")
        for value in self.values:
            if not isinstance(value, bool | int | float | str):
                raise ValueError(f"choice values must be bool, int, float or str, not {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"choice values must be finite, not {value!r}")
        if self.limits is not None:
            if not all(map(_number, self.values)):
                raise ValueError(f"only a choice of numbers has limits, not {self}")
            _check_limits(self.limits, self.values)

    def midpoint(self) -> Any:
        return self.values[0]

    def __contains__(self, value: Any) -> bool:
        # False == 0 in Python; a flag is no number here.
        flag = isinstance(value, bool)
        return any(v == value and isinstance(v, bool) == flag for v in self.values)

    def __str__(self) -> str:
        return ",".join(_format_value(v) for v in self.values)

    def to_json(self) -> dict[str, Any]:
        return {"type": "choice", "values": list(self.values)}


Param = Float | Int | Choice


def _check_range(param: Float | Int, kind: type) -> None:
    name = type(param).__name__
    for bound in (param.low, param.high):
        if not _number(bound) or (kind is int and not isinstance(bound, int)):
            raise ValueError(f"{name} bounds must be finite {kind.__name__}s, not {bound!r}")
    if not param.low < param.high:
        raise ValueError(f"low must be below high, got {param.low}..{param.high}")
    if param.log and param.low <= 0:
        raise ValueError(f"a log range must start above 0, got {param.low}..{param.high}")


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def validate_space(space: object) -> None:
    """Raise ValueError unless ``space`` maps parameter names to ``Float``/``Int``/``Choice``."""
    if not isinstance(space, Mapping):
        raise ValueError(f"space must be a dict of parameters, not {type(space).__name__}")
    for key, param in space.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"parameter name {key!r} is not a Python identifier")
        if not isinstance(param, Float | Int | Choice):
            raise ValueError(f"parameter {key!r} must be Float, Int or Choice, not {param!r}")


# The grammar of --space and --set values.


def parse_scalar(text: str) -> bool | int | float | str:
    """Read one value as a bool, an int, a float or, failing those, a string."""
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_param(text: str, declared: Param, where: str) -> Param:
    """Read an override value (``a..b[:log]``, ``x,y,z`` or ``x``) for a declared parameter.

    The declared parameter decides whether a range is of floats or of ints.
    """
    text = text.strip()
    if ".." in text:
        if isinstance(declared, Choice):
            raise BadInput(f"{where} is a choice of {declared}; give values like {declared}")
        bounds, _, flag = text.partition(":")
        if flag not in ("", "log"):
            raise BadInput(f"{where}: unknown range flag ':{flag}'; the only flag is ':log'")
        low_text, _, high_text = bounds.partition("..")
        kind = int if isinstance(declared, Int) else float
        try:
            low, high = kind(low_text), kind(high_text)
        except ValueError:
            noun = "integers" if kind is int else "numbers"
            raise BadInput(f"{where}: range '{text}' needs two {noun}, like {declared}") from None
        try:
            param = (Int if kind is int else Float)(low, high, log=flag == "log")
        except ValueError as error:
            raise BadInput(f"{where}: {error}") from None
        for bound in (low, high):
            _check_value(bound, declared, where)
        return param
    values = [parse_scalar(part) for part in text.split(",") if part.strip()]
    if not values:
        raise BadInput(f"{where}: empty value; give a range like {declared} or a value")
    for value in values:
        _check_value(value, declared, where)
    return Choice(values)


def _check_value(value: Any, declared: Param, where: str) -> None:
    if isinstance(declared, Choice):
        kinds = {type(v) for v in declared.values}
        if type(value) not in kinds and not (_number(value) and kinds <= {int, float}):
            raise BadInput(f"{where}: {_format_value(value)!r} is not one of {declared}")
    elif not _number(value):
        raise BadInput(f"{where}: {value!r} is not a finite number")
    elif isinstance(declared, Int) and not isinstance(value, int):
        raise BadInput(f"{where}: {value!r} is not an integer")
    limits = getattr(declared, "limits", None)
    if limits is not None and not _within(value, limits):
        raise BadInput(
            f"{where}: {_format_value(value)} is outside {_limits_text(limits)}, "
            "the values it can take"
        )


# The whole search space of a study.

LR = Float(1e-4, 1.0, log=True)
# Warmup is a fraction of the steps. A few values, not a range: the number of warmup steps is
# baked into the compiled step, so each distinct value costs one kernel build.
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
