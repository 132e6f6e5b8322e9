"""The built-in optimizers: one for each MLX optimizer, each equal to MLX's with the same
settings, and each built-in (those MLX lacks too) training inside one compiled step that serves
every trial, the way a search runs them.
"""

import inspect
import math

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest

from tuner import Choice, Float, OptimizerSpec
from tuner.errors import BadInput
from tuner.lr import make_schedule
from tuner.plugins import BUILTIN, load_plugins
from tuner.space_grammar import parse_param

REGISTRY = load_plugins()
BUILTINS = [n for n in REGISTRY.optimizers if REGISTRY.plugin_of("optimizer", n).source == BUILTIN]
# The built-ins that are MLX's own optimizers, set up for a search.
OF_MLX = [
    n for n in BUILTINS if REGISTRY.plugin_of("optimizer", n).name == "tuner_builtins.optimizers"
]
LR = 0.01
STEPS = 20
WARMUP = 2
COSINE = REGISTRY.schedules["cosine"]
COSINE_END = {"end_factor": 0.1}

mx.random.seed(0)
X = mx.random.normal((64, 8))
Y = X @ mx.random.normal((8, 1)) + 0.1 * mx.random.normal((64, 1))

# MLX's own optimizer with the same settings: a winning setting carries over to mlx.optimizers.
MLX = {
    "sgd": lambda lr, p: optim.SGD(
        lr, momentum=p["momentum"], weight_decay=p["weight_decay"], nesterov=p["nesterov"]
    ),
    "rmsprop": lambda lr, p: optim.RMSprop(lr, alpha=p["alpha"], eps=p["eps"]),
    "adagrad": lambda lr, p: optim.Adagrad(lr, eps=p["eps"]),
    "adadelta": lambda lr, p: optim.AdaDelta(lr, rho=p["rho"], eps=p["eps"]),
    "adam": lambda lr, p: optim.Adam(
        lr, betas=[p["beta1"], p["beta2"]], bias_correction=p["bias_correction"]
    ),
    "adamw": lambda lr, p: optim.AdamW(
        lr,
        betas=[p["beta1"], p["beta2"]],
        weight_decay=p["weight_decay"],
        bias_correction=p["bias_correction"],
    ),
    "adamax": lambda lr, p: optim.Adamax(lr, betas=[p["beta1"], p["beta2"]]),
    "lion": lambda lr, p: optim.Lion(
        lr, betas=[p["beta1"], p["beta2"]], weight_decay=p["weight_decay"]
    ),
    "adafactor": lambda lr, p: optim.Adafactor(
        lr,
        decay_rate=p["decay_rate"],
        beta_1=p["beta_1"],
        relative_step=False,
        scale_parameter=False,
    ),
    "muon": lambda lr, p: optim.Muon(lr, momentum=p["momentum"], nesterov=p["nesterov"]),
}


def new_model():
    mx.random.seed(1)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))


def mse(model, x, y):
    return nn.losses.mse_loss(model(x), y)


def midpoints(spec):
    return {key: param.midpoint() for key, param in spec.space.items()}


def far_end(spec):
    """Another point of the space: each range's low end and each choice's last value."""
    return {
        key: param.values[-1] if isinstance(param, Choice) else param.low
        for key, param in spec.space.items()
    }


class Trials:
    """The trials of one optimizer and schedule with the same Int/Choice values, trained as a
    search trains them: one compiled step, whose continuous settings are arrays among its inputs.
    """

    def __init__(
        self, optimizer: OptimizerSpec, static: dict, schedule=COSINE, schedule_static=None
    ):
        self.optimizer, self.static = optimizer, static
        self.schedule, self.schedule_static = schedule, schedule_static or {}
        self.model = new_model()
        self.initial = self.model.parameters()
        self.opt_state, self.hp, self.traces = {}, {}, 0
        loss_and_grad = nn.value_and_grad(self.model, mse)

        def step(x, y):
            self.traces += 1
            optimizer = self.build(self.hp)
            optimizer.state = self.opt_state
            loss, grads = loss_and_grad(self.model, x, y)
            optimizer.update(self.model, grads)
            return loss

        state = [self.model.state, self.opt_state]
        self.step = mx.compile(step, inputs=[*state, self.hp], outputs=state)

    def build(self, hp):
        settings = {**hp["schedule"], **self.schedule_static}
        schedule = make_schedule(self.schedule, hp["lr"], STEPS, WARMUP, settings)
        return self.optimizer.build(schedule, **hp["optimizer"], **self.static)

    def run(self, lr: float, floats: dict, schedule_floats=COSINE_END) -> list[float]:
        """The loss before each step and after the last."""
        self.model.update(self.initial)
        self.hp.update(lr=mx.array(lr), optimizer=arrays(floats), schedule=arrays(schedule_floats))
        fresh = self.build(self.hp)
        fresh.init(self.model.trainable_parameters())
        self.opt_state.clear()
        self.opt_state.update(fresh.state)
        losses = []
        for _ in range(STEPS):
            loss = self.step(X, Y)
            mx.eval(loss, self.model.state, self.opt_state)
            losses.append(loss.item())
        return [*losses, mse(self.model, X, Y).item()]


def arrays(values: dict) -> dict:
    return {key: mx.array(value) for key, value in values.items()}


def split(spec, params):
    floats = {k: v for k, v in params.items() if isinstance(spec.space[k], Float)}
    return floats, {k: v for k, v in params.items() if k not in floats}


def train_eagerly(optimizer) -> list[float]:
    model = new_model()
    loss_and_grad = nn.value_and_grad(model, mse)
    losses = []
    for _ in range(STEPS):
        loss, grads = loss_and_grad(model, X, Y)
        optimizer.update(model, grads)
        mx.eval(model.state, optimizer.state)
        losses.append(loss.item())
    return [*losses, mse(model, X, Y).item()]


def cosine_rate(lr):
    return make_schedule(COSINE, lr, STEPS, WARMUP, COSINE_END)


def test_there_is_a_builtin_for_every_optimizer_mlx_exports():
    exported = {
        cls
        for _, cls in inspect.getmembers(optim, inspect.isclass)
        if issubclass(cls, optim.Optimizer) and cls not in (optim.Optimizer, optim.MultiOptimizer)
    }
    covered = set()
    for name in BUILTINS:
        spec = REGISTRY.optimizers[name]
        built = type(spec.build(LR, **midpoints(spec)))
        covered.add(next(c for c in built.__mro__ if c.__module__.startswith("mlx.")))

    assert not exported - covered, f"MLX optimizers without a built-in: {exported - covered}"


def test_every_builtin_of_mlx_is_compared_with_mlx_here():
    assert set(OF_MLX) == set(MLX)


@pytest.mark.parametrize("name", BUILTINS)
def test_trains_compiled_from_the_middle_of_its_space(name):
    spec = REGISTRY.optimizers[name]
    floats, static = split(spec, midpoints(spec))

    losses = Trials(spec, static).run(LR, floats)

    assert all(map(math.isfinite, losses))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name", BUILTINS)
def test_one_compiled_step_serves_trials_with_other_numbers(name):
    spec = REGISTRY.optimizers[name]
    middle, _ = split(spec, midpoints(spec))
    end, static = split(spec, far_end(spec))
    trials = Trials(spec, static)

    first = trials.run(LR, middle)
    second = trials.run(LR / 2, end)

    assert trials.traces == 1
    assert first != pytest.approx(second)
    eager = train_eagerly(spec.build(cosine_rate(LR / 2), **end, **static))
    assert second == pytest.approx(eager, rel=1e-4)


@pytest.mark.parametrize("params", [midpoints, far_end])
@pytest.mark.parametrize("name", OF_MLX)
def test_equals_mlx_optimizer_with_the_same_settings(name, params):
    spec = REGISTRY.optimizers[name]
    settings = params(spec)

    ours = train_eagerly(spec.build(cosine_rate(LR), **settings))
    mlx = train_eagerly(MLX[name](cosine_rate(LR), settings))

    assert ours == pytest.approx(mlx, rel=1e-5)


def numeric(param):
    return isinstance(param, Float) or (
        isinstance(param, Choice) and all(isinstance(v, float) for v in param.values)
    )


@pytest.mark.parametrize("name", BUILTINS)
def test_every_number_of_a_builtin_optimizer_has_limits_that_refuse_what_mlx_refuses(name):
    spec = REGISTRY.optimizers[name]
    for key, param in spec.space.items():
        if not numeric(param):
            continue
        assert param.limits is not None, f"{name}.{key} has no limits"
        if name not in MLX:
            continue
        # Where MLX's own constructor checks a setting, --space refuses what it refuses.
        for value in (-1.0, -1e-3, 0.0, 1.0, 1.001, 2.0):
            try:
                MLX[name](LR, {**midpoints(spec), key: value})
            except ValueError:
                with pytest.raises(BadInput, match="the values it can take"):
                    parse_param(str(value), param, f"--space {name}.{key}")


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_without_momentum_is_plain_sgd(nesterov):
    build = REGISTRY.optimizers["sgd"].build
    ours = build(cosine_rate(LR), momentum=0.0, nesterov=nesterov, weight_decay=0.0)

    assert train_eagerly(ours) == pytest.approx(train_eagerly(optim.SGD(cosine_rate(LR))))
