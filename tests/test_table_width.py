"""Every table a person reads fits 100 columns, on a study made by a real `tuner search`, and
`--wide` shows the tables whole."""

import json

import pytest
from click.testing import CliRunner

from tuner.cli import cli
from tuner.plugins import load_plugins
from tuner.query import FINISHED

WIDTH = 100
# The optimizers and schedules with the most settings, so that the tables are at their widest.
SEARCH = ["--task", "synthetic", "--optimizers", "adamw,sgd,lion"]
SEARCH += ["--schedules", "linear,step,cosine", "--trials", "12", "--study", "wide"]


def tuner(*args):
    result = CliRunner().invoke(cli, [*args], env={"TUNER_DEBUG": None})
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """The storage URL, and what the search printed."""
    url = f"sqlite:///{tmp_path_factory.mktemp('width') / 'tuner.db'}"
    return url, tuner("search", "--storage", url, *SEARCH)


@pytest.fixture(scope="module")
def trials(search):
    url, _ = search
    return json.loads(tuner("trials", "wide", "--storage", url, "--format", "json"))


def too_wide(text):
    return [line for line in text.splitlines() if len(line) > WIDTH]


@pytest.mark.parametrize(
    "command",
    [
        ["studies"],
        ["best", "wide", "-n", "12"],
        ["best", "wide", "--optimizer", "adamw", "--optimizer", "lion", "--schedule", "linear"],
        ["trials", "wide"],
        ["compare", "wide", "--by", "optimizer"],
        ["compare", "wide", "--by", "schedule"],
    ],
)
def test_a_table_fits_100_columns(search, command):
    url, _ = search

    assert too_wide(tuner(*command, "--storage", url)) == []


def test_every_trial_page_fits_100_columns(search, trials):
    url, _ = search

    for trial in trials:
        assert too_wide(tuner("show", "wide", str(trial["number"]), "--storage", url)) == []


def test_the_leaderboard_of_a_search_and_its_confirmation_fit_100_columns(search):
    _, out = search
    leaderboard, confirmed = out.split("\n\n")[:2]

    assert leaderboard.startswith("Top ")
    assert confirmed.startswith("Confirmed: ")
    assert too_wide(leaderboard) == too_wide(confirmed) == []


def test_the_plugins_table_fits_100_columns_and_shows_every_search_space():
    out = tuner("plugins")
    registry = load_plugins()

    assert too_wide(out) == []
    assert "…" in out
    words = out.split()
    for spec in [*registry.optimizers.values(), *registry.schedules.values()]:
        for name, param in spec.space.items():
            assert f"{name}={param}" in words


def settings_keys(trial):
    """The names the table gives the trial's own settings: its optimizer's and schedule's
    parameters without their prefix, and the warmup unless there is none."""
    keys = [
        key.split(".", 1)[1]
        for key in trial["params"]
        if key.split(".")[0] in (trial["optimizer"], trial["schedule"])
    ]
    return keys + (["warmup"] if trial["params"]["warmup"] else [])


def rows(out):
    """Each trial's lines in the first table, by number: its row, and the lines indented
    under it."""
    found = {}
    for line in out.split("\n\n")[0].splitlines():
        if line[:1].isdigit():
            found[int(line.split()[0])] = [line]
        elif line.startswith(" ") and found:
            found[list(found)[-1]].append(line)
    return found


def test_a_fitted_trial_table_loses_no_setting(search, trials):
    url, _ = search
    finished = [t for t in trials if t["outcome"] in FINISHED]

    found = rows(tuner("best", "wide", "-n", "12", "--storage", url))

    assert set(found) == {t["number"] for t in finished}
    for trial in finished:
        text = " ".join(found[trial["number"]])
        assert all(f"{key}=" in text for key in settings_keys(trial)), (trial, text)


def test_wide_tables_are_whole_and_one_line_a_row(search, trials):
    url, _ = search
    finished = [t for t in trials if t["outcome"] in FINISHED]

    best = tuner("best", "wide", "-n", "12", "--storage", url, "--wide")
    found = rows(best)
    listed = tuner("trials", "wide", "--storage", url, "--wide")
    plugins = tuner("plugins", "--wide")
    page = tuner("show", "wide", "0", "--storage", url, "--wide")

    assert too_wide(best) and "…" not in best
    for trial in finished:
        (row,) = found[trial["number"]]
        assert all(f"{key}=" in row for key in settings_keys(trial)), (trial, row)
    assert too_wide(listed)
    data = json.loads(tuner("plugins", "--format", "json"))
    for entry in data["optimizers"] + data["schedules"] + data["tasks"]:
        assert f"  {entry['description']}" in plugins
    command = json.loads(tuner("show", "wide", "0", "--storage", url, "--format", "json"))
    assert f"\ncommand     {command['provenance']['command']}\n" in page
