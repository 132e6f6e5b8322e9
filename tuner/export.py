"""A stored trial as something that trains outside tuner: MLX code, or a JSON config that
:func:`build_optimizer` turns back into the same optimizer.

A trial's compiled step takes the peak rate and every ``Float`` parameter as float32
``mx.array`` inputs, so that is how it rounded them. Python floats round otherwise: ``1 - beta``
is computed in float64 before MLX sees it, and ``end_factor * lr`` too. So the code writes those
numbers as ``mx.array(...)`` and :func:`build_optimizer` passes them as the trial did, and both
give the learning rates the trial recorded, and the updates of tuner's own build of its
optimizer, bit for bit.
"""

from __future__ import annotations

import ast
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import BadInput, TunerError, did_you_mean
from tuner.plugins import Registry, load_plugins
from tuner.query import Results, open_results
from tuner.results import Confirmation, Outcome
from tuner.space import Float, Param, Sample

if TYPE_CHECKING:
    import mlx.optimizers as optim

CONFIG_VERSION = 1
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


@dataclass(frozen=True)
class Export:
    """A trial's config, and what its reader should know about it (one line each)."""

    config: dict[str, Any]
    notes: list[str]


@dataclass(frozen=True)
class _Resolved:
    """A config checked against the loaded plugins."""

    optimizer: Any
    schedule: Any
    sample: Sample
    steps: int
    changes: list[str]


def export_trial(storage: str, study: str, number: int | None, registry: Registry) -> Export:
    """The config of trial ``number`` of ``study`` (the best one when None).

    Raises BadInput for a study or trial that is not there, a study with no complete trial to
    choose, and a trial still running. A pruned or failed trial is exported when asked for by
    number, with a note that says how it ended: its settings are as valid as any.
    """
    with open_results(storage) as results:
        confirmation = results.confirmation(study)
        trial = results.trial(study, _chosen(results, study, number, confirmation))
        settings = results.settings(study)
    confirmed = next((c for c in confirmation.configs if c.trial.number == trial.number), None)
    if trial.outcome is Outcome.RUNNING:
        raise BadInput(
            f"trial {trial.number} of study '{study}' is still running: "
            "export it when it has finished"
        )
    try:
        sample = Sample.from_params(trial.params)
    except ValueError as error:
        raise BadInput(f"trial {trial.number} of study '{study}': {error}") from None
    ran = trial.provenance.plugins
    config = {
        "version": CONFIG_VERSION,
        "optimizer": _part(registry, "optimizer", sample.optimizer, sample.optimizer_params, ran),
        "schedule": _part(registry, "schedule", sample.schedule, sample.schedule_params, ran),
        "lr": sample.lr,
        "warmup": sample.warmup,
        "steps": settings["steps"],
        "source": {
            "study": study,
            "trial": trial.number,
            "outcome": str(trial.outcome),
            "metric": settings["metric"],
            # JSON has no NaN.
            "value": trial.value if trial.value is None or math.isfinite(trial.value) else None,
        },
    }
    if confirmed is not None:
        config["source"]["confirmed"] = {
            "mean": confirmed.mean,
            "std": confirmed.std,
            "runs": len(confirmed.values),
            "test": confirmed.test,
        }
    notes = _resolve(config, registry).changes
    if number is None and confirmed is not None:
        notes.insert(
            0,
            f"trial {trial.number} is the confirmed winner: its settings trained again with "
            f"{len(confirmed.values)} fresh seeds gave the best mean {settings['metric']} "
            f"({confirmed.mean:.6g}); give --trial N for another",
        )
    if trial.outcome is not Outcome.COMPLETE:
        how = trial.reason or trial.outcome
        how = how if how.startswith(trial.outcome) else f"{trial.outcome}: {how}"
        notes.insert(0, f"trial {trial.number} did not complete ({how}); exported as asked")
    return Export(config, notes)


def _chosen(results: Results, study: str, number: int | None, confirmation: Confirmation) -> int:
    """The number of the trial to export: ``number``, checked; or the trial whose
    configuration won the confirmation runs, when the study has them; or the study's best
    complete trial, which is Optuna's ``study.best_trial``."""
    counts = results.counts(study)
    if not counts.total:
        raise BadInput(f"study '{study}' has no trials yet: run tuner search --study {study}")
    if number is not None:
        if not 0 <= number < counts.total:
            raise BadInput(
                f"study '{study}' has no trial {number}; its trials are 0 to {counts.total - 1}"
            )
        return number
    if confirmation.winner is not None:
        return confirmation.winner.trial.number
    if counts.complete:
        (best,) = results.trials(study, state="complete", sort="value", limit=1)
        return best.number
    # Optuna's states, which this message has always named: a diverged trial is pruned.
    states = sorted({o.optuna_state.lower() for o in Outcome if getattr(counts, o)})
    hint = (
        "export one with --trial N" if counts.running < counts.total else "wait until one finishes"
    )
    raise BadInput(f"study '{study}' has no complete trial (only {', '.join(states)}); {hint}")


def _plugin(name: str | None, version: str | None) -> str:
    return f"plugin '{name}'" + (f" {version}" if version else "")


def _part(
    registry: Registry, kind: str, name: str, params: dict[str, Any], ran: Mapping[str, Any]
) -> dict[str, Any]:
    """One of the optimizer and the schedule, with the plugin that registers it and the version
    of that plugin the study ran (``ran``), which the code printed now may not be."""
    # Refused here, with the fix, when no plugin loaded registers it.
    _spec(registry, kind, name, None)
    owner = registry.plugin_of(kind, name)
    version = ran.get(owner.name, owner.version)
    return {"name": name, "params": params, "plugin": owner.name, "plugin_version": version}


def _spec(registry: Registry, kind: str, name: str, part: Mapping[str, Any] | None) -> Any:
    if name in registry.specs(kind):
        return registry.specs(kind)[name]
    made_by = f" ({_plugin(part['plugin'], part.get('plugin_version'))} made it)" if part else ""
    raise BadInput(
        f"unknown {kind} '{name}'{made_by}{did_you_mean(name, registry.specs(kind))}: "
        "install its plugin, or load it with --plugin"
    )


def _resolve(config: Mapping[str, Any], registry: Registry, steps: int | None = None) -> _Resolved:
    """The specs and sample of ``config``, or BadInput saying what is wrong with it; what
    changed since the export (another plugin or version) is listed, not refused."""
    if not isinstance(config, Mapping) or config.get("version") != CONFIG_VERSION:
        found = config.get("version") if isinstance(config, Mapping) else None
        raise BadInput(f"not a tuner export config of version {CONFIG_VERSION} (version {found})")
    try:
        parts = {kind: config[kind] for kind in ("optimizer", "schedule")}
        sample = Sample(
            optimizer=parts["optimizer"]["name"],
            optimizer_params=dict(parts["optimizer"]["params"]),
            schedule=parts["schedule"]["name"],
            schedule_params=dict(parts["schedule"]["params"]),
            lr=config["lr"],
            warmup=config["warmup"],
        )
        steps = config["steps"] if steps is None else steps
    except (KeyError, TypeError) as error:
        raise BadInput(f"a tuner export config needs {error}") from None
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise BadInput(f"steps must be a whole number of at least 1, not {steps!r}")
    if not all(type(x) in (int, float) for x in (sample.lr, sample.warmup)):
        raise BadInput(f"lr and warmup must be numbers, not {sample.lr!r} and {sample.warmup!r}")
    # The rule of tuner.lr.make_schedule, checked before any code is written with it.
    if not 0 <= round(sample.warmup * steps) < steps:
        raise BadInput(f"a warmup of {sample.warmup} of {steps} steps leaves none to the schedule")
    specs, changes = {}, []
    for kind, part in parts.items():
        spec = specs[kind] = _spec(registry, kind, part["name"], part)
        given, wanted = sorted(part["params"]), sorted(spec.space)
        if given != wanted:
            raise BadInput(
                f"{kind} '{spec.name}' takes the parameters {wanted}, but the config gives {given}"
            )
        owner = registry.plugin_of(kind, spec.name)
        then = (part.get("plugin"), part.get("plugin_version"))
        if (owner.name, owner.version) != then:
            changes.append(
                f"{kind} '{spec.name}' comes from {_plugin(owner.name, owner.version)} here, "
                f"but the trial ran {_plugin(*then)}"
            )
    return _Resolved(specs["optimizer"], specs["schedule"], sample, steps, changes)


def build_optimizer(
    config: Mapping[str, Any], steps: int | None = None, *, plugins: Sequence[str | object] = ()
) -> optim.Optimizer:
    """The ``mlx.optimizers.Optimizer``, on its schedule, that ``config`` describes.

    ``config`` is what ``tuner export --format json`` prints. ``steps`` is the length of the
    run the schedule spans, the trial's by default; the warmup stays the same fraction of it.
    The optimizer is built the way the trial built it, from the plugins that registered its
    optimizer and schedule, so they must be installed or named in ``plugins`` (files or
    modules, as ``--plugin`` takes). Another version of a plugin than the trial's is warned
    about, since its optimizer may differ.
    """
    # tuner.graphs imports MLX, which only building an optimizer needs: not `import tuner`.
    from tuner.graphs import TrialPlan

    resolved = _resolve(config, load_plugins(plugins), steps)
    for change in resolved.changes:
        warnings.warn(change, stacklevel=2)
    plan = TrialPlan.of(resolved.optimizer, resolved.schedule, resolved.sample, resolved.steps)
    return plan.build_optimizer(plan.hp)


def python_code(config: Mapping[str, Any], registry: Registry) -> str:
    """A runnable snippet that builds the optimizer of ``config`` as ``optimizer``.

    It is plain ``mlx.optimizers`` code when the optimizer's and the schedule's plugins give
    their ``code``; otherwise it calls :func:`build_optimizer` with the config.
    """
    resolved = _resolve(config, registry)
    optimizer, schedule, sample = resolved.optimizer, resolved.schedule, resolved.sample
    warmup = round(sample.warmup * resolved.steps)
    about = _about(config, resolved.steps, warmup)
    if optimizer.code is None or schedule.code is None:
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
    return [
        f"# Trial {source.get('trial')} of study {source.get('study')} ({result}): "
        f"{config['optimizer']['name']}",
        f"# on the {config['schedule']['name']} schedule over {steps} steps{warmed}.",
    ]


def _through_tuner(
    config: Mapping[str, Any], registry: Registry, about: list[str], resolved: _Resolved
) -> str:
    parts = {"optimizer": resolved.optimizer, "schedule": resolved.schedule}
    missing = [f"{kind} '{spec.name}'" for kind, spec in parts.items() if spec.code is None]
    # A plugin loaded from a file is found again only by its path; installed ones by name.
    sources = {registry.plugin_of(kind, spec.name).source for kind, spec in parts.items()}
    files = sorted(str(Path(s).resolve()) for s in sources if s.endswith(".py"))
    plugins = f", plugins={files!r}" if files else ""
    return "\n".join(
        [
            "import tuner",
            "",
            *about,
            f"# The plugin of {' and '.join(missing)} gives no MLX code: tuner builds it.",
            f"config = {_literal(dict(config), '', len('config = '))}",
            _statement(
                "optimizer", f"tuner.build_optimizer(config, steps={resolved.steps}{plugins})"
            ),
            "",
        ]
    )


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
