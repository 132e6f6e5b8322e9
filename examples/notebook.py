# %% [markdown]
# # Tune the optimizer of a model in a notebook
#
# Data in numpy arrays, a model defined in the next cell, metrics written as plain functions:
# `tuner.search` takes them as they are, shows a progress bar while it runs, and gives the
# trials back as a pandas DataFrame, which needs pandas: `pip install -e '.[pandas]'`. Run it as
# a script (`python examples/notebook.py`) or cell by cell in Jupyter.

# %%
import numpy as np

# Before mlx: importing tuner first lets MLX load OpenBLAS on Linux, several times faster.
import tuner

# %% [markdown]
# The data: 900 flowers of three kinds, four measurements each, drawn around a centre for each
# kind. numpy's float64 features and int64 labels go in as they are: tuner makes them MLX
# arrays, the features float32 and the labels still integers.

# %%
rng = np.random.default_rng(0)
centres = rng.normal(0, 2, size=(3, 4))
labels = rng.integers(0, 3, size=900)
features = centres[labels] + rng.normal(size=(900, 4))
train = (features[:600], labels[:600])
valid = (features[600:], labels[600:])

# %% [markdown]
# The model, its loss, and two metrics. A metric is a function of the model and a batch that
# returns a scalar, named by its function; tuner maximizes it unless it is wrapped as
# `tuner.Metric(fn, "minimize")`. Each is tried on a few rows before the search writes
# anything, so a mistake here costs a second, not a study of failed trials.

# %%
import mlx.core as mx
import mlx.nn as nn


def model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))


def loss(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
    return nn.losses.cross_entropy(model(x), y, reduction="mean")


def accuracy(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
    return (model(x).argmax(axis=1) == y).mean()


def error(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
    return 1 - accuracy(model, x, y)


# %% [markdown]
# Ten short trials over three optimizers, searched for the best validation accuracy; then the
# two best configurations trained again with two more seeds each. Running the cell again with
# more `trials` continues the same study.

# %%
results = tuner.search(
    model=model,
    train=train,
    valid=valid,
    loss=loss,
    metrics=[accuracy, tuner.Metric(error, "minimize")],
    metric="accuracy",
    steps=120,
    trials=10,
    optimizers=["adam", "sgd", "lion"],
    schedules=["constant", "cosine"],
    confirm=(2, 2),
    storage="sqlite:///flowers.db",
    study="flowers",
)
# A notebook shows the study, its best trials and its confirmation as tables; a script, nothing.
results  # noqa: B018

# %% [markdown]
# Every trial as a DataFrame: `rank` orders the finished trials as `results.best()` does
# (complete before pruned, whose values were measured before the end), `outcome` says how each
# ended, and `finished_at` is a datetime.

# %%
frame = results.to_dataframe()
columns = ["rank", "number", "optimizer", "schedule", "params.lr", "value", "outcome"]
print(frame.sort_values("rank")[columns].head(5).to_string(index=False))
print(frame.groupby("optimizer")["metrics.accuracy"].max().round(3).to_string())
print("searched for", frame["finished_at"].max() - frame["finished_at"].min())
print(results.confirmation().verdict)
