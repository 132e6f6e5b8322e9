"""The Optuna side of a population: the trials that train beside the one Optuna's ``optimize``
runs, asked with its family fixed, kept beating while they train.

Who trains together: K trials are asked at once, under the claim lock, which the count needs,
and sampled once it is let go: the first samples its family, what selects its graph
(:func:`tuner.graphs.graph_settings`), then the K - 1 others sample with that family fixed and
the rest (the schedule, the warmup, the learning rate, the optimizer's ``Float`` settings)
drawn by the study's sampler as usual. ``benchmarks/README.md`` says why this rather than
grouping K trials sampled freely.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import optuna

from tuner.samplers import SeededPerTrial

if TYPE_CHECKING:
    from tuner.db.steady_storage import SteadyStorage

# Numbers (weights and biases) a population step holds, at most, on each kind of device:
# enough members to fill it, not so many that one member's matrix products fill it alone.
BUDGET = {"cpu": 1 << 18, "gpu": 1 << 22}
LARGEST = {"cpu": 16, "gpu": 64}
# Under --population auto, a population holds at most this share of the study's finished
# trials: each population spends its trials on one family, and at a quarter the answer of a
# search in a fixed time was no better, at a sixteenth no worse than free draws grouped by
# family (benchmarks/population_quality.py).
SHARE = 16
# Nor fewer than this: two at once train barely faster than one after the other on a CPU
# (1.0-1.2×, benchmarks/population.py --size 2), and a stack builds kernels of its own.
SMALLEST = 4


def auto_size(parameters: int, device: str, finished: int) -> int:
    """``--population auto``: the largest power of two that fits the model ``BUDGET`` times,
    up to ``LARGEST`` and to the study's finished trials over ``SHARE``; 1 below
    ``SMALLEST``."""
    most = min(LARGEST[device], BUDGET[device] // max(parameters, 1), finished // SHARE)
    members = 1
    while members * 2 <= most:
        members *= 2
    return members if members >= SMALLEST else 1


@contextmanager
def apart(study: optuna.Study) -> Iterator[None]:
    """Within, the trials that ``study`` asks for will each be drawn as a draw of its own rather
    than the sampler's one best guess where it can (TPE: one candidate): a population's
    members, drawn one after another from the same trials, would otherwise all land near the
    same guess. Their samplers are made as they are asked, so this covers the asks."""
    base = study.sampler
    if isinstance(base, SeededPerTrial):
        base.apart = True
    try:
        yield
    finally:
        if isinstance(base, SeededPerTrial):
            base.apart = False


@contextmanager
def fixed_family(study: optuna.Study, params: Mapping[str, Any]) -> Iterator[None]:
    """Within, the values that the trials of ``study`` suggest keep ``params``; Optuna's sampler
    draws the rest, each trial with its own sampler. A trial taken from the study's queue (a
    default, a setting cut short) keeps its own parameters, as Optuna keeps them."""
    base = study.sampler
    study.sampler = optuna.samplers.PartialFixedSampler(dict(params), base)
    try:
        yield
    finally:
        study.sampler = base


@contextmanager
def beating(storage: SteadyStorage, trials: Sequence[optuna.Trial]) -> Iterator[None]:
    """Record a heartbeat for each of ``trials`` as Optuna's ``optimize`` does for its own,
    so that no worker takes them for a dead worker's while they train: all in one
    transaction, rather than one each."""
    interval = storage.get_heartbeat_interval() if trials else None
    if interval is None:
        yield
        return
    done = threading.Event()

    def beat() -> None:
        while True:
            # Optuna's Trial has no public id; its own optimize beats by this one too.
            storage.record_heartbeats([trial._trial_id for trial in trials])
            if done.wait(interval):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
