"""Member-steps a second of populations of ``--size`` trials against trials trained one at a
time, for every built-in optimizer, on ``digits`` (issue 18: at least 1.7× for AdamW at 16 on a
2-core CPU).

Each optimizer trains with each parameter of its space at the space's midpoint (a Float's,
log-scaled where the range is; a Choice's first value), the ``constant`` schedule and no
warmup, as ``compiled_steps.py`` does, so that the step is the optimizer's alone; the shared
``lr`` is its midpoint (0.01) and 1 % more for each member, so that the members are distinct
trials of one graph, as a search's are. Both ways go through ``tuner.train.train``, as
``tuner search`` does: a population of 1 is a trial trained alone (``--population 1``), a
population of K the vectorised step. Each way first trains once to build its kernels,
untimed; then the two alternate ``--repeats`` times with the same seeds, so that load from
other processes falls on both alike. A run's time is its whole ``train`` call: the models'
creation, the batches' order, the evals every 50 steps and the end included, as a search pays them.

Printed, for each optimizer: member-steps/s one at a time (the median of the repeats, one trial
each), in a population, their ratio, and the largest difference between a member's final
training loss and the same trial's alone. The BLAS is chosen as ``tuner search`` chooses it,
before MLX loads: OpenBLAS where installed, one thread, unless ``--blas bundled``. Nothing is
asserted.

    python benchmarks/population.py [--size 16] [--repeats 3] [--optimizers adamw,sgd]
        [--steps 300] [--blas auto|bundled]
"""

from __future__ import annotations

import argparse
import statistics
import time

# Imported before anything that imports MLX, which binds its BLAS calls once, as it loads.
from tuner import blas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--optimizers", help="comma-separated [every built-in one]")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--blas", choices=blas.CHOICES, default="auto")
    args = parser.parse_args()
    chosen = blas.load(args.blas)

    import mlx.core as mx

    from tuner.graphs import GraphCache
    from tuner.plugins import load_plugins
    from tuner.space import SHARED, Sample
    from tuner.train import train
    from tuner.trial import Member

    registry = load_plugins()
    task = registry.tasks["digits"].build()
    names = args.optimizers.split(",") if args.optimizers else list(registry.optimizers)
    print(f"digits, {args.steps} steps, batch 64, BLAS: {chosen}, mlx {mx.__version__}")
    print(f"{'optimizer':<20} {'alone/s':>8} {f'pop {args.size}/s':>9} {'ratio':>6} {'Δloss':>8}")
    for name in names:
        spec = registry.optimizers[name]
        schedule = registry.schedules["constant"]
        params = {k: p.midpoint() for k, p in spec.space.items()}

        def members(count: int, spec=spec, params=params, schedule=schedule) -> list[Member]:
            lr = SHARED["lr"].midpoint()
            return [
                Member(
                    schedule, Sample(spec.name, params, "constant", {}, lr * (1 + 0.01 * i), 0.0), i
                )
                for i in range(count)
            ]

        graphs = GraphCache()

        def run(count: int, spec=spec, graphs=graphs) -> tuple[float, list]:
            started = time.perf_counter()
            results = train(
                task,
                spec,
                members(count),
                steps=args.steps,
                batch_size=64,
                eval_every=50,
                graphs=graphs,
                objective="val_loss",
            )
            return time.perf_counter() - started, results

        run(1)
        run(args.size)
        alone, together, gap, reasons = [], [], 0.0, set()
        for _ in range(args.repeats):
            seconds, ones = run(1)
            alone.append(args.steps / seconds)
            seconds, many = run(args.size)
            together.append(args.size * args.steps / seconds)
            gap = max(gap, abs(ones[0].losses[-1] - many[0].losses[-1]))
            reasons |= {r.reason for r in many if r.reason}
        one, rate = statistics.median(alone), statistics.median(together)
        print(f"{name:<20} {one:>8.0f} {rate:>9.0f} {rate / one:>5.2f}× {gap:>8.1e}")
        for reason in sorted(reasons):
            print(f"  {reason}")


if __name__ == "__main__":
    main()
