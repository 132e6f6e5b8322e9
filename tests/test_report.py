"""`tuner report` and `tuner schedule --plot` on real searches, opened in headless Chromium
(Debian's, driven by playwright) with every request but the file's refused: no console error,
every figure drawn with the study's data, a screenshot that is not blank. Then the reports of
studies with nothing to draw, and bad input, which writes nothing.

Without a browser these tests skip and say why; under CI (CI=true) they fail instead."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from browser import Opened, chromium, not_blank
from click.testing import CliRunner
from helpers import tuner

from tuner import open_results
from tuner.cli import cli

# Lion beside Adam and SGD: a report of three optimizers.
WITH_LION = ["--task", "synthetic", "--optimizers", "adam,sgd,lion"]
WITH_LION += ["--schedules", "constant,cosine"]
NEVER_BUILDS = Path(__file__).parent / "search_plugins" / "never_builds.py"


def search(storage, *args):
    result = tuner("search", *args, storage=storage)
    assert result.exit_code in (0, 1), result.output
    return result


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """A real search with confirmation runs, trained in populations, a second seed of it (too
    few complete trials for importances), an empty study and one whose trials all failed, in
    one file."""
    folder = tmp_path_factory.mktemp("report")
    url = f"sqlite:///{folder / 'tuner.db'}"
    # No trial pruned, none a textbook default, in populations of 4. A seed under which each
    # optimizer is sampled and 20 trials complete, enough for the importances; unseeded, as few
    # as 19 of the 26 did, the rest diverging.
    whole = ["--pruner", "none", "--no-defaults", "--population", "4", "--steps", "30"]
    whole += ["--seed", "4"]
    search(url, *WITH_LION, *whole, "--trials", "26", "--study", "s", "--confirm", "2x2")
    search(url, *WITH_LION, "--trials", "16", "--study", "s2", "--seed", "1", "--confirm", "0")
    search(url, *WITH_LION, "--study", "empty", "--timeout", "0.000001")
    failed = search(url, "--task", "broken", "--plugin", NEVER_BUILDS, "--study", "f")
    assert "5 failed trials in a row" in failed.stderr
    return url, folder


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


def report(url, folder, *args):
    out = folder / f"{'-'.join(a for a in args if not a.startswith('-'))}.html"
    result = tuner("report", *args, "-o", str(out), storage=url)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Wrote {out} (") and result.stderr == ""
    return out


def test_a_report_draws_every_figure_offline_with_the_study_s_data(studies, browser):
    url, folder = studies
    path = report(url, folder, "s", "--top", "5")
    with open_results(url) as results:
        trials = results.trials("s")
        complete = results.complete_trials("s")
        verdicts = [results.compare("s").verdict, results.confirmation("s").verdict]
    finished = ("complete", "pruned", "diverged")
    valued = [t for t in trials if t.outcome in finished and math.isfinite(t.value or math.nan)]
    assert len(complete) >= 20

    opened = Opened(browser, path)
    figures = opened.figures()
    shot = opened.page.screenshot(full_page=True)

    assert opened.errors == [] and opened.requests == []
    counts = {o: sum(t.params["optimizer"] == o for t in complete) for o in ("adam", "sgd", "lion")}
    ten = {o for o, n in counts.items() if n >= 10}
    expected = {"history", "by-optimizer", "by-schedule", "confirmation", "curves", "schedules"}
    expected |= {"lr-slice", "importances"} | {f"parallel-{o}" for o in ten}
    assert set(figures) == expected
    assert all(traces > 0 and marks > 0 for traces, marks in figures.values()), figures
    # A point for each finished trial with a value, and the line of the best so far.
    assert figures["history"][1] == len(valued) + 1
    # A point for each, again, against its learning rate.
    assert figures["lr-slice"][1] == len(valued)
    # Five curves of training loss and five of validation, then five schedules.
    assert figures["curves"][0] == 10 and figures["schedules"][0] == 5
    assert path.stat().st_size < 10_000_000
    assert not_blank(shot)
    text = opened.text()
    assert verdicts[0] in text and verdicts[1] in text
    if len(ten) < 3:
        assert "No parallel coordinates for " in text


def test_curves_are_coloured_by_optimizer_and_schedule_with_one_legend_entry_a_pair(
    studies, browser
):
    url, folder = studies
    path = report(url, folder, "s", "--top", "10")
    with open_results(url) as results:
        pairs = [f"{t.optimizer}+{t.schedule}" for t in results.best("s", 10)]

    opened = Opened(browser, path)
    curves = opened.traces("curves")

    colour = {}
    for trace in curves:
        assert colour.setdefault(trace["name"], trace["line"]["color"]) == trace["line"]["color"]
    assert sorted(colour) == sorted(set(pairs))
    assert len(set(colour.values())) == len(colour)
    assert sorted(t["name"] for t in curves if t["showlegend"]) == sorted(set(pairs))


def test_no_legend_covers_its_chart_or_scrolls(studies, browser):
    url, folder = studies
    # Curves of every trial, where one legend entry a trial would scroll.
    opened = Opened(browser, report(url, folder, "s", "--top", "26"))

    overlaps = opened.page.evaluate(
        """[...document.querySelectorAll('.figure')].flatMap(f => {
          const legend = f.querySelector('.legend');
          if (!legend) return [];
          const l = legend.getBoundingClientRect();
          const scrolls = !!legend.querySelector('.scrollbar')
            && legend.querySelector('.scrollbar').getBoundingClientRect().height > 0;
          const covered = [...f.querySelectorAll('.draglayer .nsewdrag')].some(d => {
            const p = d.getBoundingClientRect();
            return l.left < p.right && p.left < l.right && l.top < p.bottom && p.top < l.bottom;
          });
          return covered || scrolls ? [f.dataset.figure] : [];
        })"""
    )

    assert overlaps == []


def test_trials_that_trained_together_are_shown_as_populations(studies, browser):
    url, folder = studies
    with open_results(url) as results:
        trials = results.trials("s")
    populations = {t.population for t in trials if t.population is not None}
    assert len(populations) > 1

    opened = Opened(browser, report(url, folder, "s"))
    layout = opened.page.evaluate(
        "document.querySelector('[data-figure=\"history\"] .plotly-graph-div').layout"
    )

    sizes = {p: sum(t.population == p for t in trials) for p in populations}
    assert len(layout["shapes"]) == len(populations)
    assert sorted(a["text"] for a in layout["annotations"]) == sorted(
        f"population {p} ({n})" for p, n in sizes.items()
    )
    together = sum(t.population is not None for t in trials)
    assert f"{together} trials trained together, in {len(populations)} populations." in (
        opened.text(".lead")
    )


def test_a_report_of_two_studies_compares_them(studies, browser):
    url, folder = studies
    path = report(url, folder, "s", "s2")

    opened = Opened(browser, path)
    figures = opened.figures()

    assert opened.errors == [] and opened.requests == []
    assert set(figures) == {"best-so-far-0", "standings"}
    # Each study's line, and the band's two edges and median.
    assert figures["best-so-far-0"][0] == 2 + 3
    assert all(marks > 0 for _, marks in figures.values())
    with open_results(url) as results:
        verdicts = {name: results.compare(name).verdict for name in ("s", "s2")}
    # Each study's verdict on its leader, whichever it is: which optimizers complete in s2's few
    # trials is the search's to decide.
    assert all(f"{name}: {verdict}" in opened.text() for name, verdict in verdicts.items())


@pytest.mark.parametrize(
    ("study", "says"),
    [
        ("empty", "Study empty has no trials yet: tuner search --study empty runs some."),
        ("f", "No trial of study f completed: all 5 failed. The first reason: RuntimeError"),
    ],
)
def test_a_study_with_nothing_to_draw_is_a_page_that_says_so(studies, browser, study, says):
    url, folder = studies
    path = report(url, folder, study)

    opened = Opened(browser, path)

    assert opened.errors == [] and opened.requests == []
    assert opened.figures() == {}
    assert says in opened.text()
    assert "Leaderboard" in opened.text() and "Provenance" in opened.text()


def test_several_schedule_variants_on_one_plot(tmp_path, browser):
    args = ["schedule", "cosine", "--lr", "0.1", "--steps", "50", "--warmup", "5"]
    variants = ["end_factor=0", "end_factor=0.5"]
    sets = [arg for variant in variants for arg in ("--set", variant)]
    html, png = tmp_path / "cosine.html", tmp_path / "cosine.png"

    drawn = CliRunner().invoke(cli, [*args, *sets, "--plot", str(html)])
    pictured = CliRunner().invoke(cli, [*args, *sets, "--plot", str(png)])
    rates = [
        [
            p["lr"]
            for p in json.loads(
                CliRunner().invoke(cli, [*args, "--set", v, "--format", "json"]).stdout
            )
        ]
        for v in variants
    ]

    assert drawn.stdout == f"Wrote {html}: cosine, 2 variants.\n"
    assert pictured.exit_code == 0 and png.read_bytes().startswith(b"\x89PNG")
    assert not_blank(png.read_bytes())
    opened = Opened(browser, html)
    lines = opened.page.evaluate(
        "[...document.querySelector('.plotly-graph-div').data].map(t => [t.name, Array.from(t.y)])"
    )
    assert opened.errors == [] and opened.requests == []
    assert lines == [[v, pytest.approx(r)] for v, r in zip(variants, rates, strict=True)]


def test_bad_input_writes_nothing(studies, tmp_path):
    url, _ = studies
    kept = tmp_path / "report.html"
    kept.write_text("kept")
    sets = ["--set", "end_factor=0", "--set", "end_factor=1"]
    no = tmp_path / "no"

    typo = tuner("report", "ss", "-o", str(kept), storage=url)
    twice = tuner("report", "s", "s", "-o", str(kept), storage=url)
    nowhere = tuner("report", "s", "-o", str(no / "r.html"), storage=url)
    folder = tuner("report", "s", "-o", str(tmp_path), storage=url)
    missing = tuner("report", "s", "-o", str(kept), storage=f"sqlite:///{tmp_path / 'none.db'}")
    none = tuner("report", storage=url)
    variants = CliRunner().invoke(
        cli,
        ["schedule", "cosine", "--lr", "0.1", "--steps", "9", *sets],
    )
    svg = CliRunner().invoke(
        cli,
        ["schedule", "cosine", "--lr", "0.1", "--steps", "9", "--plot", str(tmp_path / "a.svg")],
    )

    assert typo.stderr == f"Error: no study 'ss' in {url}; did you mean 's'?\n"
    assert twice.stderr == "Error: study 's' is named twice: name each study once\n"
    assert nowhere.stderr == f"Error: cannot write {no / 'r.html'}: there is no folder {no}\n"
    assert folder.stderr == f"Error: cannot write {tmp_path}: it is a folder; give a file's name\n"
    assert missing.stderr.startswith("Error: no database at ")
    assert none.stderr == "Error: Missing argument 'STUDY...'.\n"
    assert variants.stderr == (
        "Error: --set gives 2 variants of end_factor: --plot FILE draws them all; the table and "
        "JSON show one\n"
    )
    assert svg.stderr.startswith("Error: --plot ") and "ending in .png" in svg.stderr
    results = [typo, twice, nowhere, folder, missing, none, variants, svg]
    assert [r.exit_code for r in results] == [2] * len(results)
    assert all(r.stdout == "" for r in results)
    assert kept.read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_a_report_to_stdout(studies):
    url, _ = studies

    result = tuner("report", "empty", "-o", "-", storage=url)

    assert result.exit_code == 0
    assert result.stdout.startswith("<!DOCTYPE html>") and result.stdout.endswith("</html>\n")


@pytest.mark.parametrize(
    ("module", "args", "line"),
    [
        ("plotly", ["report", "s"], "tuner report needs plotly: pip install 'tuner[report]'"),
        (
            "matplotlib",
            ["schedule", "cosine", "--lr", "0.1", "--steps", "9", "--plot", "a.png"],
            "tuner schedule --plot needs matplotlib: pip install 'tuner[report]'",
        ),
        (
            "optuna_dashboard",
            ["dashboard"],
            "tuner dashboard needs optuna-dashboard: pip install 'tuner[dashboard]'",
        ),
    ],
)
def test_without_the_extra_one_line_says_which_to_install(tmp_path, module, args, line):
    # A None in sys.modules makes importing it fail, as where it is not installed.
    code = f"import sys; sys.modules[{module!r}] = None; from tuner.cli import main; main()"
    env = {k: v for k, v in os.environ.items() if k != "TUNER_DEBUG"}

    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=tmp_path, env=env
    )

    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"Error: {line}\n")
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_imports_no_plotly_optuna_sqlalchemy_or_mlx():
    code = "import json, sys, tuner.cli; print(json.dumps([m.split('.')[0] for m in sys.modules]))"

    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout

    assert not {"plotly", "optuna", "sqlalchemy", "mlx", "matplotlib"} & set(json.loads(loaded))
