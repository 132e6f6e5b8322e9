"""The parameter types that plugins declare (``Float``, ``Int``, ``Choice``, with the limits a
value must keep), as a plugin's spec declares them and as a study stores them.

It knows nothing of MLX or Optuna: a parameter is a name's range or values. The ``--space`` and
``--set`` values that override them are read by :mod:`tuner.space_grammar`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def finite_number(value: Any) -> bool:
    """Whether ``value`` is a finite int or float; a flag is no number here."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Open:
    """A limit that values may come near but not reach: ``limits=(0.0, Open(1.0))`` for a
    factor that must stay below 1, as Adam's betas must."""

    value: float


Limits = tuple[float | Open, float | Open]


def within(value: float, limits: Limits) -> bool:
    """Whether ``value`` lies within ``limits``, an open limit itself excluded."""
    low, high = limits
    above = value > low.value if isinstance(low, Open) else value >= low
    below = value < high.value if isinstance(high, Open) else value <= high
    return above and below


def _check_limits(limits: Limits, values: Sequence[Any]) -> None:
    """Raise ValueError unless ``limits`` are numbers, infinite ones open, that hold
    ``values``."""
    bounds = [limit.value if isinstance(limit, Open) else limit for limit in limits]
    numbers = all(
        isinstance(b, int | float) and not isinstance(b, bool) and not math.isnan(b) for b in bounds
    )
    if not (numbers and bounds[0] < bounds[1] and all(within(v, limits) for v in values)):
        shown = ", ".join(map(format_value, values))
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
        return finite_number(value) and self.low <= value <= self.high

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
            if not all(map(finite_number, self.values)):
                raise ValueError(f"only a choice of numbers has limits, not {self}")
            _check_limits(self.limits, self.values)

    def midpoint(self) -> Any:
        return self.values[0]

    def __contains__(self, value: Any) -> bool:
        # False == 0 in Python; a flag is no number here.
        flag = isinstance(value, bool)
        return any(v == value and isinstance(v, bool) == flag for v in self.values)

    def __str__(self) -> str:
        return ",".join(format_value(v) for v in self.values)

    def to_json(self) -> dict[str, Any]:
        return {"type": "choice", "values": list(self.values)}


Param = Float | Int | Choice


def _check_range(param: Float | Int, kind: type) -> None:
    name = type(param).__name__
    for bound in (param.low, param.high):
        if not finite_number(bound) or (kind is int and not isinstance(bound, int)):
            raise ValueError(f"{name} bounds must be finite {kind.__name__}s, not {bound!r}")
    if not param.low < param.high:
        raise ValueError(f"low must be below high, got {param.low}..{param.high}")
    if param.log and param.low <= 0:
        raise ValueError(f"a log range must start above 0, got {param.low}..{param.high}")


def format_value(value: Any) -> str:
    """``value`` as a choice or an error shows it: ``true``, ``0.001``, ``adam``."""
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


def param_from_json(data: Mapping[str, Any]) -> Param:
    """The parameter whose ``to_json`` gave ``data``."""
    if data["type"] == "choice":
        return Choice(tuple(data["values"]))
    kind = Float if data["type"] == "float" else Int
    return kind(data["low"], data["high"], log=data["log"])
