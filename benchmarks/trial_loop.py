"""How long a search's trials take: eager, compiled once and reused (what ``tuner.train`` does),
and compiled afresh each trial with the hyperparameters as Python floats (the textbook way).

On the CPU ``mx.compile`` writes C++ kernels with those floats baked in and builds them, so the
textbook way rebuilds its kernels every trial. MLX keeps built kernels on disk under the temp
directory; this script points it at a new, empty one, so that the first trial pays what it pays
on a fresh machine. Run with Debian's OpenBLAS loaded first to compare BLAS libraries::

    python benchmarks/trial_loop.py
    LD_PRELOAD=$(ls /usr/lib/x86_64-linux-gnu/libopenblas*.so* | head -1) \\
        python benchmarks/trial_loop.py
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="trials per way (default 8)")
    parser.add_argument("--task", default="digits")
    parser.add_argument("--optimizer", default="adamw")
    parser.add_argument("--schedule", default="cosine")
    parser.add_argument(
        "--warm-cache", action="store_true", help="reuse MLX's kernels already built on disk"
    )
    args = parser.parse_args()
    cache = None if args.warm_cache else tempfile.mkdtemp(prefix="mlx-kernels-")
    if cache:
        # MLX asks for the temp directory whenever it builds a kernel.
        os.environ["TMPDIR"] = cache
    try:
        run(args)
    finally:
        if cache:
            shutil.rmtree(cache, ignore_errors=True)


def run(args: argparse.Namespace) -> None:
    from tuner.graphs import GraphCache
    from tuner.plugins import load_plugins

    registry = load_plugins()
    task = registry.tasks[args.task].build()
    optimizer = registry.optimizers[args.optimizer]
    schedule = registry.schedules[args.schedule]
    samples = [draw(optimizer, schedule, seed) for seed in range(args.trials)]
    print(f"{args.task}: {task.steps} steps of {task.batch_size}, {args.trials} trials a way")
    print(f"{optimizer.name} + {schedule.name}, BLAS: {blas()}, kernels: {kernel_cache(args)}\n")

    def trial(how: Callable[..., Any], sample: Any, seed: int) -> tuple[float, float]:
        started = time.perf_counter()
        value = how(task, optimizer, schedule, sample, seed=seed)
        return time.perf_counter() - started, value

    graphs = GraphCache()
    ways = {
        "compiled, reused": partial(reused, graphs=graphs, eager=False),
        "eager": partial(reused, graphs=graphs, eager=True),
        "compiled per trial": naive,
    }
    times = {}
    for name, how in ways.items():
        results = [trial(how, sample, seed) for seed, sample in enumerate(samples)]
        times[name] = [t for t, _ in results]
        later = times[name][1:]
        accuracy = [v for _, v in results]
        print(
            f"{name:>20}: first {times[name][0]:6.2f} s, then median {statistics.median(later):.3f}"
            f" s (min {min(later):.3f}, max {max(later):.3f}); val accuracy median "
            f"{statistics.median(accuracy):.3f}, best {max(accuracy):.3f}"
        )
    reused_median = statistics.median(times["compiled, reused"][1:])
    print()
    for name in ("eager", "compiled per trial"):
        ratio = statistics.median(times[name][1:]) / reused_median
        print(f"{name} / compiled-and-reused, median trial after the first: {ratio:.2f}×")


def draw(optimizer: Any, schedule: Any, seed: int) -> Any:
    """A sample like a search's: every Float at random, lr log-uniform, Choices at their first."""
    from tuner.params import Float
    from tuner.space import Sample

    rng = np.random.default_rng(seed)

    def value(param: Any) -> Any:
        if not isinstance(param, Float):
            return param.midpoint()
        if param.log:
            return float(math.exp(rng.uniform(math.log(param.low), math.log(param.high))))
        return float(rng.uniform(param.low, param.high))

    return Sample(
        optimizer=optimizer.name,
        optimizer_params={k: value(p) for k, p in optimizer.space.items()},
        schedule=schedule.name,
        schedule_params={k: value(p) for k, p in schedule.space.items()},
        lr=float(math.exp(rng.uniform(math.log(3e-3), math.log(3e-2)))),
        warmup=0.05,
    )


def reused(
    task: Any, optimizer: Any, schedule: Any, sample: Any, *, seed: int, graphs: Any, eager: bool
) -> float | None:
    from tuner.train import run_trial

    result = run_trial(
        task,
        optimizer,
        schedule,
        sample,
        steps=task.steps,
        batch_size=task.batch_size,
        eval_every=task.eval_every,
        seed=seed,
        graphs=graphs,
        objective="accuracy",
        eager=eager,
    )
    return result.value


def naive(task: Any, optimizer: Any, schedule: Any, sample: Any, *, seed: int) -> float:
    """One trial as the MLX examples write it, compiled anew with its numbers as constants."""
    import mlx.core as mx
    import mlx.nn as nn

    from tuner.lr import make_schedule

    mx.random.seed(seed)
    np.random.seed(seed)
    model = task.model()
    warmup = round(sample.warmup * task.steps)
    lr = make_schedule(schedule, sample.lr, task.steps, warmup, sample.schedule_params)
    opt = optimizer.build(lr, **sample.optimizer_params)
    opt.init(model.trainable_parameters())
    state = [model.state, opt.state]
    loss_and_grad = nn.value_and_grad(model, task.loss)

    @partial(mx.compile, inputs=state, outputs=state)
    def step(x: mx.array, y: mx.array) -> mx.array:
        loss, grads = loss_and_grad(model, x, y)
        opt.update(model, grads)
        return loss

    x, y = task.train
    rng = np.random.default_rng(seed)
    accuracy = task.metrics["accuracy"].fn
    for index in range(task.steps):
        batch = mx.array(rng.integers(0, x.shape[0], task.batch_size))
        mx.eval(step(x[batch], y[batch]), state)
        if (index + 1) % task.eval_every == 0 or index + 1 == task.steps:
            value = accuracy(model, *task.valid).item()
    return value


def blas() -> str:
    # numpy brings its own OpenBLAS (libscipy_openblas); only a system one serves MLX.
    maps = Path("/proc/self/maps")
    if maps.exists() and "/libopenblas" in maps.read_text():
        return "OpenBLAS (preloaded)"
    return "the reference BLAS bundled with mlx-cpu"


def kernel_cache(args: argparse.Namespace) -> str:
    return "already built ones reused" if args.warm_cache else "a new, empty cache"


if __name__ == "__main__":
    main()
