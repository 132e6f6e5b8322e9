import math
from hashlib import sha256
from pathlib import Path

import mlx.core as mx
import numpy as np
import optuna
import pytest
from click.testing import CliRunner

from tuner.cli import cli
from tuner.plugins import load_plugins
from tuner_builtins import tasks

PLUGINS = Path(__file__).parent / "search_plugins"


@pytest.fixture(scope="module")
def digits():
    return tasks.build_digits()


def test_builtin_tasks_are_registered():
    registry = load_plugins()
    assert {"digits", "synthetic"} <= set(registry.tasks)
    assert registry.plugin_of("task", "digits").source == "built-in"


# What sklearn.datasets.load_digits(return_X_y=True) gave (scikit-learn 1.9.1): the sha256 of
# its pixel counts and of its labels, each as bytes (uint8), and the first image's first row.
SKLEARN_PIXELS = "8f26b2bd9d135c256808f68f14fdabddde6d9c7f869ae419704b051f0f14b3b3"
SKLEARN_LABELS = "8ba4f891220f5e4c9c819638d1602d74b83618f167043c6da52a2a247841ddf0"
SKLEARN_FIRST_ROW = [0, 0, 5, 13, 9, 1, 0, 0]


def test_digits_are_the_images_sklearn_loads_scaled_to_0_1():
    x, y = tasks.load_digits()
    counts = x * 16.0

    assert np.array_equal(counts, np.round(counts))
    assert sha256(counts.astype(np.uint8).tobytes()).hexdigest() == SKLEARN_PIXELS
    assert sha256(y.astype(np.uint8).tobytes()).hexdigest() == SKLEARN_LABELS
    assert counts[0, :8].tolist() == SKLEARN_FIRST_ROW
    assert y[:10].tolist() == list(range(10))
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0


def test_digits_ship_with_tuner_beside_their_licence():
    notice = (tasks.DIGITS_FILE.parent / "digits.NOTICE").read_text()

    assert tasks.DIGITS_FILE.parent == Path(tasks.__file__).parent
    assert "BSD 3-Clause License" in notice and "scikit-learn developers" in notice


def test_digits_split_is_stratified_disjoint_and_complete():
    _, y = tasks.load_digits()
    train, valid = tasks.stratified_split(y, 0.2, seed=0)
    assert not set(train) & set(valid)
    assert len(train) + len(valid) == len(y) == 1797
    for label in range(10):
        assert (y[valid] == label).sum() == round((y == label).sum() * 0.2)


def test_digits_task_shapes_and_defaults(digits):
    (x, y), (vx, vy), (tx, ty) = digits.train, digits.valid, digits.test()
    assert x.shape == (1151, 64) and y.shape == (1151,)
    assert vx.shape == (287, 64) and vy.shape == (287,)
    assert tx.shape == (359, 64) and ty.shape == (359,)
    assert x.dtype == mx.float32 and y.dtype == mx.int32
    assert (digits.steps, digits.batch_size, digits.eval_every) == (300, 64, 50)
    assert digits.metrics["accuracy"].direction == "maximize"


def test_digits_split_is_the_same_in_every_build(digits):
    again = tasks.build_digits()
    for ours, theirs in zip(
        [*digits.train, *digits.valid, *digits.test()],
        [*again.train, *again.valid, *again.test()],
        strict=True,
    ):
        assert mx.array_equal(ours, theirs)


def rows(x, y):
    """Each image with its label, as sorted rows: a multiset that comparison can read."""
    table = np.column_stack([np.asarray(x), np.asarray(y)])
    return table[np.lexsort(table.T[::-1])]


def test_digits_train_valid_and_test_share_no_image_and_use_every_one(digits):
    parts = [digits.train, digits.valid, digits.test()]
    used = rows(*(np.concatenate([np.asarray(part[i]) for part in parts]) for i in (0, 1)))
    np.testing.assert_array_equal(used, rows(*tasks.load_digits()))


def test_digits_test_set_is_stratified(digits):
    _, y = tasks.load_digits()
    test_y = np.asarray(digits.test()[1])
    for label in range(10):
        assert (test_y == label).sum() == round((y == label).sum() * tasks.TEST_FRACTION)


def test_digits_model_loss_and_accuracy(digits):
    mx.random.seed(0)
    model = digits.model()
    vx, vy = digits.valid
    assert model(vx[:5]).shape == (5, 10)
    loss = digits.loss(model, vx, vy).item()
    assert math.isclose(loss, math.log(10), rel_tol=0.2)
    assert 0.0 <= digits.metrics["accuracy"].fn(model, vx, vy).item() <= 1.0


def test_synthetic_is_small_deterministic_regression():
    task, again = tasks.build_synthetic(), tasks.build_synthetic()
    (x, y), (vx, vy), (tx, ty) = task.train, task.valid, task.test()
    assert x.shape == (512, 8) and vx.shape == (128, 8) and y.shape == (512,)
    assert tx.shape == (128, 8) and ty.shape == (128,)
    assert mx.array_equal(x, again.train[0]) and mx.array_equal(vy, again.valid[1])
    assert mx.array_equal(tx, again.test()[0]) and mx.array_equal(ty, again.test()[1])
    seen = {tuple(row) for row in np.concatenate([np.asarray(x), np.asarray(vx)]).tolist()}
    assert not seen & {tuple(row) for row in np.asarray(tx).tolist()}
    mx.random.seed(0)
    model = task.model()
    assert model(vx).shape == (128, 1)
    assert task.loss(model, vx, vy).shape == ()
    assert task.metrics["r2"].fn(model, vx, vy).item() < 1.0


def test_a_search_never_reads_the_test_set(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tuner.db'}"
    result = CliRunner().invoke(
        cli,
        [
            "search",
            "--storage",
            storage,
            "--task",
            "sealed",
            "--trials",
            "4",
            "--study",
            "sealed",
            "--optimizers",
            "adam,sgd",
            "--schedules",
            "constant,cosine",
            # Confirmation runs do read the test set, after the search: that is their job.
            "--confirm",
            "0",
            "--plugin",
            PLUGINS / "sealed_test_set.py",
        ],
    )

    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="sealed", storage=storage)
    states = {t.state for t in study.trials}
    assert len(study.trials) == 4
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
