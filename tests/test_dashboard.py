"""Optuna's own tools see what tuner knows of each trial: its outcome (diverged included),
reason, steps and metrics, as user attributes, and of each study: its task, objective, steps
and confirmed winner with the verdict; `tuner dashboard` serves optuna-dashboard on
the storage, whose API shows them."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import pytest
from helpers import TUNER, tuner
from optuna.trial import TrialState

from tuner import open_results
from tuner.api import dashboard_app
from tuner.reader import from_optuna

POISON = Path(__file__).parent / "search_plugins" / "nan_optimizer.py"


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A short real search on digits, whose metric is accuracy; its poisoned trials diverge."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'tuner.db'}"
    args = ["--task", "digits", "--optimizers", "adam,poison", "--schedules", "constant"]
    args += ["--plugin", str(POISON), "--steps", "60", "--eval-every", "20", "--confirm", "0"]
    result = tuner("search", *args, "--trials", "8", "--study", "d", storage=url)
    assert result.exit_code == 0, result.output
    trials = json.loads(tuner("trials", "d", "--format", "json", storage=url).stdout)
    assert {"complete", "diverged"} <= {trial["outcome"] for trial in trials}
    return url, {trial["number"]: trial for trial in trials}


def attributes(trial):
    """What tuner knows of a trial, as the user attributes it should carry."""
    known = {"outcome": trial["outcome"], "reason": trial["reason"], "steps": trial["steps"]}
    return {**trial["metrics"], **known}


def test_each_trial_carries_tuner_s_knowledge_as_user_attributes(digits):
    url, trials = digits

    frame = optuna.load_study(study_name="d", storage=url).trials_dataframe()
    optuna_cli = Path(sys.executable).with_name("optuna")
    listed = subprocess.run(
        [optuna_cli, "trials", "--study-name", "d", "--storage", url, "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )

    for row in frame.to_dict("records"):
        trial = trials[row["number"]]
        assert row["user_attrs_outcome"] == trial["outcome"]
        assert row["user_attrs_steps"] == trial["steps"]
        if trial["outcome"] == "complete":
            assert row["user_attrs_accuracy"] == pytest.approx(trial["metrics"]["accuracy"])
            assert row["user_attrs_val_loss"] == trial["value"]
        else:
            assert row["user_attrs_reason"] == trial["reason"]
    shown = {trial["number"]: trial["user_attrs"] for trial in json.loads(listed.stdout)}
    for number, trial in trials.items():
        default = {"default": trial["default"]} if trial["default"] else {}
        assert shown[number] == attributes(trial) | default


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@contextmanager
def serving(url, *args):
    """A real ``tuner dashboard`` process on ``url``, once it answers: its address, and the
    process, stopped by Ctrl-C when done, its stdout and stderr then in ``output``."""
    port = free_port()
    server = subprocess.Popen(
        [TUNER, "dashboard", "--storage", url, "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get(f"{base}/api/meta")
                break
            except OSError:
                assert server.poll() is None, server.communicate()
                assert time.monotonic() < deadline, "the dashboard never answered"
                time.sleep(0.2)
        yield base, server
    finally:
        server.send_signal(signal.SIGINT)
        server.output = server.communicate(timeout=30)


def test_optuna_dashboard_lists_a_study_with_the_outcome_and_accuracy_of_its_trials(digits):
    url, trials = digits
    with serving(url) as (base, server):
        studies = get(f"{base}/api/studies")["study_summaries"]
        (study,) = [s for s in studies if s["study_name"] == "d"]
        shown = get(f"{base}/api/studies/{study['study_id']}?after=0")["trials"]
    out, err = server.output

    assert out == f"optuna-dashboard on {url}: {base} (Ctrl-C stops it)\n"
    assert server.returncode == 130 and "Traceback" not in err
    assert len(shown) == len(trials)
    for trial in shown:
        attrs = {attr["key"]: attr["value"] for attr in trial["user_attrs"]}
        ours = trials[trial["number"]]
        assert attrs["outcome"] == ours["outcome"]
        if ours["outcome"] == "complete":
            assert float(attrs["accuracy"]) == pytest.approx(ours["metrics"]["accuracy"])
    assert "diverged" in {attr["value"] for t in shown for attr in t["user_attrs"]}


def test_a_port_in_use_or_a_missing_database_is_one_line(digits, tmp_path):
    url, _ = digits
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = tuner("dashboard", "--port", str(port), storage=url)
    missing = tuner(
        "dashboard", "--port", str(free_port()), storage=f"sqlite:///{tmp_path / 'none.db'}"
    )

    assert busy.exit_code == 1
    assert busy.stderr.startswith(f"Error: cannot listen on 127.0.0.1:{port}: ")
    assert busy.stderr.endswith("; give another --port\n") and busy.stdout == ""
    assert missing.exit_code == 2
    assert missing.stderr.startswith("Error: no database at ")
    assert not (tmp_path / "none.db").exists()
    assert os.listdir(tmp_path) == []


def test_a_trial_known_to_optuna_alone_reads_its_outcome_from_its_attributes():
    told = {"outcome": "diverged", "reason": "loss became nan at step 3", "steps": 3}
    diverged = optuna.trial.create_trial(state=TrialState.PRUNED, user_attrs=told)
    # Optuna copies a dead worker's trial's attributes into the trial that retries it.
    retried = optuna.trial.create_trial(
        state=TrialState.RUNNING, user_attrs={"outcome": "complete", "steps": 60}
    )

    assert (from_optuna(diverged).outcome, from_optuna(diverged).steps) == ("diverged", 3)
    assert from_optuna(diverged).reason == "loss became nan at step 3"
    assert (from_optuna(retried).outcome, from_optuna(retried).steps) == ("running", None)


@pytest.fixture
def small(tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    args = ["--task", "synthetic", "--steps", "5", "--eval-every", "5", "--confirm", "0"]
    result = tuner("search", *args, "--trials", "2", "--study", "s", storage=url)
    assert result.exit_code == 0, result.output
    return url


def send(method, url, body=None):
    """The status of a ``method`` request to ``url``, with ``body`` as JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_dashboard_answers_every_write_405_and_changes_nothing(small):
    before = optuna.load_study(study_name="s", storage=small).trials
    with serving(small) as (base, _):
        (study,) = get(f"{base}/api/studies")["study_summaries"]
        one = f"{base}/api/studies/{study['study_id']}"
        trial = before[0]._trial_id
        writes = [
            ("DELETE", one, None),
            ("POST", f"{base}/api/studies", {"study_name": "new", "directions": ["minimize"]}),
            ("POST", f"{one}/rename", {"study_name": "renamed"}),
            ("PUT", f"{one}/note", {"version": 0, "body": "written"}),
            ("POST", f"{base}/api/trials/{trial}/user-attrs", {"user_attrs": {"x": 1}}),
            ("POST", f"{base}/api/trials/{trial}/tell", {"state": "Fail"}),
        ]
        statuses = [send(method, url, body) for method, url, body in writes]
        after = get(f"{base}/api/studies")["study_summaries"]
        shown = get(f"{one}?after=0")["trials"]

    assert statuses == [405] * len(writes)
    assert [s["study_name"] for s in after] == ["s"]
    assert len(shown) == len(before)
    assert optuna.get_all_study_names(small) == ["s"]
    again = optuna.load_study(study_name="s", storage=small)
    assert again.trials == before


def test_an_address_beyond_loopback_needs_public_and_is_warned_of(small):
    # A process of its own, with a time limit: what used to be accepted serves until stopped.
    refused = subprocess.run(
        [TUNER, "dashboard", "--storage", small, "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr == (
        "Error: --host 0.0.0.0 is not a loopback address: anyone who can reach it would read "
        "every study, with no password; give --public to serve it there anyway\n"
    )
    with serving(small, "--host", "0.0.0.0", "--public") as (base, server):
        assert [s["study_name"] for s in get(f"{base}/api/studies")["study_summaries"]] == ["s"]
        assert send("DELETE", f"{base}/api/studies/1") == 405
    assert server.output[1] == (
        f"Warning: http://0.0.0.0:{base.rpartition(':')[2]} is open to anyone who can reach "
        "it, with no password: they read every study in the storage.\n"
    )


def test_optuna_dashboard_s_api_returns_the_study_s_attributes_and_confirmed_winner(tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    args = ["--task", "synthetic", "--optimizers", "adam,sgd", "--steps", "10"]
    args += ["--eval-every", "5", "--trials", "4", "--confirm", "2x2"]
    searched = tuner("search", *args, "--study", "c", storage=url)
    plain = tuner("search", *args[:-2], "--confirm", "0", "--study", "p", storage=url)
    assert searched.exit_code == 0 and plain.exit_code == 0, searched.output + plain.output
    with open_results(url) as results:
        confirmation = results.confirmation("c")
    winner = confirmation.winner

    app = dashboard_app(url)
    studies = wsgi_get(app, "/api/studies")["study_summaries"]
    shown = {
        s["study_name"]: {
            a["key"]: a["value"]
            for a in wsgi_get(app, f"/api/studies/{s['study_id']}?after=0")["user_attrs"]
        }
        for s in studies
    }
    listed = subprocess.run(
        [Path(sys.executable).with_name("optuna"), "studies", "--storage", url, "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )

    for name in ("c", "p"):
        assert {"task": "synthetic", "metric": "val_loss", "steps": "10"}.items() <= (
            shown[name].items()
        )
    trial = winner.trial
    assert shown["c"]["confirmed_winner"] == (
        f"trial {trial.number}, {trial.optimizer}+{trial.schedule}: mean val_loss "
        f"{winner.mean:.4g} ± {winner.std:.3g} over 2 seeds"
    )
    assert shown["c"]["verdict"] == confirmation.verdict
    assert float(shown["c"]["p_value"]) == pytest.approx(confirmation.p_value)
    assert "`tuner report c` draws them" in shown["c"]["confirmation"]
    assert "2 configurations trained again with 2 seeds" in shown["c"]["confirmation"]
    assert shown["p"]["confirmation"].startswith("none yet: `tuner confirm p` trains")
    assert "confirmed_winner" not in shown["p"]
    by_cli = {s["name"]: s["user_attrs"] for s in json.loads(listed.stdout)}
    assert by_cli["c"]["confirmed_winner"] == shown["c"]["confirmed_winner"]
    assert by_cli["p"]["steps"] == 10


def wsgi_get(app, path):
    """What ``app`` answers a GET of ``path``, as JSON, called as a WSGI server calls it."""
    environ = {}
    setup_testing_defaults(environ)
    environ["PATH_INFO"], _, environ["QUERY_STRING"] = path.partition("?")
    status = []
    body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    assert status == ["200 OK"], (status, body[:200])
    return json.loads(body)
