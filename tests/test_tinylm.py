"""The ``tinylm`` task: its corpus is this Python's standard library split by file, the same in
every build; its model is causal; its loss is nats per byte; and a search trains it with every
built-in optimizer and schedule."""

import json
import math
import sysconfig
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from click.testing import CliRunner

from tuner.cli import cli
from tuner.plugins import BUILTIN, load_plugins
from tuner_builtins import language_model

REGISTRY = load_plugins()


@pytest.fixture(scope="module")
def task():
    return language_model.build_tinylm()


def test_the_corpus_is_every_top_level_module_of_this_pythons_stdlib_by_name():
    stdlib = Path(sysconfig.get_paths()["stdlib"])

    files = language_model.corpus_files()

    assert files == sorted(files) and {p.parent for p in files} == {stdlib}
    assert {p.name for p in files} | {p.name for p in stdlib.glob("_sysconfigdata*.py")} == {
        p.name for p in stdlib.glob("*.py")
    }
    assert {"os.py", "typing.py", "this.py"} <= {p.name for p in files}


def test_a_files_part_depends_on_its_name_alone_and_each_part_has_files():
    files = language_model.corpus_files()
    parts = [language_model.part_of(p) for p in files]

    assert [language_model.part_of(Path("/elsewhere") / p.name) for p in files] == parts
    assert {part: parts.count(part) > 5 for part in ("train", "valid", "test")} == {
        "train": True,
        "valid": True,
        "test": True,
    }
    assert parts.count("train") > 0.7 * len(files)


def test_the_windows_are_each_parts_bytes_end_to_end_with_their_successors():
    files = [p for p in language_model.corpus_files() if language_model.part_of(p) == "valid"]
    data = np.frombuffer(b"".join(p.read_bytes() for p in files), dtype=np.uint8)

    x, y = (np.array(a) for a in language_model.windows("valid"))

    assert x.shape == y.shape == ((len(data) - 1) // language_model.CONTEXT, language_model.CONTEXT)
    np.testing.assert_array_equal(x.reshape(-1), data[: x.size])
    np.testing.assert_array_equal(y.reshape(-1), data[1 : x.size + 1])


def test_a_limit_spreads_the_windows_it_keeps_over_the_whole_part():
    every, _ = language_model.windows("test")
    kept, _ = language_model.windows("test", 10)

    rows = [np.array(r).tobytes() for r in every]
    positions = [rows.index(np.array(r).tobytes()) for r in kept]
    assert positions[0] == 0 and positions[-1] == len(rows) - 1
    assert positions == sorted(positions)


def test_train_valid_and_test_share_no_file_and_build_the_same_each_time(task):
    again = language_model.build_tinylm()

    for ours, theirs in zip(
        [*task.train, *task.valid, *task.test()],
        [*again.train, *again.valid, *again.test()],
        strict=True,
    ):
        assert mx.array_equal(ours, theirs).item()
    assert task.valid[0].shape == (language_model.VALID_WINDOWS, language_model.CONTEXT)
    assert task.test()[0].shape == (language_model.TEST_WINDOWS, language_model.CONTEXT)
    assert task.train[0].dtype == mx.uint8


def test_the_model_is_causal_and_starts_near_a_uniform_guess(task):
    mx.random.seed(0)
    model = task.model()
    x, y = (part[:4] for part in task.valid)
    changed = mx.concatenate([x[:, :40], 255 - x[:, 40:]], axis=1)

    logits, altered = model(x), model(changed)

    assert logits.shape == (4, language_model.CONTEXT, 256)
    assert mx.allclose(logits[:, :40], altered[:, :40], atol=1e-5).item()
    assert not mx.allclose(logits[:, 40:], altered[:, 40:]).item()
    assert task.loss(model, x, y).item() == pytest.approx(math.log(256), rel=0.05)


def test_the_loss_is_nats_per_byte_and_accuracy_the_share_of_bytes_guessed(task):
    mx.random.seed(0)
    model = task.model()
    x, y = (np.array(part[:4]) for part in task.valid)
    logits = np.array(model(mx.array(x)), dtype=np.float64)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    by_hand = -np.take_along_axis(log_p, y[..., None], -1).mean()

    loss = task.loss(model, mx.array(x), mx.array(y)).item()
    accuracy = task.metrics["accuracy"].fn(model, mx.array(x), mx.array(y)).item()

    assert loss == pytest.approx(by_hand, rel=1e-5)
    assert accuracy == pytest.approx((logits.argmax(-1) == y).mean())
    assert task.metrics["accuracy"].direction == "maximize"


OPTIMIZERS = [
    n for n in REGISTRY.optimizers if REGISTRY.plugin_of("optimizer", n).source == BUILTIN
]
SCHEDULES = [n for n in REGISTRY.schedules if REGISTRY.plugin_of("schedule", n).source == BUILTIN]
# Each optimizer once, with the schedules in turn: every schedule meets at least one.
PAIRS = [(name, SCHEDULES[i % len(SCHEDULES)]) for i, name in enumerate(OPTIMIZERS)]


def test_the_pairs_meet_every_optimizer_and_schedule():
    assert {o for o, _ in PAIRS} == set(OPTIMIZERS) and {s for _, s in PAIRS} == set(SCHEDULES)


@pytest.mark.parametrize(("optimizer", "schedule"), PAIRS)
def test_tuner_search_trains_tinylm_with_each_builtin(tmp_path, monkeypatch, optimizer, schedule):
    # Its evals are most of a four-step trial: on MLX's bundled BLAS, a second each.
    monkeypatch.setattr(language_model, "VALID_WINDOWS", 16)
    storage = f"sqlite:///{tmp_path / 'tuner.db'}"
    result = CliRunner().invoke(
        cli,
        [
            *("search", "--task", "tinylm", "--storage", storage, "--study", "t"),
            *("--optimizers", optimizer, "--schedules", schedule, "--trials", "1"),
            *("--steps", "4", "--batch-size", "2", "--eval-every", "2", "--confirm", "0"),
            *("--space", "lr=1e-3", "--quiet"),
        ],
    )
    assert result.exit_code == 0, result.output

    shown = CliRunner().invoke(cli, ["show", "t", "0", "--storage", storage, "--format", "json"])
    trial = json.loads(shown.stdout)
    assert (trial["outcome"], trial["steps"], trial["compiled"]) == ("complete", 4, True)
    assert trial["reason"] is None
    assert math.isfinite(trial["metrics"]["val_loss"]) and "accuracy" in trial["metrics"]
