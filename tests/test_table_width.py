"""Every table a person reads fits the terminal, or 100 columns when piped, on a study made by
a real `tuner search`, and `--wide` shows the tables whole."""

import json
from dataclasses import replace

import pytest
from helpers import printed
from on_a_terminal import answer

from tuner.cli.trials import confirmation_table, trial_table
from tuner.compare import judge_confirmed
from tuner.plugins import load_plugins
from tuner.query import FINISHED
from tuner.results import Confirmed, Outcome, Run, TrialSummary

WIDTH = 100
# The optimizers and schedules with the most settings, so that the tables are at their widest.
SEARCH = ["search", "--task", "synthetic", "--optimizers", "adamw,sgd,lion"]
SEARCH += ["--schedules", "linear,step,cosine", "--trials", "12", "--study", "wide"]


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """The storage URL, and what the search printed."""
    url = f"sqlite:///{tmp_path_factory.mktemp('width') / 'tuner.db'}"
    return url, printed(*SEARCH, "--storage", url)


@pytest.fixture(scope="module")
def trials(search):
    url, _ = search
    return json.loads(printed("trials", "wide", "--storage", url, "--format", "json"))


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

    assert too_wide(printed(*command, "--storage", url)) == []


def test_every_trial_page_fits_100_columns(search, trials):
    url, _ = search

    for trial in trials:
        assert too_wide(printed("show", "wide", str(trial["number"]), "--storage", url)) == []


def test_the_leaderboard_of_a_search_and_its_confirmation_fit_100_columns(search):
    _, out = search
    leaderboard, confirmed = out.split("\n\n")[:2]

    assert leaderboard.startswith("Top ")
    assert confirmed.startswith("Confirmed: ")
    assert too_wide(leaderboard) == too_wide(confirmed) == []


def test_the_plugins_table_fits_100_columns_and_shows_every_search_space():
    out = printed("plugins")
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

    found = rows(printed("best", "wide", "-n", "12", "--storage", url))

    assert set(found) == {t["number"] for t in finished}
    for trial in finished:
        text = " ".join(found[trial["number"]])
        assert all(f"{key}=" in text for key in settings_keys(trial)), (trial, text)


def test_wide_tables_are_whole_and_one_line_a_row(search, trials):
    url, _ = search
    finished = [t for t in trials if t["outcome"] in FINISHED]

    best = printed("best", "wide", "-n", "12", "--storage", url, "--wide")
    found = rows(best)
    listed = printed("trials", "wide", "--storage", url, "--wide")
    plugins = printed("plugins", "--wide")
    page = printed("show", "wide", "0", "--storage", url, "--wide")

    assert too_wide(best) and "…" not in best
    for trial in finished:
        (row,) = found[trial["number"]]
        assert all(f"{key}=" in row for key in settings_keys(trial)), (trial, row)
    assert too_wide(listed)
    data = json.loads(printed("plugins", "--format", "json"))
    for entry in data["optimizers"] + data["schedules"] + data["tasks"]:
        assert f"  {entry['description']}" in plugins
    command = json.loads(printed("show", "wide", "0", "--storage", url, "--format", "json"))
    assert f"\ncommand     {command['provenance']['command']}\n" in page


def test_a_confirmation_of_the_longest_names_and_two_test_metrics_fits_100_columns():
    registry = load_plugins()
    optimizer = max(registry.optimizers, key=len)
    schedule = max(registry.schedules, key=len)
    trial = TrialSummary(
        number=1234, outcome=Outcome.COMPLETE, value=0.123456789, optimizer=optimizer,
        schedule=schedule, params={"lr": 0.000123456, "warmup": 0.05}, duration_s=1.5,
        steps=300, metrics={"accuracy": 0.987654}, reason=None, default=None,
        finished_at=None, population=None,
    )  # fmt: skip
    runs = [
        Run(seed, Outcome.COMPLETE, 0.1234567 + seed * 0.00123457, 300, 1.5,
            {"accuracy": 0.98}, {"accuracy": 0.987654321, "val_loss": 0.123456789}, None)
        for seed in range(3)
    ]  # fmt: skip
    confirmed = judge_confirmed("s", "val_loss", "minimize", [Confirmed(trial, runs)] * 2)

    assert too_wide(confirmation_table(confirmed)) == []


def test_a_trial_table_of_the_longest_names_fits_an_80_column_terminal():
    registry = load_plugins()
    optimizer = max(registry.optimizers, key=len)
    trial = TrialSummary(
        number=1234, outcome=Outcome.COMPLETE, value=0.123456789, optimizer=optimizer,
        schedule=max(registry.schedules, key=len), params={"lr": 0.000123456, "warmup": 0.05},
        duration_s=1.5, steps=300, metrics={"accuracy": 0.987654}, reason=None, default=None,
        finished_at=None, population=None,
    )  # fmt: skip

    fitted = trial_table([trial], "val_loss", 80)

    assert max(len(line) for line in fitted.splitlines()) <= 80
    assert optimizer[:6] in fitted


def test_a_reason_is_never_cut_to_its_column():
    trial = TrialSummary(
        number=7, outcome=Outcome.PRUNED, value=0.5, optimizer="schedule_free_adamw",
        schedule="constant", params={"lr": 0.01, "schedule_free_adamw.beta1": 0.9},
        duration_s=0.2, steps=50, metrics={}, reason="pruned at step 50 by the quartile pruner",
        default=None, finished_at=None, population=None,
    )  # fmt: skip
    wide = [replace(trial, metrics={f"metric_{i}": 0.123456 for i in range(1)})]

    shown = trial_table(wide, "val_loss")

    assert too_wide(shown) == []
    assert "pruned at step 50 by the quartile pruner" in shown


def on_a_terminal(columns, *args):
    out, status = answer(args, b"", None, columns=columns)
    assert status == 0, out
    return out.replace("\r\n", "\n")


def test_on_a_terminal_a_table_fills_its_width(search):
    url, _ = search
    best = ["best", "wide", "-n", "12", "--storage", url]
    whole = printed(*best, "--wide")
    widest = max(len(line) for line in whole.splitlines())

    wide = on_a_terminal(widest, *best)
    narrow = on_a_terminal(80, *best)
    hundred = on_a_terminal(100, *best)

    assert widest > 100
    assert wide == whole
    assert hundred == printed(*best)
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert narrow != hundred


def test_on_a_terminal_the_leaderboard_of_a_search_fills_its_width(tmp_path):
    search = [*SEARCH, "--confirm", "0", "--storage", f"sqlite:///{tmp_path / 'tuner.db'}"]
    printed(*search)
    whole = printed("best", "wide", "-n", "5", "--storage", search[-1], "--wide")
    widest = max(len(line) for line in whole.splitlines())

    # The study is full: the search says so, and shows its leaderboard.
    out = on_a_terminal(widest, *search)

    assert widest > 100
    assert whole.split("\n", 1)[1] in out
