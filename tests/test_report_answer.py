"""The first box of `tuner report`: the answer to the search, and the commands to run next,
read in headless Chromium as a user reads them, and run as a user who pasted them would.

Without a browser these tests skip and say why; under CI (CI=true) they fail instead."""

import os
import subprocess

import pytest
from browser import Opened, chromium
from helpers import FAST, TUNER

from tuner import open_results
from tuner.report.answer import headline
from tuner.report.study_page import MIN_FOR_IMPORTANCE

# Six trials of ten steps: a report with something in it, soon.
SHORT = [*FAST, "--steps", "10", "--eval-every", "5", "--trials", "6"]
# A name that a shell would split, or whose quote would end its word, unquoted.
CONFIRMED = "it's confirmed"
# As a user who installed tuner runs it: by name, from PATH.
PATH = {**os.environ, "PATH": f"{TUNER.parent}{os.pathsep}{os.environ['PATH']}"}


def run(folder, *args):
    done = subprocess.run(
        [TUNER, *args], cwd=folder, env=PATH, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """A study whose best configurations were confirmed, and one that was not, each reported."""
    folder = tmp_path_factory.mktemp("answer")
    url = f"sqlite:///{folder / 'tuner.db'}"
    made = ["--study", CONFIRMED, "--confirm", "2x2", "--pruner", "none", "--storage", url]
    run(folder, "search", *SHORT, *made)
    run(folder, "search", *SHORT, "--study", "plain", "--confirm", "0", "--storage", url)
    for name, out in ((CONFIRMED, "confirmed.html"), ("plain", "plain.html")):
        run(folder, "report", name, "-o", out, "--storage", url)
    return url, folder


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


def box(browser, path):
    """The opened page, and the text of its first box."""
    opened = Opened(browser, path)
    assert opened.errors == [] and opened.requests == []
    first = opened.page.evaluate("document.querySelector('section').id")
    assert first == "answer"
    return opened, opened.text("#answer")


def test_the_first_box_of_a_confirmed_study_names_the_confirmed_winner(studies, browser):
    url, folder = studies
    with open_results(url) as results:
        confirmation = results.confirmation(CONFIRMED)
        best = results.best(CONFIRMED, 1)[0]
    winner = confirmation.winner.trial

    opened, text = box(browser, folder / "confirmed.html")

    title = f"{headline(confirmation)}: trial {winner.number}, {winner.optimizer}+{winner.schedule}"
    assert text.startswith(title + "\n")
    assert confirmation.verdict in text and f"p = {confirmation.p_value:.2g}" in text
    assert f"over {len(confirmation.winner.values)} seeds" in text
    # The search's best trial is named only as such, beside where it came once confirmed.
    if best.number != winner.number:
        assert f"The search's best trial, {best.number} (" in text
    assert "Best" not in opened.text(".lead")
    settings = dict(
        opened.page.evaluate(
            "[...document.querySelectorAll('#answer table.settings tr')]"
            ".map(r => [...r.cells].map(c => c.innerText))"
        )
    )
    assert settings["optimizer"] == winner.optimizer and settings["schedule"] == winner.schedule
    assert float(settings["lr"]) == pytest.approx(winner.lr, rel=1e-3)


def test_the_first_box_of_an_unconfirmed_study_says_so(studies, browser):
    url, folder = studies
    with open_results(url) as results:
        best = results.best("plain", 1)[0]
        verdict = results.compare("plain").verdict

    _, text = box(browser, folder / "plain.html")

    title = f"Best trial, unconfirmed: trial {best.number}, {best.optimizer}+{best.schedule}"
    assert text.startswith(title + "\n")
    assert "from one seed: no confirmation run has trained it again" in text
    assert "no p-value yet" in text and verdict in text


def test_a_study_below_the_importance_threshold_says_why_it_draws_none(studies, browser):
    url, folder = studies
    with open_results(url) as results:
        trials = results.trials("plain")
    sampled = sum(t.outcome == "complete" and t.default is None for t in trials)
    defaults = sum(t.outcome == "complete" and t.default is not None for t in trials)

    opened = Opened(browser, folder / "plain.html")

    assert not {"importances", "parallel-adam", "parallel-sgd"} & set(opened.figures())
    assert opened.text("#importance").splitlines()[-1] == (
        f"No importances or parallel coordinates: they need {MIN_FOR_IMPORTANCE} complete "
        f"trials sampled by the search, and study plain has {sampled}, beside {defaults} "
        "complete textbook defaults, tried first at fixed points, which do not count. With "
        "fewer, they describe the sample more than the settings; tuner search --study plain "
        "adds trials."
    )


def test_the_commands_in_the_box_run_as_written(studies, browser):
    url, folder = studies
    opened = Opened(browser, folder / "confirmed.html")
    commands = opened.page.evaluate(
        "[...document.querySelectorAll('#answer .command code')].map(c => c.innerText)"
    )
    with open_results(url) as results:
        winner = results.confirmation(CONFIRMED).winner.trial
        top = results.best(CONFIRMED, 5)
        before = results.study_names()

    assert [c.split()[:2] for c in commands] == [
        ["tuner", "export"],
        ["tuner", "confirm"],
        ["tuner", "search"],
    ]
    ran = [
        subprocess.run(
            ["bash", "-c", line], cwd=folder, env=PATH, capture_output=True, text=True, timeout=300
        )
        for line in commands
    ]

    assert [r.returncode for r in ran] == [0, 0, 0], [r.stderr for r in ran]
    assert f"# Trial {winner.number} of study {CONFIRMED} " in ran[0].stdout
    assert "optimizer = " in ran[0].stdout
    with open_results(url) as results:
        confirmation = results.confirmation(CONFIRMED)
        (narrowed,) = set(results.study_names()) - set(before)
        settings = results.settings(narrowed)
        space = settings["space"]
        searched = results.study(narrowed)
    assert [len(config.runs) for config in confirmation.configs] == [5, 5]
    complete = [t for t in top if t.outcome == "complete"]
    assert set(space["optimizers"]) == {t.optimizer for t in complete}
    assert set(space["schedules"]) == {t.schedule for t in complete}
    low, high = space["lr"]["low"], space["lr"]["high"]
    assert low < min(t.lr for t in complete) and max(t.lr for t in complete) < high
    assert searched.task == "synthetic" and searched.counts.finished == 6
    assert (settings["steps"], settings["pruner"]) == (10, "none")
