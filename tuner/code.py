"""A trial's config as Python code that builds its optimizer: plain ``mlx.optimizers`` code where
the plugins give theirs, a call of ``tuner.build_optimizer`` otherwise.

The numbers are written as float32 ``mx.array`` values, as the trial computed with them (see
:mod:`tuner.export`), so that the code gives the trial's learning rates and updates bit for bit.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuner.errors import TunerError
from tuner.export import EVAL_WEIGHTS, EVAL_WEIGHTS_CALL, Resolved, resolve
from tuner.params import Float, Param
from tuner.plugins import Registry

LINE_LENGTH = 100


class Source:
    """Python source standing for a value in printed code: its ``repr`` is the source.

    It is what a plugin's ``code`` hook receives for the schedule, the peak rate and each
    ``Float`` parameter, which must stay arrays in the code (see ``tuner_register_optimizers``).
    """

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


def python_code(config: Mapping[str, Any], registry: Registry) -> str:
    """A runnable snippet that builds the optimizer of ``config`` as ``optimizer``.

    It is plain ``mlx.optimizers`` code when the optimizer's and the schedule's plugins give
    their ``code``; otherwise it calls :func:`build_optimizer` with the config.
    """
    resolved = resolve(config, registry)
    optimizer, schedule, sample = resolved.optimizer, resolved.schedule, resolved.sample
    warmup = round(sample.warmup * resolved.steps)
    about = _about(config, resolved.steps, warmup)
    # The weights to evaluate at come from the plugin, which the code then needs.
    if optimizer.code is None or schedule.code is None or optimizer.eval_weights is not None:
        return _through_tuner(config, registry, about, resolved)
    schedule_code = _expression(
        registry,
        "schedule",
        schedule,
        Source("lr"),
        resolved.steps - warmup,
        **_sources(schedule.space, sample.schedule_params),
    )
    lines = [
        "import mlx.core as mx",
        "import mlx.optimizers as optim",
        "",
        *about,
        "# Its numbers are float32 arrays, as in the trial: Python floats would round otherwise.",
        f"lr = {_array(sample.lr)}",
    ]
    if warmup:
        # As tuner.lr.make_schedule puts a warmup in front of a schedule.
        lines += [
            _statement("after_warmup", schedule_code),
            _statement(
                "schedule",
                f"optim.join_schedules([optim.linear_schedule(0.0, lr, {warmup}), after_warmup], "
                f"[{warmup}])",
            ),
        ]
    else:
        lines.append(_statement("schedule", schedule_code))
    optimizer_code = _expression(
        registry,
        "optimizer",
        optimizer,
        Source("schedule"),
        **_sources(optimizer.space, sample.optimizer_params),
    )
    lines.append(_statement("optimizer", optimizer_code))
    return "\n".join(lines) + "\n"


def _about(config: Mapping[str, Any], steps: int, warmup: int) -> list[str]:
    source = config.get("source", {})
    value = source.get("value")
    result = f"{source.get('metric')} {value:.6g}" if value is not None else source.get("outcome")
    warmed = f", the first {warmup} of them a linear warmup" if warmup else ""
    about = [
        f"# Trial {source.get('trial')} of study {source.get('study')} ({result}): "
        f"{config['optimizer']['name']}",
        f"# on the {config['schedule']['name']} schedule over {steps} steps{warmed}.",
    ]
    task = config.get("task")
    if task is not None and task["name"] is not None:
        params = "".join(f", {key}={value!r}" for key, value in task["params"].items())
        about.append(
            f"# Found with batches of {config['batch_size']} rows on task {task['name']}"
            f"{' (its model given' + params[1:] + ')' if params else ''}."
        )
    if source.get("population") is not None:
        about.append(
            f"# It trained together with the other trials of population {source['population']}."
        )
    return about


def _through_tuner(
    config: Mapping[str, Any], registry: Registry, about: list[str], resolved: Resolved
) -> str:
    parts = {"optimizer": resolved.optimizer, "schedule": resolved.schedule}
    missing = [f"{kind} '{spec.name}'" for kind, spec in parts.items() if spec.code is None]
    # A plugin loaded from a file is found again only by its path; installed ones by name.
    sources = {registry.plugin_of(kind, spec.name).source for kind, spec in parts.items()}
    files = sorted(str(Path(s).resolve()) for s in sources if s.endswith(".py"))
    plugins = f", plugins={files!r}" if files else ""
    lines = ["import tuner", "", *about]
    if missing:
        lines.append(f"# The plugin of {' and '.join(missing)} gives no MLX code: tuner builds it.")
    lines += [
        f"config = {_literal(dict(config), '', len('config = '))}",
        _statement("optimizer", f"tuner.build_optimizer(config, steps={resolved.steps}{plugins})"),
    ]
    if resolved.optimizer.eval_weights is not None:
        lines += [
            f"# {EVAL_WEIGHTS.format(resolved.optimizer.name)}:",
            f"# {EVAL_WEIGHTS_CALL.format(plugins)}",
        ]
    return "\n".join([*lines, ""])


def _literal(value: Any, indent: str, used: int) -> str:
    """``value`` as Python source, after ``used`` characters of its line: a dict too long for
    the line is split one item to a line."""
    text = repr(value)
    if not isinstance(value, dict) or used + len(text) <= LINE_LENGTH:
        return text
    inner = indent + "    "
    items = [
        f"{inner}{key!r}: {_literal(item, inner, len(inner) + len(repr(key)) + 3)},"
        for key, item in value.items()
    ]
    return "\n".join(["{", *items, f"{indent}}}"])


def _array(value: Any) -> str:
    return f"mx.array({float(value)!r})"


def _sources(space: Mapping[str, Param], params: Mapping[str, Any]) -> dict[str, Any]:
    # As the trial passes them: Float parameters as float32 arrays, the rest as they are.
    return {
        name: Source(_array(value)) if isinstance(space[name], Float) else value
        for name, value in params.items()
    }


def _expression(registry: Registry, kind: str, spec: Any, *args: Any, **params: Any) -> str:
    """What the ``code`` hook of ``spec`` returns, checked to be one Python expression."""
    plugin = registry.plugin_of(kind, spec.name).name
    try:
        expression = spec.code(*args, **params)
        ast.parse(expression, mode="eval")
    except Exception as error:
        raise TunerError(
            f"plugin '{plugin}': the code of {kind} '{spec.name}' failed "
            f"({type(error).__name__}: {error}); export it with --format json"
        ) from None
    return expression


def _statement(name: str, expression: str) -> str:
    """``name = expression``, split as a formatter would when it is too long: a call's
    arguments one to a line, or a lambda's body on a line of its own."""
    line = f"{name} = {expression}"
    if len(line) <= LINE_LENGTH:
        return line
    node = ast.parse(expression, mode="eval").body
    if isinstance(node, ast.Call):
        arguments = [ast.get_source_segment(expression, a) for a in [*node.args, *node.keywords]]
        function = ast.get_source_segment(expression, node.func)
        return "\n".join([f"{name} = {function}(", *(f"    {a}," for a in arguments), ")"])
    if isinstance(node, ast.Lambda) and "\n" not in expression:
        head = expression[: node.body.col_offset].rstrip()
        return f"{name} = {head} (\n    {ast.get_source_segment(expression, node.body)}\n)"
    return line
