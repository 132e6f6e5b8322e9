"""A task given to :func:`tuner.search` by its parts, as a notebook holds them: data as numpy
arrays (or lists, or anything numpy takes) and metrics as plain functions. They become the
:class:`~tuner.specs.Task` a search trains, or are refused in one line before anything is written.

Imported once the BLAS is chosen: it loads MLX.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import mlx.core as mx
import numpy as np

from tuner.errors import BadInput
from tuner.specs import Metric, Task
from tuner.trial import failure

# The kinds of numpy's dtypes that become arrays: booleans, signed and unsigned integers, floats.
_NUMBERS = "biuf"


def inline_task(
    model: Callable[[], Any],
    train: Any,
    valid: Any,
    loss: Callable[[Any, Any, Any], Any],
    metrics: Mapping[str, Metric | Callable[..., Any]] | Sequence[Any] | None,
    test: Any,
) -> Task:
    """The task of these parts, its data as MLX arrays and its metrics as :class:`Metric`;
    raise BadInput on what cannot be either. Whether they run is :mod:`tuner.checks`'s to try."""
    for name, part in (("model", model), ("loss", loss)):
        if not callable(part):
            raise BadInput(f"{name} must be a function, got {_kind(part)}")
    held_out = None if test is None else as_arrays("test", test)
    return Task(
        model=model,
        train=as_arrays("train", train),
        valid=as_arrays("valid", valid),
        loss=loss,
        metrics=as_metrics(metrics),
        test=None if held_out is None else lambda: held_out,
    )


def as_arrays(name: str, pair: Any) -> tuple[mx.array, mx.array]:
    """``pair``, an ``(x, y)`` of the same number of rows, as MLX arrays.

    Floats become float32, what MLX trains in (numpy's are float64, which MLX runs on its
    CPU alone). Whole numbers and booleans keep their type: class labels and token ids must
    stay integers for ``cross_entropy`` and ``nn.Embedding``. MLX arrays are kept as they are.
    """
    if hasattr(pair, "shape"):
        raise BadInput(f"{name} is one array: give a pair (x, y), the rows and their targets")
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise BadInput(f"{name} must be a pair (x, y) of arrays, got {_kind(pair)}")
    x, y = (_array(f"{name} {part}", value) for part, value in zip("xy", pair, strict=True))
    if x.shape[0] != y.shape[0]:
        raise BadInput(
            f"{name} has {x.shape[0]} rows of x and {y.shape[0]} of y: give one y for each row"
        )
    if x.shape[0] == 0:
        raise BadInput(f"{name} has no rows")
    return x, y


def _array(name: str, value: Any) -> mx.array:
    if isinstance(value, mx.array):
        array = value
    else:
        try:
            # numpy first: it takes more than mx.array does (pandas, nested lists, buffers).
            numbers = np.asarray(value)
        except Exception as error:
            raise BadInput(f"{name} cannot be an array: {failure(error)}") from None
        if numbers.dtype.kind not in _NUMBERS:
            raise BadInput(f"{name} holds {_what(numbers)}, not numbers: give numbers")
        if numbers.dtype.kind == "f":
            numbers = numbers.astype(np.float32)
        array = mx.array(numbers)
    if array.ndim == 0:
        raise BadInput(f"{name} is a single number, not an array with a row for each example")
    return array


def as_metrics(
    given: Mapping[str, Metric | Callable[..., Any]] | Sequence[Any] | None,
) -> dict[str, Metric]:
    """``metrics`` as a task holds them: a mapping of names to :class:`Metric` or plain
    functions, or a list of either, each named by its function's ``__name__``. A plain function
    is maximized: wrap it as ``Metric(fn, "minimize")`` to minimize it."""
    if given is None:
        return {}
    if isinstance(given, Mapping):
        named = list(given.items())
    elif isinstance(given, Sequence) and not isinstance(given, str):
        named = [(_name_of(metric), metric) for metric in given]
    else:
        raise BadInput(
            f"metrics must be a mapping of names to functions, or a list of functions, got "
            f"{_kind(given)}"
        )
    metrics: dict[str, Metric] = {}
    for name, metric in named:
        if not isinstance(name, str) or not name:
            raise BadInput(f"metrics are named by strings, got {name!r}")
        if name in metrics:
            raise BadInput(f"two metrics are named '{name}': give them in a mapping of names")
        metrics[name] = _metric(name, metric)
    return metrics


def _metric(name: str, metric: Any) -> Metric:
    if isinstance(metric, Metric):
        return metric
    if not callable(metric):
        raise BadInput(
            f"metric '{name}' is {_kind(metric)}: give a function of (model, x, y) that "
            "returns a scalar, or a tuner.Metric"
        )
    return Metric(metric)


def _name_of(metric: Any) -> str:
    fn = metric.fn if isinstance(metric, Metric) else metric
    # A lambda's is "<lambda>"; a functools.partial has none.
    name = getattr(fn, "__name__", type(fn).__name__)
    if not name.isidentifier():
        raise BadInput(f"a metric {name} has no name of its own: give metrics={{'name': fn}}")
    return name


def _what(numbers: np.ndarray) -> str:
    kinds = {"O": "Python objects", "U": "strings", "S": "bytes"}
    return kinds.get(numbers.dtype.kind, f"{numbers.dtype} values")


def _kind(value: object) -> str:
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
