# %% [markdown]
# # Search the optimizer of a model defined right here
#
# `tuner.search` runs the study that `tuner search` runs, on a task given by its parts: a
# function that makes the model, the training and validation data, a loss and metrics. It
# returns the study's results, to read back, compare and export. Run it as a script
# (`python examples/search_inline.py`) or cell by cell in a notebook.

# %%
import tuner
import tuner.blas
from tuner import Metric

# On Linux, OpenBLAS (where installed) trains several times faster than the BLAS that MLX's
# wheel bundles, and it must load before MLX does.
tuner.blas.load()

import mlx.core as mx
import mlx.nn as nn

# %% [markdown]
# The data: points of the plane, labelled by whether they fall inside a circle.

# %%
x = mx.random.uniform(-1, 1, (1200, 2), key=mx.random.key(0))
y = ((x**2).sum(axis=1) < 0.5).astype(mx.int32)


def model() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))


def loss(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
    return nn.losses.cross_entropy(model(x), y, reduction="mean")


def accuracy(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
    return (model(x).argmax(axis=1) == y).mean()


# %% [markdown]
# Twelve short trials over three optimizers and two schedules. Running the cell again with more
# `trials` continues the same study.

# %%
results = tuner.search(
    "circle",
    model=model,
    train=(x[:1000], y[:1000]),
    valid=(x[1000:], y[1000:]),
    loss=loss,
    metrics={"accuracy": Metric(accuracy)},
    steps=150,
    trials=12,
    optimizers=["adam", "sgd", "lion"],
    schedules=["constant", "cosine"],
    storage="sqlite:///circle.db",
    study="circle-accuracy",
)

# %%
for trial in results.best(3):
    print(
        f"trial {trial.number}: {trial.optimizer} + {trial.schedule}, lr {trial.lr:.3g}, "
        f"val_loss {trial.value:.4f}, accuracy {trial.metrics['accuracy']:.3f}"
    )
print(results.compare().verdict)

# %% [markdown]
# After the search, the three best configurations were trained again with three fresh seeds
# each: is the winner's lead more than the luck of one seed?

# %%
confirmation = results.confirmation()
for config in confirmation.configs:
    print(f"trial {config.trial.number}: mean {config.mean:.4f} ± {config.std or 0:.4f}")
print(confirmation.verdict)

# %% [markdown]
# The confirmed winner's optimizer, built as its trial built it, to train with for longer; and
# each optimizer's best value. With `pip install 'tuner[pandas]'`, `results.to_dataframe()`
# gives every trial as a pandas DataFrame.

# %%
optimizer = results.optimizer(steps=1000)
print(type(optimizer).__name__, "for 1000 steps")
for group in results.compare().groups:
    print(f"{group.name}: best val_loss {group.best_value:.4f}")
