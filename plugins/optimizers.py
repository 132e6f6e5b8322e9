"""Every optimizer ``mlx.optimizers`` ships, registered as tuner's built-in plugin.

A search calls ``build`` while ``mx.compile`` traces the training step, with each ``Float``
parameter as a scalar ``mx.array`` (see ``tuner_register_optimizers``). Tracing cannot answer a
Python comparison, yet several MLX constructors range-check their settings in Python, and SGD and
Lion branch on theirs in every update. So builds set those settings after construction, and SGD
and Lion are subclassed with updates that do the same arithmetic without the branches.

Each space holds the one to three settings the optimizer's paper or common practice tunes, over
the ranges they report; the rest keep MLX's defaults (but for two switches of Adafactor's), so a
winning setting carries over to ``mlx.optimizers`` as keyword arguments. The peak rate is the
shared ``lr`` dimension.

Each spec's ``code`` writes that carried-over optimizer for ``tuner export``: MLX's own class
with the same settings, even for SGD and Lion, whose subclasses here keep MLX's arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import mlx.core as mx
import mlx.optimizers as optim

from tuner import Choice, Default, Float, Open, OptimizerSpec, hookimpl

# What the math of a setting allows, whatever --space asks. A moving average keeps a fraction
# of its past below 1, as MLX's Adam and Lion insist: at 1 it never moves, and a bias
# correction divides by 0. A weight decay below 0 grows the weights. MLX's RMSprop, Adagrad
# and AdaDelta refuse an eps of 0: a weight whose gradients were all 0 would divide 0 by 0.
FRACTION = (0.0, Open(1.0))
DECAY = (0.0, math.inf)
EPS = (Open(0.0), math.inf)

# Kingma & Ba 2015 use beta1 = 0.9, the default of every Adam-like optimizer since.
BETA1 = Float(0.85, 0.95, limits=FRACTION)
# From GPT-3's 0.95 (Brown et al. 2020), steadier in short runs, to Adam's default 0.999.
BETA2 = Float(0.95, 0.999, limits=FRACTION)
# Kingma & Ba 2015 divide the moments by 1 - beta^t, and so does PyTorch; MLX's Adam and AdamW
# do not unless asked, which mostly changes the first few hundred steps: searched, as each
# value is someone's default.
BIAS_CORRECTION = Choice((False, True))


class _SGD(optim.SGD):
    """MLX's SGD (dampening 0) updating without Python tests of momentum and weight decay.

    MLX's update tests ``momentum <= 0`` and ``weight_decay != 0``. The arithmetic alone gives
    the same step: with momentum 0 the velocity is the gradient, and a decay of 0 adds nothing.
    """

    def __init__(self, learning_rate: Any, momentum: Any, weight_decay: Any, nesterov: bool):
        # MLX refuses Nesterov without momentum by comparing momentum, so it is set afterwards.
        super().__init__(learning_rate)
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.nesterov = nesterov

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict) -> mx.array:
        gradient = gradient + self.weight_decay * parameter
        v = self.momentum * state["v"] + gradient
        state["v"] = v
        update = gradient + self.momentum * v if self.nesterov else v
        return parameter - self.learning_rate.astype(gradient.dtype) * update


class _Lion(optim.Lion):
    """MLX's Lion applying its decoupled weight decay without testing ``weight_decay > 0``."""

    def __init__(self, learning_rate: Any, betas: list[Any], weight_decay: Any):
        super().__init__(learning_rate)
        self.betas = betas
        self.weight_decay = weight_decay

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict) -> mx.array:
        lr = self.learning_rate.astype(gradient.dtype)
        b1, b2 = self.betas
        m = state["m"]
        c = b1 * m + (1 - b1) * gradient
        state["m"] = b2 * m + (1 - b2) * gradient
        return (1 - lr * self.weight_decay) * parameter - lr * mx.sign(c)


def _set(optimizer: optim.Optimizer, **settings: Any) -> optim.Optimizer:
    # For settings the constructor would range-check in Python, which a tracer cannot answer.
    for name, value in settings.items():
        setattr(optimizer, name, value)
    return optimizer


@hookimpl
def tuner_register_optimizers(register: Callable[[OptimizerSpec], None]) -> None:
    register(
        OptimizerSpec(
            "sgd",
            defaults=(
                Default(
                    0.1,
                    {"momentum": 0.9, "nesterov": False, "weight_decay": 1e-4},
                    "cosine",
                    {"end_factor": 0.0},
                    source="He et al. 2016, cosine of Loshchilov & Hutter 2017",
                ),
            ),
            build=lambda learning_rate, momentum, nesterov, weight_decay: _SGD(
                learning_rate, momentum, weight_decay, nesterov
            ),
            space={
                # Sutskever et al. 2013 train with momentum 0.9 to 0.99, Nesterov's or not.
                "momentum": Float(0.8, 0.99, limits=FRACTION),
                "nesterov": Choice((False, True)),
                # L2 penalties of ResNet (He et al. 2016, 1e-4) and AlexNet (5e-4) are inside.
                "weight_decay": Float(1e-5, 1e-3, log=True, limits=DECAY),
            },
            description="SGD with heavy-ball or Nesterov momentum and an L2 weight decay",
            code=lambda learning_rate, momentum, nesterov, weight_decay: (
                f"optim.SGD(learning_rate={learning_rate!r}, momentum={momentum!r}, "
                f"weight_decay={weight_decay!r}, nesterov={nesterov!r})"
            ),
        )
    )
    register(
        OptimizerSpec(
            "rmsprop",
            defaults=(Default(1e-3, {"alpha": 0.9, "eps": 1e-8}, source="Tieleman & Hinton 2012"),),
            build=lambda learning_rate, alpha, eps: _set(
                optim.RMSprop(learning_rate), alpha=alpha, eps=eps
            ),
            space={
                # Tieleman & Hinton 2012 use 0.9; PyTorch's default is 0.99.
                "alpha": Float(0.9, 0.999, limits=FRACTION),
                # From the frameworks' 1e-8 to Graves 2013's 1e-4: it caps the step on flat
                # stretches, and Choi et al. 2019 find it worth tuning.
                "eps": Float(1e-8, 1e-4, log=True, limits=EPS),
            },
            description="RMSprop: steps divided by a running RMS of the gradient "
            "(Tieleman & Hinton 2012)",
            code=lambda learning_rate, alpha, eps: (
                f"optim.RMSprop(learning_rate={learning_rate!r}, alpha={alpha!r}, eps={eps!r})"
            ),
        )
    )
    register(
        OptimizerSpec(
            "adagrad",
            defaults=(Default(1e-2, {"eps": 1e-10}, source="Duchi et al. 2011, PyTorch's rate"),),
            build=lambda learning_rate, eps: _set(optim.Adagrad(learning_rate), eps=eps),
            # Its only setting; PyTorch uses 1e-10, Keras 1e-7 and MLX 1e-8 (Duchi et al. 2011).
            space={"eps": Float(1e-10, 1e-6, log=True, limits=EPS)},
            description="Adagrad: per-weight steps shrinking with the summed squared gradients "
            "(Duchi et al. 2011)",
            code=lambda learning_rate, eps: (
                f"optim.Adagrad(learning_rate={learning_rate!r}, eps={eps!r})"
            ),
        )
    )
    register(
        OptimizerSpec(
            "adadelta",
            defaults=(Default(1.0, {"rho": 0.95, "eps": 1e-6}, source="Zeiler 2012"),),
            build=lambda learning_rate, rho, eps: _set(
                optim.AdaDelta(learning_rate), rho=rho, eps=eps
            ),
            # Zeiler 2012 tries rho 0.9 to 0.99 and eps 1e-8 to 1e-2, best 0.95 and 1e-6.
            space={
                "rho": Float(0.9, 0.99, limits=FRACTION),
                "eps": Float(1e-8, 1e-4, log=True, limits=EPS),
            },
            description="AdaDelta: steps sized by the RMS of past updates; its natural rate "
            "is 1 (Zeiler 2012)",
            code=lambda learning_rate, rho, eps: (
                f"optim.AdaDelta(learning_rate={learning_rate!r}, rho={rho!r}, eps={eps!r})"
            ),
        )
    )
    register(
        OptimizerSpec(
            "adam",
            defaults=(
                Default(
                    1e-3,
                    {"beta1": 0.9, "beta2": 0.999, "bias_correction": True},
                    source="Kingma & Ba 2015",
                ),
            ),
            build=lambda learning_rate, beta1, beta2, bias_correction: _set(
                optim.Adam(learning_rate, bias_correction=bias_correction), betas=[beta1, beta2]
            ),
            space={"beta1": BETA1, "beta2": BETA2, "bias_correction": BIAS_CORRECTION},
            description="Adam: momentum over a running RMS of the gradient, with or without "
            "bias correction (Kingma & Ba 2015)",
            code=lambda learning_rate, beta1, beta2, bias_correction: (
                f"optim.Adam(learning_rate={learning_rate!r}, betas=[{beta1!r}, {beta2!r}], "
                f"bias_correction={bias_correction!r})"
            ),
        )
    )
    register(
        OptimizerSpec(
            "adamw",
            defaults=(
                Default(
                    1e-3,
                    {"beta1": 0.9, "beta2": 0.999, "weight_decay": 0.01, "bias_correction": True},
                    "cosine",
                    {"end_factor": 0.0},
                    warmup=0.05,
                    source="Loshchilov & Hutter 2019, cosine after a 5 % warmup",
                ),
            ),
            build=lambda learning_rate, beta1, beta2, weight_decay, bias_correction: _set(
                optim.AdamW(
                    learning_rate, weight_decay=weight_decay, bias_correction=bias_correction
                ),
                betas=[beta1, beta2],
            ),
            space={
                "beta1": BETA1,
                "beta2": BETA2,
                # Decoupled decay, scaled by the rate (Loshchilov & Hutter 2019); the midpoint
                # is MLX's and PyTorch's default 0.01, the top the 0.1 of LLM training.
                "weight_decay": Float(1e-3, 1e-1, log=True, limits=DECAY),
                "bias_correction": BIAS_CORRECTION,
            },
            description="AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019)",
            code=lambda learning_rate, beta1, beta2, weight_decay, bias_correction: (
                f"optim.AdamW(learning_rate={learning_rate!r}, betas=[{beta1!r}, {beta2!r}], "
                f"weight_decay={weight_decay!r}, bias_correction={bias_correction!r})"
            ),
        )
    )
    register(
        OptimizerSpec(
            "adamax",
            defaults=(Default(2e-3, {"beta1": 0.9, "beta2": 0.999}, source="Kingma & Ba 2015"),),
            build=lambda learning_rate, beta1, beta2: _set(
                optim.Adamax(learning_rate), betas=[beta1, beta2]
            ),
            # Kingma & Ba 2015 (section 7.1) suggest 0.9 and 0.999. Its infinity norm carries
            # no start-up bias, so beta2 may come closer to 1 than Adam's.
            space={"beta1": BETA1, "beta2": Float(0.99, 0.9999, limits=FRACTION)},
            description="Adamax: Adam with an infinity-norm second moment (Kingma & Ba 2015)",
            code=lambda learning_rate, beta1, beta2: (
                f"optim.Adamax(learning_rate={learning_rate!r}, betas=[{beta1!r}, {beta2!r}])"
            ),
        )
    )
    register(
        OptimizerSpec(
            "lion",
            defaults=(
                Default(
                    1e-4,
                    {"beta1": 0.9, "beta2": 0.99, "weight_decay": 0.1},
                    "cosine",
                    {"end_factor": 0.0},
                    source="Chen et al. 2023: AdamW's rate / 10, its decay x 10",
                ),
            ),
            build=lambda learning_rate, beta1, beta2, weight_decay: _Lion(
                learning_rate, [beta1, beta2], weight_decay
            ),
            space={
                # Chen et al. 2023 default to 0.9 and 0.99, and lower beta2 to 0.98 for
                # stability.
                "beta1": BETA1,
                "beta2": Float(0.95, 0.999, limits=FRACTION),
                # They advise a decay 3-10x AdamW's, to keep the product with the rate.
                "weight_decay": Float(1e-2, 1.0, log=True, limits=DECAY),
            },
            description="Lion: sign of interpolated momentum; wants a rate 3-10x below AdamW's "
            "(Chen et al. 2023)",
            code=lambda learning_rate, beta1, beta2, weight_decay: (
                f"optim.Lion(learning_rate={learning_rate!r}, betas=[{beta1!r}, {beta2!r}], "
                f"weight_decay={weight_decay!r})"
            ),
        )
    )
    register(
        OptimizerSpec(
            "adafactor",
            # relative_step=False makes it use the searched rate, and scale_parameter=False
            # keeps that rate an absolute step, on the same scale as Adam's.
            build=lambda learning_rate, decay_rate, beta_1: optim.Adafactor(
                learning_rate,
                decay_rate=decay_rate,
                beta_1=beta_1,
                relative_step=False,
                scale_parameter=False,
            ),
            space={
                # Shazeer & Stern 2018: beta2 at step t is 1 - t^decay_rate, best near -0.8,
                # converging for exponents between -1 and -0.5; they compare beta_1 0 and 0.9.
                # An exponent above 0 makes beta2 negative; below -1, 1 - t^decay_rate comes
                # so near 1 that the second moment forgets nothing.
                "decay_rate": Float(-1.0, -0.5, limits=(-1.0, 0.0)),
                "beta_1": Float(0.0, 0.9, limits=FRACTION),
            },
            description="Adafactor: factored second moments and update clipping, at the "
            "searched rate (Shazeer & Stern 2018)",
            code=lambda learning_rate, decay_rate, beta_1: (
                f"optim.Adafactor(learning_rate={learning_rate!r}, decay_rate={decay_rate!r}, "
                f"beta_1={beta_1!r}, relative_step=False, scale_parameter=False)"
            ),
        )
    )
    register(
        OptimizerSpec(
            "muon",
            defaults=(Default(0.02, {"momentum": 0.95, "nesterov": True}, source="Jordan 2024"),),
            build=lambda learning_rate, momentum, nesterov: optim.Muon(
                learning_rate, momentum=momentum, nesterov=nesterov
            ),
            # Jordan 2024 uses Nesterov momentum 0.95.
            space={
                "momentum": Float(0.9, 0.99, limits=FRACTION),
                "nesterov": Choice((True, False)),
            },
            description="Muon: momentum orthogonalised by Newton-Schulz for matrices, plain "
            "for vectors (Jordan 2024)",
            code=lambda learning_rate, momentum, nesterov: (
                f"optim.Muon(learning_rate={learning_rate!r}, momentum={momentum!r}, "
                f"nesterov={nesterov!r})"
            ),
        )
    )
