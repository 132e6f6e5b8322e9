"""An optimizer whose plugin declares its own known-good setting."""

import mlx.optimizers as optim

from tuner import Default, Float, OptimizerSpec, hookimpl


@hookimpl
def tuner_register_optimizers(register):
    register(
        OptimizerSpec(
            "plainsgd",
            lambda learning_rate, momentum: optim.SGD(learning_rate, momentum=momentum),
            {"momentum": Float(0.0, 0.9)},
            "SGD, with a setting of its own to try first",
            defaults=(Default(0.05, {"momentum": 0.5}, source="this plugin's authors"),),
        )
    )
