"""An optimizer that turns every weight into NaN: its trials must diverge, not crash."""

import mlx.optimizers as optim

from tuner import Float, OptimizerSpec, hookimpl


class Poison(optim.Optimizer):
    def __init__(self, learning_rate, scale):
        super().__init__()
        self._maybe_schedule("learning_rate", learning_rate)
        self.scale = scale

    def init_single(self, parameter, state):
        pass

    def apply_single(self, gradient, parameter, state):
        return parameter * float("nan") * self.scale


@hookimpl
def tuner_register_optimizers(register):
    register(OptimizerSpec("poison", Poison, {"scale": Float(0.5, 1.0)}, "always NaN"))
