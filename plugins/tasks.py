"""The built-in tasks: small problems that train in well under a second on a laptop CPU, so a
study of many trials finishes in minutes.

``digits`` is the default: the 8×8 handwritten digits that scikit-learn bundles, read from a
copy of its file beside this module (``digits.csv.gz``, under scikit-learn's BSD licence: see
``digits.NOTICE``), so that it needs neither a download nor scikit-learn. ``synthetic`` is a
tiny regression for tests. A small CNN on the digits was measured at 15 ms a step on a 2-core
CPU, 5 s a trial, and so is not built in.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from tuner import Choice, Metric, Task, TaskSpec, hookimpl

# The split is part of the task's definition: every trial, process and machine validates on
# the same images, and the same held-out images test the confirmation runs.
SPLIT_SEED = 0
TEST_FRACTION = 0.2
VALID_FRACTION = 0.2
# The MLP's hidden width, unless a study searches it.
HIDDEN = 128


@hookimpl
def tuner_register_tasks(register: Callable[[TaskSpec], None]) -> None:
    register(
        TaskSpec(
            "digits",
            build=build_digits,
            description=(
                "MLP 64-128-10 on scikit-learn's 8×8 digits "
                "(1797 images: 1151 train, 287 valid, 359 test)"
            ),
            # Searched only when --space names it: digits.hidden=64,128,256
            space={"hidden": Choice((64, 128, 256), limits=(1, 4096))},
        )
    )
    register(
        TaskSpec(
            "synthetic",
            build=build_synthetic,
            description="a tiny nonlinear regression on fixed random data; trains in a blink",
        )
    )


# scikit-learn's file, as sklearn.datasets.load_digits reads it: 64 pixel counts and the label.
DIGITS_FILE = Path(__file__).with_name("digits.csv.gz")


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 digits as float32 pixels in [0, 1] (shape ``(1797, 64)``) and int labels."""
    table = np.loadtxt(DIGITS_FILE, delimiter=",", dtype=np.float32)
    x, y = table[:, :-1], table[:, -1]
    return (x / 16.0).astype(np.float32), y.astype(np.int32)


def stratified_split(
    y: np.ndarray, valid_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a train and a validation set holding each class in the same proportion."""
    rng = np.random.default_rng(seed)
    train, valid = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        cut = round(len(members) * valid_fraction)
        valid.append(members[:cut])
        train.append(members[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(valid))


def cross_entropy(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
    return nn.losses.cross_entropy(model(x), y, reduction="mean")


def accuracy(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
    return mx.mean(mx.argmax(model(x), axis=-1) == y)


class MLP(nn.Module):
    def __init__(self, sizes: list[int]):
        super().__init__()
        self.layers = [nn.Linear(i, o) for i, o in itertools.pairwise(sizes)]

    def __call__(self, x: mx.array) -> mx.array:
        for layer in self.layers[:-1]:
            x = nn.relu(layer(x))
        return self.layers[-1](x)


def build_digits() -> Task:
    x, y = load_digits()
    # The test images are taken out first, so that the trials' split never reaches them.
    rest, test = stratified_split(y, TEST_FRACTION, SPLIT_SEED)
    train, valid = (rest[part] for part in stratified_split(y[rest], VALID_FRACTION, SPLIT_SEED))
    return Task(
        model=lambda hidden=HIDDEN: MLP([64, hidden, 10]),
        train=(mx.array(x[train]), mx.array(y[train])),
        valid=(mx.array(x[valid]), mx.array(y[valid])),
        loss=cross_entropy,
        metrics={"accuracy": Metric(accuracy, "maximize")},
        steps=300,
        batch_size=64,
        eval_every=50,
        test=lambda: (mx.array(x[test]), mx.array(y[test])),
    )


def mse(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
    return nn.losses.mse_loss(model(x).squeeze(-1), y, reduction="mean")


def r2(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
    return 1 - mse(model, x, y) / mx.var(y)


def build_synthetic() -> Task:
    rng = np.random.default_rng(SPLIT_SEED)
    x = rng.standard_normal((640, 8)).astype(np.float32)
    a, b = rng.standard_normal((2, 8)).astype(np.float32)

    def target(x: np.ndarray) -> np.ndarray:
        noise = rng.standard_normal(len(x)).astype(np.float32)
        return np.sin(x @ a) + 0.5 * (x @ b) + 0.1 * noise

    y = target(x)
    # Drawn after the trials' rows, so that those stay as they were, and scaled as they are.
    test_x = rng.standard_normal((128, 8)).astype(np.float32)
    test_y = target(test_x)
    mean, std = y.mean(), y.std()
    y, test_y = (((v - mean) / std).astype(np.float32) for v in (y, test_y))
    return Task(
        model=lambda: MLP([8, 32, 1]),
        train=(mx.array(x[:512]), mx.array(y[:512])),
        valid=(mx.array(x[512:]), mx.array(y[512:])),
        loss=mse,
        metrics={"r2": Metric(r2, "maximize")},
        steps=100,
        batch_size=32,
        eval_every=25,
        test=lambda: (mx.array(test_x), mx.array(test_y)),
    )
