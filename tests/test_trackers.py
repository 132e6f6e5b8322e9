"""Each trial logged to the trackers people already run: `tuner search --log-to` into a real
MLflow store (SQLite) and a real W&B offline run, the workers of --jobs included, and
`tuner.search(callbacks=...)` calling Optuna study callbacks as Optuna does."""

import json
import struct
import subprocess

import optuna
import pytest
from click.testing import CliRunner
from helpers import TUNER
from mlflow import MlflowClient

import tuner
from tuner.cli import cli
from tuner.db.workers import WORKER_ATTR

SEARCH = ["search", "--task", "synthetic", "--steps", "30", "--eval-every", "10"]
SEARCH += ["--optimizers", "adam,sgd", "--schedules", "constant,cosine", "--confirm", "0"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No tracker reaches out: MLflow sends no telemetry, W&B writes its runs to disk."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")


def trials_of(storage, study):
    out = CliRunner().invoke(cli, ["trials", study, "--storage", storage, "--format", "json"])
    return {t["number"]: t for t in json.loads(out.stdout)}


def detail(storage, study, number):
    args = ["show", study, str(number), "--storage", storage, "--format", "json"]
    return json.loads(CliRunner().invoke(cli, args).stdout)


def mlflow_runs(uri, study):
    """Each MLflow run of the experiment named ``study``, by its trial's number."""
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return client, {int(run.data.tags["tuner.trial"]): run for run in runs}


def history(client, run, key):
    return [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]


def test_log_to_mlflow_makes_a_run_a_trial_with_its_parameters_metrics_and_curve(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tuner.db'}"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    result = CliRunner().invoke(
        cli,
        [*SEARCH, "--trials", "4", "--jobs", "1", "--study", "logged", "--storage", storage,
         "--log-to", f"mlflow:{uri}"],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    trials = trials_of(storage, "logged")
    client, runs = mlflow_runs(uri, "logged")
    assert set(runs) == set(trials)
    for number, trial in trials.items():
        run, curve = runs[number], detail(storage, "logged", number)["curve"]
        assert run.info.run_name == f"trial {number}"
        assert run.info.status == "FINISHED"
        assert run.data.tags["tuner.outcome"] == trial["outcome"]
        assert run.data.tags["tuner.study"] == "logged"
        for name, value in trial["params"].items():
            assert run.data.params[name] == str(value)
        assert history(client, run, "train_loss") == [
            (step, pytest.approx(loss)) for step, loss in enumerate(curve["losses"], start=1)
        ]
        assert [step for step, _ in history(client, run, "lr")] == list(range(1, 31))
        assert history(client, run, "val_loss") == [
            (e["step"], pytest.approx(e["val_loss"])) for e in curve["evals"]
        ]
        assert run.data.metrics["value"] == pytest.approx(trial["value"])
        assert run.data.metrics["r2"] == pytest.approx(curve["evals"][-1]["r2"])


def test_the_workers_of_jobs_log_their_trials_too(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tuner.db'}"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # Enough trials that the worker, which imports MLflow for seconds first, runs some.
    command = [TUNER, *SEARCH, "--trials", "40", "--jobs", "2", "--study", "shared"]
    command += ["--storage", storage, "--log-to", f"mlflow:{uri}"]

    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="shared", storage=storage).trials
    workers = {t.system_attrs.get(WORKER_ATTR) for t in trials}
    assert len(workers) == 2, "the helper process ran no trial"
    _, runs = mlflow_runs(uri, "shared")
    assert sorted(runs) == [t.number for t in trials]


def read_wandb(path):
    """The records of a W&B run file, as protobuf messages: a LevelDB log of 32 KiB blocks
    after a 7-byte header, each record in chunks behind a 7-byte header of their own."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    records, chunk, position = [], b"", 7
    while position + 7 <= len(data):
        left = 32768 - position % 32768
        if left < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        chunk += data[position + 7 : position + 7 + length]
        position += 7 + length
        # Full (1) or last (4): the record is whole.
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    return records


def test_log_to_wandb_offline_writes_a_run_a_trial_with_its_config_and_curve(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    storage = f"sqlite:///{tmp_path / 'tuner.db'}"

    result = CliRunner().invoke(
        cli,
        [*SEARCH, "--trials", "2", "--jobs", "1", "--study", "offline", "--storage", storage,
         "--log-to", "wandb:tuner-tests"],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    trials = trials_of(storage, "offline")
    found = {}
    for path in (tmp_path / "wandb").glob("offline-run-*/run-*.wandb"):
        records = read_wandb(path)
        run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        config = {item.key: json.loads(item.value_json) for item in run.config.update}
        steps = [
            {"step": r.history.step.num}
            | {".".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
            for r in records
            if r.WhichOneof("record_type") == "history"
        ]
        found[run.display_name] = (run, config, steps)
    assert set(found) == {f"offline trial {n}" for n in trials}
    for number, trial in trials.items():
        run, config, steps = found[f"offline trial {number}"]
        curve = detail(storage, "offline", number)["curve"]
        assert (run.project, run.run_group) == ("tuner-tests", "offline")
        assert {k: config[k] for k in trial["params"]} == trial["params"]
        assert [s["step"] for s in steps] == list(range(1, 31))
        assert [s["train_loss"] for s in steps] == pytest.approx(curve["losses"])
        assert [s["val_loss"] for s in steps if "val_loss" in s] == pytest.approx(
            [e["val_loss"] for e in curve["evals"]]
        )


@pytest.mark.parametrize(
    ("log_to", "line"),
    [
        ("mlfow", "Error: --log-to 'mlfow': no tracker 'mlfow'; did you mean 'mlflow'?"),
        ("tensorboard:runs", "Error: --log-to 'tensorboard:runs': no tracker 'tensorboard'; "
         "known: mlflow, wandb"),
    ],
)  # fmt: skip
def test_an_unknown_tracker_is_refused_in_one_line_before_anything_is_written(
    tmp_path, log_to, line
):
    done = subprocess.run(
        [TUNER, *SEARCH, "--log-to", log_to], capture_output=True, text=True, cwd=tmp_path
    )

    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"{line}\n")
    assert list(tmp_path.iterdir()) == []


def test_search_calls_study_callbacks_as_optuna_does_after_each_trial(sqlite_url):
    called = []

    def callback(study, trial):
        # As Optuna's optimize calls it: the trial has ended, and the study knows it so.
        stored = study.get_trials(deepcopy=False)[trial.number]
        called.append((study.study_name, trial.number, trial.state, stored.state))

    results = tuner.search(
        "synthetic", storage=sqlite_url, study="called", trials=8, steps=20, eval_every=10,
        optimizers=["adam"], schedules=["constant", "cosine"], defaults=False, pruner="none",
        population=4, confirm="0", callbacks=[callback],
    )  # fmt: skip

    trials = results.trials()
    assert sorted(number for _, number, _, _ in called) == [t.number for t in trials]
    assert {t.population for t in trials} != {None}, "no population trained together"
    for name, number, state, stored in called:
        assert name == "called"
        assert state == stored == optuna.trial.TrialState[results.trial(number).state]
