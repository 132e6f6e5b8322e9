"""What the ``tinylm`` task costs: loading its corpus, and a trial of its default steps, the
first (which builds MLX's kernels, unless ``--warm-cache``) and the later ones that reuse them.

Each trial trains the optimizer's known-good setting, its peak rate scaled a little each trial
so that every one is new numbers in the same compiled step, as a search's trials are::

    python benchmarks/language_model.py --optimizer adamw --trials 5
    LD_PRELOAD=$(ls /usr/lib/x86_64-linux-gnu/libopenblas*.so* | head -1) \\
        OPENBLAS_NUM_THREADS=1 python benchmarks/language_model.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5, help="trials after the first (5)")
    parser.add_argument("--optimizer", default="adamw")
    parser.add_argument("--eager", action="store_true", help="train eagerly, not compiled")
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
    import tuner.blas

    blas = tuner.blas.load()

    from dataclasses import replace

    import mlx.core as mx

    from tuner.graphs import GraphCache
    from tuner.plugins import load_plugins
    from tuner.space import Sample
    from tuner.train import run_trial
    from tuner_builtins import language_model

    registry = load_plugins()
    started = time.perf_counter()
    task = registry.tasks["tinylm"].build()
    mx.eval(task.train, task.valid)
    loaded = time.perf_counter() - started
    files = language_model.corpus_files()
    sizes = {
        part: sum(p.stat().st_size for p in files if language_model.part_of(p) == part)
        for part in ("train", "valid", "test")
    }
    print(
        f"corpus: {len(files)} modules, " + ", ".join(f"{k} {v:,} bytes" for k, v in sizes.items())
    )
    print(
        f"tinylm: {task.train[0].shape[0]:,} training windows, {task.valid[0].shape[0]} "
        f"validation windows; built in {loaded:.2f} s"
    )
    spec = registry.optimizers[args.optimizer]
    (default,) = spec.defaults
    base = Sample(
        spec.name,
        dict(default.params),
        default.schedule,
        dict(default.schedule_params),
        default.lr,
        default.warmup,
    )
    print(
        f"{spec.name} + {default.schedule}, {task.steps} steps of {task.batch_size}, eval every "
        f"{task.eval_every}; BLAS: {blas}; {'eager' if args.eager else 'compiled'}\n"
    )
    graphs = GraphCache()
    walls, steps = [], []
    for number in range(args.trials + 1):
        sample = replace(base, lr=base.lr * (1 + 0.01 * number))
        tick = time.perf_counter()
        result = run_trial(
            task,
            spec,
            registry.schedules[sample.schedule],
            sample,
            steps=task.steps,
            batch_size=task.batch_size,
            eval_every=task.eval_every,
            seed=number,
            graphs=graphs,
            eager=args.eager,
        )
        wall = time.perf_counter() - tick
        walls.append(wall)
        steps.append(result.step_time_s)
        evals = wall - sum(result.step_time_s for _ in range(result.steps))
        print(
            f"trial {number}: {wall:.2f} s, {result.step_time_s * 1000:.1f} ms a step "
            f"(median), evals and the rest ~{max(evals, 0):.2f} s; "
            f"val_loss {result.value:.4f} nats/byte, accuracy {result.metrics['accuracy']:.3f}"
        )
    later = walls[1:]
    if later:
        print(
            f"\nfirst trial {walls[0]:.2f} s; later trials median {statistics.median(later):.2f} s "
            f"(min {min(later):.2f}, max {max(later):.2f}), "
            f"{statistics.median(steps[1:]) * 1000:.1f} ms a step"
        )


if __name__ == "__main__":
    main()
