"""Each plugin's hook is called through pluggy, so wrappers see it, yet what a plugin registers
and what it raises stay its own."""

from dataclasses import dataclass
from pathlib import Path

from tuner import ScheduleSpec, hookimpl
from tuner.plugins import PluginError, load_plugins

BROKEN = Path(__file__).parent / "broken_plugins"
GOOD = str(BROKEN / "good.py")


def flat(lr, steps):
    return lambda step: lr


class Forgiving:
    """Stands in with a flat schedule for a plugin whose hook raises."""

    @hookimpl(wrapper=True)
    def tuner_register_schedules(self, register):
        try:
            return (yield)
        except RuntimeError:
            register(ScheduleSpec("fallback", flat, {}))
            return []


class BrokenWrapper:
    @hookimpl(wrapper=True)
    def tuner_register_schedules(self, register):
        raise RuntimeError("wrapper broke")
        yield


@dataclass
class Unhashable:
    @hookimpl
    def tuner_register_schedules(self, register):
        register(ScheduleSpec("unhashable", flat, {}))


def test_a_wrapper_wraps_each_plugins_call_and_registers_for_that_plugin():
    registry = load_plugins([str(BROKEN / "hook_raises.py"), Forgiving(), GOOD])

    assert registry.errors == []
    assert registry.plugin_of("schedule", "fallback").name == "hook_raises"
    assert registry.plugin_of("schedule", "halving").name == "good"
    assert registry.plugin_of("schedule", "cosine").source == "built-in"


def test_a_wrapper_that_raises_is_named_once_and_not_the_plugins_it_wraps():
    registry = load_plugins([GOOD, BrokenWrapper()])

    assert registry.errors == [
        PluginError("BrokenWrapper", "tuner_register_schedules: RuntimeError: wrapper broke")
    ]
    assert {"adam", "sgd"} <= set(registry.optimizers)


def test_an_unhashable_plugin_object_is_named_and_the_others_load():
    registry = load_plugins([Unhashable(), GOOD])

    assert [str(e) for e in registry.errors] == [
        "plugin 'Unhashable': TypeError: unhashable type: 'Unhashable'"
    ]
    assert "halving" in registry.schedules
