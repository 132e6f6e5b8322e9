"""How a search space is written: the grammar of one parameter's value in ``--space`` and
``--set`` (``a..b[:log]``, ``x,y,z`` or ``x``), read as a parameter; a space given as a mapping,
as a search file's ``[space]`` and ``tuner.search(space=...)`` give it, read as the ``--space``
expressions it stands for; and a study's stored space written back as one.

Only a mapping's shape is checked here: its expressions are checked against the registry where
``--space``'s are (:func:`tuner.space.build_space`), so that a parameter known to ``--space``
is known to the mapping, whatever the plugins declare.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tuner.errors import BadInput, did_you_mean
from tuner.params import (
    Choice,
    Float,
    Int,
    Limits,
    Open,
    Param,
    finite_number,
    format_value,
    within,
)


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
    twice = next((v for i, v in enumerate(values) if v in values[:i]), None)
    if twice is not None:
        raise BadInput(f"{where}: {format_value(twice)} is given twice; give each value once")
    return Choice(values)


def _check_value(value: Any, declared: Param, where: str) -> None:
    if isinstance(declared, Choice):
        kinds = {type(v) for v in declared.values}
        if type(value) not in kinds and not (finite_number(value) and kinds <= {int, float}):
            raise BadInput(f"{where}: {format_value(value)!r} is not one of {declared}")
        # A choice of whole numbers (a width, a batch size, a count) takes no fractions.
        if kinds == {int} and not isinstance(value, int):
            raise BadInput(f"{where}: {format_value(value)} is not a whole number")
    elif not finite_number(value):
        raise BadInput(f"{where}: {value!r} is not a finite number")
    elif isinstance(declared, Int) and not isinstance(value, int):
        raise BadInput(f"{where}: {value!r} is not an integer")
    limits = getattr(declared, "limits", None)
    if limits is not None and not within(value, limits):
        raise BadInput(
            f"{where}: {format_value(value)} is outside {_limits_text(limits)}, "
            "the values it can take"
        )


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


# A space given as a mapping.


class Wrong(Exception):
    """A value that the schema refuses: why, and where below the key that holds it."""

    def __init__(self, reason: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path


def kind_of(value: Any) -> str:
    """A value as an error names it: ``a string ("60")``, ``true``, ``an array``."""
    if isinstance(value, bool):
        return scalar_text(value)
    kinds = [(int, "an integer"), (float, "a number"), (str, "a string")]
    for kind, name in kinds:
        if isinstance(value, kind):
            return f"{name} ({json.dumps(value) if kind is str else scalar_text(value)})"
    kinds = [(list, "an array"), (Mapping, "a table")]
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


RANGE_KEYS = ("low", "high", "log")


def space_entries(
    space: Any, root: tuple[str, ...] = ("space",), prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, str, tuple]]:
    """Each parameter of a space given as a mapping: its ``--space`` name, the expression it
    stands for, and its path in the mapping below ``root``. A table whose keys are not those
    of a range groups parameters under a prefix (``[space.adam]`` holds ``adam.b1``)."""
    if not isinstance(space, Mapping):
        raise Wrong(f"must be a table of parameters, not {kind_of(space)}", (*root, *prefix))
    for key, value in space.items():
        here = (*prefix, str(key))
        if isinstance(value, Mapping) and not _is_range(value):
            yield from space_entries(value, root, here)
            continue
        name = ".".join(here)
        yield name, f"{name}={_value_text(value, (*root, *here))}", (*root, *here)


def _is_range(table: Mapping[str, Any]) -> bool:
    return any(_int_or_float(table.get(key)) for key in ("low", "high"))


def _int_or_float(value: Any) -> bool:
    return is_int(value) or isinstance(value, float)


def _value_text(value: Any, path: tuple[str, ...]) -> str:
    """The ``--space`` text of one parameter's value: a string as it stands, a number or a
    flag as one value, an array as a choice, a table or a tuple ``(low, high[, "log"])`` as a
    range, or a ``Float``, ``Int`` or ``Choice``."""
    if isinstance(value, Float | Int):
        value = {"low": value.low, "high": value.high, "log": value.log}
    elif isinstance(value, Choice):
        value = list(value.values)
    if isinstance(value, tuple):
        if len(value) not in (2, 3) or value[2:] not in ((), ("log",)):
            raise Wrong(
                'is a tuple, which stands for a range: (low, high) or (low, high, "log")', path
            )
        value = {"low": value[0], "high": value[1], "log": len(value) == 3}
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return scalar_text(value)
    if isinstance(value, list):
        if not value:
            raise Wrong("is an empty array: give at least one value", path)
        for item in value:
            if not isinstance(item, bool | int | float | str) or "," in str(item):
                raise Wrong(f"holds {kind_of(item)}: give numbers, true or false, or names", path)
        return ",".join(map(scalar_text, value))
    if isinstance(value, Mapping):
        unknown = [key for key in value if key not in RANGE_KEYS]
        if unknown:
            hint = did_you_mean(unknown[0], RANGE_KEYS)
            raise Wrong(f"is a range: it takes low, high and log, not '{unknown[0]}'{hint}", path)
        if not (_int_or_float(value.get("low")) and _int_or_float(value.get("high"))):
            raise Wrong("is a range: give low and high, both numbers", path)
        if not isinstance(value.get("log", False), bool):
            raise Wrong(f"log must be true or false, not {kind_of(value['log'])}", path)
        low, high = scalar_text(value["low"]), scalar_text(value["high"])
        return f"{low}..{high}" + (":log" if value.get("log") else "")
    raise Wrong(
        f'must be a range ("1e-4..1e-1:log" or {{low = 1e-4, high = 0.1, log = true}}), a '
        f"value, or an array of values to choose from, not {kind_of(value)}",
        path,
    )


def scalar_text(value: bool | int | float | str) -> str:
    # repr, not :g, so that a float reads back exactly as it was.
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


def space_expressions(space: Mapping[str, Any] | Sequence[str]) -> list[str]:
    """The ``--space`` expressions of a space given as a mapping, as a search file's
    ``[space]`` or with tuples for ranges (``{"lr": (1e-4, 1e-1, "log")}``), or as those
    expressions already; raise :class:`BadInput` naming a wrong entry."""
    if not isinstance(space, Mapping):
        return [space] if isinstance(space, str) else list(space)
    try:
        return [expression for _, expression, _ in space_entries(space)]
    except Wrong as error:
        raise BadInput(f"{'.'.join(error.path)} {error.reason}") from None


def stored_space(data: Mapping[str, Any], owner: str = "") -> Iterator[tuple[str, Any]]:
    """Each parameter of a study's stored space (``SearchSpace.to_json``), by its ``--space``
    name, as a search file writes it: a range as ``--space`` does, one value alone, values to
    choose from as an array. A parameter's name is its owner's, the table it sits in, and
    its own: ``lr``; ``adam.b1`` in ``{"optimizers": {"adam": {"b1": ...}}}``."""
    for key, value in data.items():
        if isinstance(value.get("type"), str):
            name = f"{owner}.{key}" if owner else key
            if value["type"] == "choice":
                values = value["values"]
                yield name, values[0] if len(values) == 1 else list(values)
            else:
                low, high = scalar_text(value["low"]), scalar_text(value["high"])
                yield name, f"{low}..{high}" + (":log" if value["log"] else "")
        else:
            yield from stored_space(value, key)
