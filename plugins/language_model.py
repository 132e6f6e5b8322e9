"""``tinylm``: a small causal transformer that predicts the next byte of Python source, the kind
of model whose optimizer and schedule matter most, sized so that a trial takes seconds on a CPU.

Its text is the source of the running Python's standard library: its top-level modules, in the
order of their names. No download, and the same bytes on every machine with that Python. Each
file belongs to training, validation or test by a hash of its name, so that a file's part does
not depend on which other modules a Python version has. The loss is the cross-entropy of the
next byte in nats, averaged over every byte of a window: nats per byte.
"""

from __future__ import annotations

import sysconfig
import zlib
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from tuner import Choice, Metric, Open, Task, TaskSpec, hookimpl

CONTEXT = 64
WIDTH = 64
HEADS = 4
LAYERS = 2
BYTES = 256
# One file in ten validates and one in ten tests: 0.5 and 0.7 MB of the 4.7 MB of Python 3.11.
PARTS = {0: "valid", 1: "test"}
# Windows that an eval reads, evenly spread over the validation files. Every eval of every
# trial reads them, so they are few: 8 KB, an eval costing about what 8 training steps do,
# where all 0.5 MB of the validation files would cost 500.
VALID_WINDOWS = 128
TEST_WINDOWS = 2048


@hookimpl
def tuner_register_tasks(register: Callable[[TaskSpec], None]) -> None:
    register(
        TaskSpec(
            "tinylm",
            build=build_tinylm,
            description=(
                f"a causal transformer ({LAYERS} layers, width {WIDTH}, {HEADS} heads, "
                f"context {CONTEXT}) predicting the next byte of this Python's standard library"
            ),
            # Searched only when --space names them: tinylm.layers=1,2,3, tinylm.dropout=0,0.1
            space={
                "layers": Choice((1, 2, 3), limits=(1, 12)),
                "dropout": Choice((0.0, 0.1, 0.2), limits=(0.0, Open(1.0))),
            },
        )
    )


def corpus_files() -> list[Path]:
    """The standard library's top-level modules, sorted by name."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    # _sysconfigdata_* records how this Python was built (its paths and flags): two builds of
    # one version differ there.
    return sorted(p for p in stdlib.glob("*.py") if not p.name.startswith("_sysconfigdata"))


def part_of(path: Path) -> str:
    """``train``, ``valid`` or ``test``: where the file goes, by a hash of its name alone."""
    return PARTS.get(zlib.crc32(path.name.encode()) % 10, "train")


def windows(part: str, limit: int | None = None) -> tuple[mx.array, mx.array]:
    """The bytes of ``part``'s files in windows of ``CONTEXT``, and each byte's successor.

    The windows follow one another through the files' bytes end to end; ``limit`` keeps that
    many, evenly spread.
    """
    files = [path for path in corpus_files() if part_of(path) == part]
    data = np.frombuffer(b"".join(path.read_bytes() for path in files), dtype=np.uint8)
    starts = np.arange(0, len(data) - CONTEXT, CONTEXT)
    if limit is not None and limit < len(starts):
        starts = starts[np.linspace(0, len(starts) - 1, limit).round().astype(np.int64)]
    rows = data[starts[:, None] + np.arange(CONTEXT + 1)]
    return mx.array(rows[:, :-1]), mx.array(rows[:, 1:])


class TinyLM(nn.Module):
    """Byte and position embeddings, MLX's pre-norm transformer encoder under a causal mask,
    and a linear read-out to the next byte's logits."""

    def __init__(self, layers: int = LAYERS, dropout: float = 0.0) -> None:
        super().__init__()
        self.embedding = nn.Embedding(BYTES, WIDTH)
        self.position = nn.Embedding(CONTEXT, WIDTH)
        self.encoder = nn.TransformerEncoder(layers, WIDTH, HEADS, dropout=dropout)
        self.out = nn.Linear(WIDTH, BYTES)

    def __call__(self, x: mx.array) -> mx.array:
        length = x.shape[1]
        h = self.embedding(x) + self.position(mx.arange(length))
        mask = nn.MultiHeadAttention.create_additive_causal_mask(length)
        return self.out(self.encoder(h, mask))


def nats_per_byte(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
    return nn.losses.cross_entropy(model(x), y, reduction="mean")


def next_byte_accuracy(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
    return mx.mean(mx.argmax(model(x), axis=-1) == y)


def build_tinylm() -> Task:
    return Task(
        model=TinyLM,
        train=windows("train"),
        valid=windows("valid", VALID_WINDOWS),
        loss=nats_per_byte,
        metrics={"accuracy": Metric(next_byte_accuracy, "maximize")},
        steps=150,
        batch_size=16,
        eval_every=50,
        test=lambda: windows("test", TEST_WINDOWS),
    )
