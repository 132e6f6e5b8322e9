"""A new study tries its optimizers' known-good settings before it samples."""

import json
from pathlib import Path

import pytest
from helpers import UNCONFIRMED, succeeded

from tuner.params import Choice, Float, Int

PLUGINS = Path(__file__).parent / "search_plugins"
ADAM = {"optimizer": "adam", "lr": 1e-3, "warmup": 0.0, "schedule": "constant"}
ADAM |= {"adam.beta1": 0.9, "adam.beta2": 0.999, "adam.bias_correction": True}
SGD = {"optimizer": "sgd", "lr": 0.1, "warmup": 0.0, "schedule": "cosine"}
SGD |= {"sgd.momentum": 0.9, "sgd.nesterov": False, "sgd.weight_decay": 1e-4}
SGD |= {"cosine.end_factor": 0.0}
SGD_SOURCE = "He et al. 2016, cosine of Loshchilov & Hutter 2017"


def trials(storage, study):
    return json.loads(succeeded("trials", study, "--storage", storage, "--format", "json"))


def test_the_defaults_run_first_and_are_marked(sqlite_url):
    succeeded("search", "--storage", sqlite_url, *UNCONFIRMED, "--trials", "4", "--study", "d")

    found = trials(sqlite_url, "d")
    table = succeeded("trials", "d", "--storage", sqlite_url)

    assert [t["params"] for t in found[:2]] == [ADAM, SGD]
    assert [t["default"] for t in found] == ["Kingma & Ba 2015", SGD_SOURCE, None, None]
    assert "default (Kingma & Ba 2015): beta1=0.9 beta2=0.999 bias_correction=true" in " ".join(
        table.split()
    )


def test_no_defaults_samples_from_the_first_trial(sqlite_url):
    succeeded(
        "search",
        "--storage",
        sqlite_url,
        *UNCONFIRMED,
        "--trials",
        "3",
        "--study",
        "n",
        "--no-defaults",
    )

    found = trials(sqlite_url, "n")

    assert [t["default"] for t in found] == [None] * 3
    assert found[0]["params"] not in (ADAM, SGD)


def test_a_default_outside_the_space_asked_for_is_left_out(sqlite_url):
    narrowed = ["--space", "lr=1e-2..1:log", "--trials", "2", "--study", "w"]
    succeeded("search", "--storage", sqlite_url, *UNCONFIRMED, *narrowed)

    found = trials(sqlite_url, "w")

    assert found[0]["params"] == SGD
    assert found[1]["default"] is None


def test_a_continued_study_tries_its_defaults_once(sqlite_url):
    succeeded("search", "--storage", sqlite_url, *UNCONFIRMED, "--trials", "3", "--study", "c")
    succeeded("search", "--storage", sqlite_url, "--trials", "5", "--study", "c", "--confirm", "0")

    assert [t["default"] is not None for t in trials(sqlite_url, "c")] == [True, True] + [False] * 3


def test_a_plugin_declares_its_own_default(sqlite_url):
    plugin = ["--plugin", PLUGINS / "halving_default.py", "--optimizers", "plainsgd"]
    succeeded("search", "--storage", sqlite_url, "--task", "synthetic", *plugin, "--trials", "2")
    (study,) = json.loads(succeeded("studies", "--storage", sqlite_url, "--format", "json"))

    first = trials(sqlite_url, study["name"])[0]

    assert first["default"] == "this plugin's authors"
    assert first["params"]["plainsgd.momentum"] == 0.5


@pytest.mark.parametrize(
    ("param", "inside", "outside"),
    [
        (Float(1e-4, 1.0, log=True), [1e-4, 0.5, 1], [0.0, 2.0, float("nan"), "0.5", True]),
        (Int(1, 3), [1, 3], [0, 4, 2.0, True]),
        (Choice((False, True)), [False, True], [0, 1, "False"]),
        (Choice((0.0, 0.05)), [0.0, 0.05, 0], [False, 0.1]),
    ],
)
def test_a_parameter_says_which_values_it_holds(param, inside, outside):
    assert all(value in param for value in inside)
    assert not any(value in param for value in outside)
