"""Whether MLX lets other Python threads run while a compiled training step runs (issue 28):
could a thread ask Optuna for the next trials while MLX trains this one?

A compiled Adam step of digits' MLP (64-128-10, batch 64, as tuner's ``digits`` trains it) runs
in the main thread, ``mx.eval`` after each step, for ``--seconds``; a second thread counts in a
pure Python loop meanwhile, the way sampling and SQLAlchemy's work would run. Each is also run
alone for the same time. Printed: the steps a second with and without the counting thread, the
counts a second with and without the training, and the share of the counter's rate that
survives beside training. Near 100 %: MLX releases the GIL while it computes, and a sampling
thread would run beside it on another core; near 50 % or less: the two take turns. Nothing is
asserted. Run it on an otherwise idle machine; on a 2-core machine, ``tuner search``'s default
``--jobs auto`` already gives that other core to a second worker.

    python benchmarks/gil.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import threading
import time
from functools import partial

from tuner import blas


def train_for(seconds: float) -> float:
    """Compiled steps a second, for ``seconds``."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim

    mx.random.seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = optim.Adam(1e-3)
    x = mx.random.normal((64, 64))
    y = mx.random.randint(0, 10, (64,))

    def loss(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
        return nn.losses.cross_entropy(model(x), y, reduction="mean")

    grad = nn.value_and_grad(model, loss)
    state = [model.state, optimizer.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(x: mx.array, y: mx.array) -> mx.array:
        value, grads = grad(model, x, y)
        optimizer.update(model, grads)
        return value

    mx.eval(step(x, y), state)  # builds the kernels, outside the timing
    steps, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        mx.eval(step(x, y), state)
        steps += 1
    return steps / (time.perf_counter() - began)


def count_until(stop: threading.Event, counts: list[float]) -> None:
    """Counts a second of a Python loop, until ``stop``."""
    n, began = 0, time.perf_counter()
    while not stop.is_set():
        for _ in range(1000):
            n += 1
    counts.append(n / (time.perf_counter() - began))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    options = parser.parse_args()
    print(f"BLAS: {blas.load('auto') or 'as MLX loads it'}")
    alone_steps = train_for(options.seconds)

    counts: list[float] = []
    stop = threading.Event()
    counter = threading.Thread(target=count_until, args=(stop, counts))
    counter.start()
    time.sleep(options.seconds)
    stop.set()
    counter.join()
    alone_counts = counts.pop()

    stop.clear()
    counter = threading.Thread(target=count_until, args=(stop, counts))
    counter.start()
    together_steps = train_for(options.seconds)
    stop.set()
    counter.join()
    together_counts = counts.pop()

    print(f"steps/s, training alone        {alone_steps:12,.0f}")
    print(f"steps/s, beside the counter    {together_steps:12,.0f}")
    print(f"counts/s, counting alone       {alone_counts:12,.0f}")
    print(f"counts/s, beside the training  {together_counts:12,.0f}")
    print(
        f"the counter kept {together_counts / alone_counts:.0%} of its rate, the training "
        f"{together_steps / alone_steps:.0%} of its own"
    )


if __name__ == "__main__":
    main()
