"""A stored trial as something that trains outside tuner: a JSON config that
:func:`build_optimizer` turns back into the same optimizer (:mod:`tuner.code` writes it as MLX
code).

A trial's compiled step takes the peak rate and every ``Float`` parameter as float32
``mx.array`` inputs, so that is how it rounded them. Python floats round otherwise: ``1 - beta``
is computed in float64 before MLX sees it, and ``end_factor * lr`` too. So :mod:`tuner.code`
writes those numbers as ``mx.array(...)`` and :func:`build_optimizer` passes them as the trial
did, and both give the learning rates the trial recorded, and the updates of tuner's own build
of its optimizer, bit for bit.
"""

from __future__ import annotations

import math
import shlex
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuner.errors import BadInput, did_you_mean
from tuner.plugins import Registry, load_plugins
from tuner.query import Results, open_results
from tuner.results import Confirmation, Outcome
from tuner.space import Sample

if TYPE_CHECKING:
    import mlx.optimizers as optim

CONFIG_VERSION = 1
# What an export says of an optimizer whose plugin gives the weights to evaluate at.
EVAL_WEIGHTS = "{} trains the model at other weights than those to evaluate and save it with"
EVAL_WEIGHTS_CALL = (
    "once trained, model.update(tuner.eval_weights(config, optimizer, "
    "model.trainable_parameters(){}))"
)


@dataclass(frozen=True)
class Export:
    """A trial's config, and what its reader should know about it (one line each)."""

    config: dict[str, Any]
    notes: list[str]


@dataclass(frozen=True)
class Resolved:
    """A config checked against the loaded plugins."""

    optimizer: Any
    schedule: Any
    sample: Sample
    steps: int
    changes: list[str]


def export_trial(
    storage: str, study: str, number: int | None, registry: Registry, steps: int | None = None
) -> Export:
    """The config of trial ``number`` of ``study`` (the best one when None), its schedule over
    ``steps`` (the trial's own by default), its warmup the same fraction of them.

    Raises BadInput for a study or trial that is not there, a study with no complete trial to
    choose, and a trial still running. A pruned or failed trial is exported when asked for by
    number, with a note that says how it ended: its settings are as valid as any.
    """
    if steps is not None and steps < 1:
        raise BadInput(f"steps must be at least 1, got {steps}")
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
        sample = Sample.from_params(trial.params, settings.get("task", ""))
    except ValueError as error:
        raise BadInput(f"trial {trial.number} of study '{study}': {error}") from None
    ran = trial.provenance.plugins
    config = {
        "version": CONFIG_VERSION,
        "optimizer": _part(registry, "optimizer", sample.optimizer, sample.optimizer_params, ran),
        "schedule": _part(registry, "schedule", sample.schedule, sample.schedule_params, ran),
        "lr": sample.lr,
        "warmup": sample.warmup,
        "steps": steps or settings["steps"],
        # What the optimizer's numbers were found with: the batch and the model they train.
        "batch_size": sample.batch_size or settings.get("batch_size"),
        "task": {"name": settings.get("task"), "params": sample.task_params},
        "source": {
            "study": study,
            "trial": trial.number,
            "steps": settings["steps"],
            "outcome": str(trial.outcome),
            "metric": settings["metric"],
            # JSON has no NaN.
            "value": trial.value if trial.value is None or math.isfinite(trial.value) else None,
            "population": trial.population,
        },
    }
    if confirmed is not None:
        config["source"]["confirmed"] = {
            "mean": confirmed.mean,
            "std": confirmed.std,
            "runs": len(confirmed.values),
            "test": confirmed.test,
        }
    resolved = resolve(config, registry)
    notes = resolved.changes
    if config["steps"] != settings["steps"]:
        notes.append(_stretched(sample.warmup, settings["steps"], config["steps"]))
    if resolved.optimizer.eval_weights is not None:
        notes.append(
            f"{EVAL_WEIGHTS.format(resolved.optimizer.name)}: {EVAL_WEIGHTS_CALL.format('')}"
        )
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


def _stretched(warmup: float, trained: int, steps: int) -> str:
    """What an export over other steps than the trial's says of its schedule."""
    said = f"the schedule runs over {steps} steps, not the trial's {trained}"
    if not warmup:
        return f"{said}; it has no warmup"
    return (
        f"{said}; its warmup stays a fraction, {warmup:g} of them: "
        f"{round(warmup * steps)} steps, not {round(warmup * trained)}"
    )


def _chosen(results: Results, study: str, number: int | None, confirmation: Confirmation) -> int:
    """The number of the trial to export: ``number``, checked; or the trial whose
    configuration won the confirmation runs, when the study has them; or the study's best
    complete trial, which is Optuna's ``study.best_trial``."""
    counts = results.counts(study)
    if not counts.total:
        raise BadInput(
            f"study '{study}' has no trials yet: run tuner search --study {shlex.quote(study)}"
        )
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


def resolve(config: Mapping[str, Any], registry: Registry, steps: int | None = None) -> Resolved:
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
    return Resolved(specs["optimizer"], specs["schedule"], sample, steps, changes)


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
    # tuner.lr imports MLX, which only building an optimizer needs: not `import tuner`.
    from tuner.lr import as_float32, float32_schedule

    resolved = resolve(config, load_plugins(plugins), steps)
    for change in resolved.changes:
        warnings.warn(change, stacklevel=2)
    sample, steps = resolved.sample, resolved.steps
    schedule = float32_schedule(
        resolved.schedule,
        sample.lr,
        steps,
        round(sample.warmup * steps),
        sample.schedule_params,
    )
    optimizer = resolved.optimizer
    return optimizer.build(schedule, **as_float32(optimizer.space, sample.optimizer_params))


def eval_weights(
    config: Mapping[str, Any],
    optimizer: optim.Optimizer,
    parameters: Any,
    *,
    plugins: Sequence[str | object] = (),
) -> Any:
    """The weights to evaluate and save a model with, once ``optimizer``, which
    :func:`build_optimizer` built from ``config``, has trained its ``parameters``
    (``model.trainable_parameters()``); ``model.update`` takes them.

    They are what the optimizer's plugin gives as its ``eval_weights`` (schedule-free methods
    are evaluated at an average of their iterates, not at the weights they train), as a trial
    measured them; for an optimizer whose plugin gives none, ``parameters`` themselves.
    """
    spec = resolve(config, load_plugins(plugins)).optimizer
    if spec.eval_weights is None:
        return parameters
    return spec.eval_weights(optimizer.state, parameters)
