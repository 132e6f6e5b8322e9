"""Optuna's own tools see what tuner knows of each trial: its outcome (diverged included),
reason, steps and metrics, as user attributes; `tuner dashboard` serves optuna-dashboard on
the storage, whose API shows them."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from tuner.cli import cli
from tuner.optuna_trials import from_optuna

TUNER = Path(sys.executable).with_name("tuner")
POISON = Path(__file__).parent / "search_plugins" / "nan_optimizer.py"


def tuner(storage, *args):
    return CliRunner().invoke(cli, [*args, "--storage", storage], env={"TUNER_DEBUG": None})


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A short real search on digits, whose metric is accuracy; its poisoned trials diverge."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'tuner.db'}"
    args = ["--task", "digits", "--optimizers", "adam,poison", "--schedules", "constant"]
    args += ["--plugin", str(POISON), "--steps", "60", "--eval-every", "20", "--confirm", "0"]
    result = tuner(url, "search", *args, "--trials", "8", "--study", "d")
    assert result.exit_code == 0, result.output
    trials = json.loads(tuner(url, "trials", "d", "--format", "json").stdout)
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


def test_optuna_dashboard_lists_a_study_with_the_outcome_and_accuracy_of_its_trials(digits):
    url, trials = digits
    port = free_port()
    server = subprocess.Popen(
        [TUNER, "dashboard", "--storage", url, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = get(f"{base}/api/studies")["study_summaries"]
                break
            except OSError:
                assert server.poll() is None, server.communicate()
                assert time.monotonic() < deadline, "the dashboard never answered"
                time.sleep(0.2)
        (study,) = [s for s in studies if s["study_name"] == "d"]
        shown = get(f"{base}/api/studies/{study['study_id']}?after=0")["trials"]
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)

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
        busy = tuner(url, "dashboard", "--port", str(port))
    missing = tuner(f"sqlite:///{tmp_path / 'none.db'}", "dashboard", "--port", str(free_port()))

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
