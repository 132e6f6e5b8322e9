"""An optimizer whose build returns None: a search must refuse it before any trial."""

from tuner import Float, OptimizerSpec, hookimpl


def build(learning_rate, momentum):
    return None


@hookimpl
def tuner_register_optimizers(register):
    register(OptimizerSpec("hollow", build, {"momentum": Float(0.0, 0.9)}, "builds nothing"))
