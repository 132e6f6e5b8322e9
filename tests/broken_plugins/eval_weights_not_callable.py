import mlx.optimizers as optim

from tuner import OptimizerSpec, hookimpl


@hookimpl
def tuner_register_optimizers(register):
    register(
        OptimizerSpec(
            "unweighed", lambda learning_rate: optim.SGD(learning_rate), {}, eval_weights="x"
        )
    )
