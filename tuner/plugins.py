"""The plugin manager: loads the built-ins, entry points and files, and collects what they
register into a ``Registry``. A broken plugin becomes a ``PluginError`` that names it; it never
stops the others from loading.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pluggy
from pluggy import HookImpl

from tuner import hookspecs
from tuner.errors import BadInput, TunerError, did_you_mean
from tuner.params import validate_space
from tuner.specs import OptimizerSpec, ScheduleSpec, TaskSpec

ENTRY_POINT_GROUP = "tuner"
BUILTIN_MODULES = (
    "tuner_builtins.optimizers",
    "tuner_builtins.schedules",
    "tuner_builtins.tasks",
    "tuner_builtins.more_optimizers",
    "tuner_builtins.language_model",
)
BUILTIN = "built-in"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

# kind -> (hook name, spec class, the build arguments tuner passes itself)
KINDS: dict[str, tuple[str, type, tuple[str, ...]]] = {
    "optimizer": ("tuner_register_optimizers", OptimizerSpec, ("learning_rate",)),
    "schedule": ("tuner_register_schedules", ScheduleSpec, ("lr", "steps")),
    "task": ("tuner_register_tasks", TaskSpec, ()),
}


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin: its name, its version when known, and where it came from."""

    name: str
    version: str | None
    source: str


@dataclass(frozen=True)
class PluginError:
    """One plugin's failure, as the one line a user sees."""

    plugin: str
    message: str
    # Whether it is one spec refused, not the plugin failing: it cannot have hidden another name.
    refusal: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        return f"plugin '{self.plugin}': {self.message}"


@dataclass
class Registry:
    """Every optimizer, schedule and task that loaded, and every plugin error."""

    optimizers: dict[str, OptimizerSpec] = field(default_factory=dict)
    schedules: dict[str, ScheduleSpec] = field(default_factory=dict)
    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    owners: dict[tuple[str, str], PluginInfo] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    errors: list[PluginError] = field(default_factory=list)
    refused: dict[tuple[str, str], PluginError] = field(default_factory=dict)

    def specs(self, kind: str) -> dict[str, Any]:
        return {"optimizer": self.optimizers, "schedule": self.schedules, "task": self.tasks}[kind]

    def get(self, kind: str, name: str) -> Any:
        """The spec of that name, or a one-line error saying why there is none."""
        specs = self.specs(kind)
        if name in specs:
            return specs[name]
        if (kind, name) in self.refused:
            raise TunerError(str(self.refused[(kind, name)]))
        message = f"unknown {kind} '{name}'{did_you_mean(name, specs)}"
        broken = [e for e in self.errors if not e.refusal]
        if broken:
            raise TunerError(f"{message} ({'; '.join(map(str, broken))})")
        raise BadInput(message)

    def select(self, kind: str, names: Iterable[str] | None) -> dict[str, Any]:
        """The named specs in order, or all of them when ``names`` is None."""
        if names is None:
            return dict(self.specs(kind))
        return {name: self.get(kind, name) for name in names}

    def plugin_of(self, kind: str, name: str) -> PluginInfo:
        return self.owners[(kind, name)]

    def to_json(self) -> dict[str, Any]:
        """What ``tuner plugins --format json`` prints: the plugins, each optimizer, schedule
        and task with the plugin that registered it and its space (and an optimizer's
        known-good settings), and the errors."""
        data: dict[str, Any] = {"plugins": [asdict(p) for p in self.plugins]}
        for kind in KINDS:
            data[f"{kind}s"] = []
            for name, spec in self.specs(kind).items():
                entry = {"name": name, "plugin": self.plugin_of(kind, name).name}
                entry["description"] = spec.description
                entry["space"] = {p: param.to_json() for p, param in spec.space.items()}
                if kind == "optimizer":
                    entry["defaults"] = [asdict(default) for default in spec.defaults]
                data[f"{kind}s"].append(entry)
        data["errors"] = [{"plugin": e.plugin, "message": e.message} for e in self.errors]
        return data


def load_plugins(extra: Sequence[str | object] = ()) -> Registry:
    """Load the built-ins, the installed entry points, ``TUNER_PLUGINS`` and ``extra``.

    ``extra`` holds paths of ``.py`` files, module names, or plugin objects (as tests use).
    ``TUNER_LOAD_PLUGINS=a,b`` restricts the entry points to those named.
    """
    manager = pluggy.PluginManager("tuner")
    manager.add_hookspecs(hookspecs)
    registry = Registry()
    infos: dict[str, PluginInfo] = {}

    def add(name: str, load: Callable[[], object], version: str | None, source: str) -> None:
        if name in infos:
            # Pluggy's own error would print every loaded plugin's module on one line.
            taken = f"a plugin of that name is loaded already, from {infos[name].source}"
            registry.errors.append(PluginError(name, f"{taken}: load it once"))
            return
        try:
            plugin = load()
            # subset_hook_caller, which calls each plugin on its own, keeps plugins in a set.
            hash(plugin)
            manager.register(plugin, name=name)
            _refuse_unknown_hooks(manager, plugin)
        # sys.exit in a plugin is its failure, not a request to end tuner; Ctrl-C still ends it.
        except (Exception, SystemExit) as error:
            registry.errors.append(PluginError(name, _describe(error)))
            return
        infos[name] = PluginInfo(name, version, source)

    # The installed tuner's, not tuner.__version__: the package imports this module as it loads.
    version = importlib.metadata.version("tuner")
    for module in BUILTIN_MODULES:
        add(module, lambda m=module: importlib.import_module(m), version, BUILTIN)
    for name, load, version, source in _entry_points(registry):
        add(name, load, version, source)
    env = [p.strip() for p in os.environ.get("TUNER_PLUGINS", "").split(",") if p.strip()]
    for item in [*env, *extra]:
        if isinstance(item, str):
            add(_plugin_name(item), lambda i=item: _import(i), None, item)
        else:
            name = getattr(item, "__name__", type(item).__name__)
            add(name, lambda i=item: i, None, "object")

    registry.plugins = list(infos.values())
    for kind, (hook_name, _, _) in KINDS.items():
        impls = getattr(manager.hook, hook_name).get_hookimpls()
        wrappers = [impl for impl in impls if impl.wrapper or impl.hookwrapper]
        callees = [impl for impl in impls if impl not in wrappers]
        for callee in callees:
            # One call through pluggy per plugin, the others masked: what it registers is its
            # own and what it raises stops only it, while wrappers, tracing and hook call
            # monitors still see every call.
            others = [impl.plugin for impl in callees if impl is not callee]
            call = manager.subset_hook_caller(hook_name, remove_plugins=others)
            try:
                call(register=_registrar(registry, kind, infos[callee.plugin_name]))
            except (Exception, SystemExit) as error:
                # A wrapper runs inside every plugin's call: name the one the error came from.
                culprit = infos[_raised_in(error, wrappers, callee).plugin_name]
                failure = PluginError(culprit.name, f"{hook_name}: {_describe(error)}")
                if failure not in registry.errors:
                    registry.errors.append(failure)
    return registry


def refuse_failed(registry: Registry, named: Sequence[str | object]) -> None:
    """Raise BadInput for the first of the plugins ``named`` (paths and modules asked for by
    name, as --plugin asks) that failed to load, or whose hook failed: asked for, it is
    meant to run, and a search without it is not what was asked for. A spec it registered
    that was refused is not a failure to load: using that name says why."""
    asked = {_plugin_name(item): item for item in named if isinstance(item, str)}
    for error in registry.errors:
        if error.plugin in asked and not error.refusal:
            raise BadInput(f"--plugin {asked[error.plugin]} failed to load: {error.message}")


def _raised_in(error: BaseException, wrappers: Sequence[HookImpl], callee: HookImpl) -> HookImpl:
    """Of a call's wrappers and callee, the one whose frame is innermost in the traceback."""
    # The callee last, so that it wins over a wrapper of the same code (two instances of a class).
    by_code = {getattr(impl.function, "__code__", None): impl for impl in [*wrappers, callee]}
    found = callee
    entry = error.__traceback__
    while entry is not None:
        found = by_code.get(entry.tb_frame.f_code, found)
        entry = entry.tb_next
    return found


def _entry_points(registry: Registry) -> list[tuple[str, Callable[[], object], str | None, str]]:
    wanted_env = os.environ.get("TUNER_LOAD_PLUGINS")
    wanted = None
    if wanted_env is not None:
        wanted = {n.strip() for n in wanted_env.split(",") if n.strip()}
    found = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if wanted is not None and ep.name not in wanted:
            continue
        dist = ep.dist
        source = f"entry point of {dist.name}" if dist else "entry point"
        found.append((ep.name, ep.load, dist.version if dist else None, source))
    for name in sorted((wanted or set()) - {f[0] for f in found}):
        registry.errors.append(PluginError(name, "named in TUNER_LOAD_PLUGINS but not installed"))
    return found


def _plugin_name(item: str) -> str:
    return Path(item).stem if item.endswith(".py") else item


def _import(item: str) -> object:
    if not item.endswith(".py"):
        return importlib.import_module(item)
    path = Path(item)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {item}")
    spec = importlib.util.spec_from_file_location(f"tuner_plugin_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _refuse_unknown_hooks(manager: pluggy.PluginManager, plugin: object) -> None:
    """Unregister ``plugin`` and raise TunerError if it implements a hook that tuner has none
    of: a misspelt name would otherwise register nothing, and say nothing."""
    for caller in manager.get_hookcallers(plugin) or []:
        mine = [i for i in caller.get_hookimpls() if i.plugin is plugin and not i.optionalhook]
        if not caller.has_spec() and mine:
            manager.unregister(plugin)
            hooks = [name for name in vars(hookspecs) if name.startswith("tuner_")]
            raise TunerError(
                f"@hookimpl {caller.name} is no hook of tuner's{did_you_mean(caller.name, hooks)}"
            )


def _describe(error: BaseException) -> str:
    if isinstance(error, TunerError):
        return str(error)
    if isinstance(error, SyntaxError):
        return f"syntax error in {Path(error.filename or '?').name}, line {error.lineno}"
    if isinstance(error, SystemExit):
        return f"called sys.exit({'' if error.code is None else repr(error.code)})"
    return f"{type(error).__name__}: {error}"


def _registrar(registry: Registry, kind: str, info: PluginInfo) -> Callable[[Any], None]:
    def register(spec: Any) -> None:
        name = getattr(spec, "name", None)
        try:
            _validate(registry, kind, spec)
        except ValueError as reason:
            error = PluginError(info.name, f"{kind} '{name}' refused: {reason}", refusal=True)
            registry.errors.append(error)
            if isinstance(name, str) and (kind, name) not in registry.owners:
                registry.refused[(kind, name)] = error
            return
        registry.specs(kind)[spec.name] = spec
        registry.owners[(kind, spec.name)] = info

    return register


def _validate(registry: Registry, kind: str, spec: Any) -> None:
    _, spec_class, given = KINDS[kind]
    if not isinstance(spec, spec_class):
        raise ValueError(f"expected a {spec_class.__name__}, got {type(spec).__name__}")
    if not isinstance(spec.name, str) or not NAME.match(spec.name):
        raise ValueError("a name is letters, digits, '_' and '-', starting with a letter")
    owner = registry.owners.get((kind, spec.name))
    if owner is not None:
        taken_by = "a built-in" if owner.source == BUILTIN else f"plugin '{owner.name}'"
        raise ValueError(f"the name is taken by {taken_by}")
    for hook in ("build", "code", "eval_weights"):
        value = getattr(spec, hook, None)
        if not callable(value) and (hook == "build" or value is not None):
            raise ValueError(f"{hook} must be callable, not {type(value).__name__}")
    space = getattr(spec, "space", {})
    validate_space(space)
    # A task's parameters go to its model factory, not to its build().
    _check_signature(spec.build, given, {} if kind == "task" else space)


def _check_signature(build: Callable[..., Any], given: tuple[str, ...], space: Any) -> None:
    try:
        params = inspect.signature(build).parameters
    except (TypeError, ValueError):
        return
    kinds = {p.kind for p in params.values()}
    if inspect.Parameter.VAR_KEYWORD not in kinds:
        unknown = [name for name in space if name not in params]
        if unknown:
            raise ValueError(f"build() takes no parameter '{unknown[0]}' of its space")
    positional = [
        p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    required = [
        p.name for p in positional[len(given) :] if p.default is p.empty and p.name not in space
    ]
    if required:
        raise ValueError(f"build() needs '{required[0]}', which its space does not give")
    if len(positional) < len(given) and inspect.Parameter.VAR_POSITIONAL not in kinds:
        raise ValueError(f"build() must accept ({', '.join(given)}, **params)")
