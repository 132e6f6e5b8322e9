"""`tuner export` and `tuner.build_optimizer`: a stored trial as MLX code and as a JSON config,
each giving the trial's learning rate at every step and its updates bit for bit.

The studies are real: `tuner search` on `synthetic`, one small study per built-in optimizer and
schedule pair, so that every optimizer and every schedule is exported, with and without warmup.
"""

import dataclasses
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import mlx.core as mx
import mlx.optimizers as optim
import optuna
import pytest
from click.testing import CliRunner
from helpers import TUNER, tuner
from mlx.utils import tree_flatten, tree_map
from stored import stored_studies

from tuner import open_results
from tuner.api import StudyResults
from tuner.cli import cli
from tuner.db import WORKER_ATTR, open_store
from tuner.errors import BadInput
from tuner.export import build_optimizer, eval_weights
from tuner.lr import make_schedule
from tuner.params import Float
from tuner.plugins import BUILTIN, load_plugins
from tuner.space import Sample

REGISTRY = load_plugins()


def trials_of(storage, study):
    """Every trial of ``study`` in full, curves included."""
    with open_results(storage) as results:
        return [results.trial(study, trial.number) for trial in results.trials(study)]


OPTIMIZERS = [
    n for n in REGISTRY.optimizers if REGISTRY.plugin_of("optimizer", n).source == BUILTIN
]
SCHEDULES = [n for n in REGISTRY.schedules if REGISTRY.plugin_of("schedule", n).source == BUILTIN]
STEPS = 30
EXAMPLES = Path(__file__).parent.parent / "examples"
SEARCH_PLUGINS = Path(__file__).parent / "search_plugins"
# A range every optimizer trains in for a few steps without diverging, so each study's one
# trial completes and is its best.
SAFE_LR = "lr=1e-3..3e-2:log"


def pairs() -> list[tuple[str, str, float]]:
    """Each optimizer with two schedules, one with warmup and one without; each schedule with
    several optimizers, with and without warmup (as a test below checks)."""
    chosen = []
    for i, optimizer in enumerate(OPTIMIZERS):
        for offset in (0, 2):
            schedule = SCHEDULES[(i + offset) % len(SCHEDULES)]
            chosen.append((optimizer, schedule, 0.1 if (i + offset // 2) % 2 else 0.0))
    return chosen


PAIRS = pairs()


def search(storage, study, *args):
    short = ["--task", "synthetic", "--steps", STEPS, "--pruner", "none"]
    result = tuner("search", "--storage", storage, *short, "--study", study, "--quiet", *args)
    assert result.exit_code == 0, result.output
    return result


def export(storage, *args):
    return tuner("export", "--storage", storage, *args)


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """One storage holding a one-trial study for each pair, named 'optimizer-schedule'."""
    storage = f"sqlite:///{tmp_path_factory.mktemp('export') / 'tuner.db'}"
    for optimizer, schedule, warmup in PAIRS:
        search(
            storage,
            f"{optimizer}-{schedule}",
            # New, though adam-linear is a typo away from adamw-linear.
            "--new",
            *(
                "--optimizers",
                optimizer,
                "--schedules",
                schedule,
                "--trials",
                "1",
                "--confirm",
                "0",
            ),
            *("--space", SAFE_LR, "--space", f"warmup={warmup}"),
        )
    return storage


# A tiny model: a matrix (which Muon orthogonalises and Adafactor factors) and a vector, pulled
# towards a target, so that each step's gradient depends on the step before.
INITIAL = {"w": mx.random.normal((4, 3), key=mx.random.key(1)), "b": mx.zeros((3,))}
TARGET = tree_map(lambda p: mx.ones_like(p), INITIAL)


def trajectory(optimizer, steps):
    """The learning rate of every update, and the parameters after each."""
    parameters, rates, path = INITIAL, [], []
    for _ in range(steps):
        gradients = tree_map(lambda p, t: p - t, parameters, TARGET)
        parameters = optimizer.apply_gradients(gradients, parameters)
        mx.eval(parameters, optimizer.state)
        rates.append(optimizer.learning_rate.item())
        path.append(parameters)
    return rates, path


def tuners_own(params, steps, registry=REGISTRY):
    """The optimizer as a trial builds it from the registry: the peak rate and the Float
    parameters as float32 arrays, the warmup a rounded fraction of the steps."""
    sample = Sample.from_params(params)
    optimizer, schedule = registry.optimizers[sample.optimizer], registry.schedules[sample.schedule]

    def arrays(spec, values):
        return {
            k: mx.array(v, dtype=mx.float32) if isinstance(spec.space[k], Float) else v
            for k, v in values.items()
        }

    rates = make_schedule(
        schedule,
        mx.array(sample.lr, dtype=mx.float32),
        steps,
        round(sample.warmup * steps),
        arrays(schedule, sample.schedule_params),
    )
    return optimizer.build(rates, **arrays(optimizer, sample.optimizer_params))


def same(a, b):
    flat_a, flat_b = tree_flatten(a), tree_flatten(b)
    return [k for k, _ in flat_a] == [k for k, _ in flat_b] and all(
        mx.array_equal(x, y).item() for (_, x), (_, y) in zip(flat_a, flat_b, strict=True)
    )


def run_code(code):
    namespace = {}
    exec(compile(code, "<export>", "exec"), namespace)
    return namespace["optimizer"]


def test_the_pairs_meet_every_optimizer_and_schedule_with_and_without_warmup():
    assert {(o, w) for o, _, w in PAIRS} == {(o, w) for o in OPTIMIZERS for w in (0.0, 0.1)}
    assert {(s, w) for _, s, w in PAIRS} == {(s, w) for s in SCHEDULES for w in (0.0, 0.1)}


@pytest.mark.parametrize(("optimizer", "schedule", "warmup"), PAIRS)
def test_both_formats_give_the_trials_rates_and_updates_exactly(
    studies, optimizer, schedule, warmup
):
    study = f"{optimizer}-{schedule}"
    (record,) = trials_of(studies, study)
    assert (record.outcome, record.steps, record.params["warmup"]) == ("complete", STEPS, warmup)
    code = export(studies, study).stdout
    config = json.loads(export(studies, study, "--format", "json").stdout)

    imports = "".join(line for line in code.splitlines() if "import" in line)
    # MLX's own optimizers and schedules are plain MLX; those MLX lacks are built by tuner.
    of_mlx = REGISTRY.plugin_of("optimizer", optimizer).name == "tuner_builtins.optimizers"
    assert ("tuner" in imports) is not of_mlx
    exported = {"python": run_code(code), "json": build_optimizer(config, steps=STEPS)}
    _, expected = trajectory(tuners_own(record.params, STEPS), STEPS)
    for form, built in exported.items():
        rates, path = trajectory(built, STEPS)
        # Exact: both are the float32 values MLX computed, the stored ones in the trial's
        # compiled step, these eagerly, with the same operations on the same float32 inputs.
        assert rates == record.lrs, form
        assert same(path[0], expected[0]), f"{form}: the first update differs"
        assert all(map(same, path, expected)), f"{form}: a later update differs"
    if warmup:
        assert record.lrs[0] == 0.0
    else:
        assert not same(expected[0], INITIAL), "the first update must move the weights"


def test_python_floats_would_not_be_exact():
    """Why the code writes mx.array(...): with Python-float betas Adam computes 1 - beta1 in
    float64, and its update then differs from the trial's in the last bits."""
    gradient = {"w": INITIAL["w"] - 1}

    def update(betas):
        return optim.Adam(learning_rate=0.01, betas=betas).apply_gradients(gradient, INITIAL)

    as_floats, as_arrays = update([0.9, 0.99]), update([mx.array(0.9), mx.array(0.99)])

    assert not same(as_floats, as_arrays)
    assert mx.allclose(as_floats["w"], as_arrays["w"], rtol=1e-6).item()


def test_the_json_config_names_what_built_the_trial(studies):
    result = export(studies, "adamw-linear", "--format", "json")
    (record,) = trials_of(studies, "adamw-linear")

    config = json.loads(result.stdout)
    assert result.stderr == ""
    assert config == {
        "version": 1,
        "optimizer": {
            "name": "adamw",
            "params": {k[6:]: v for k, v in record.params.items() if k.startswith("adamw.")},
            "plugin": "tuner_builtins.optimizers",
            "plugin_version": "0.1.0",
        },
        "schedule": {
            "name": "linear",
            "params": {k[7:]: v for k, v in record.params.items() if k.startswith("linear.")},
            "plugin": "tuner_builtins.schedules",
            "plugin_version": "0.1.0",
        },
        "lr": record.params["lr"],
        "warmup": record.params["warmup"],
        "steps": STEPS,
        "batch_size": 32,
        "task": {"name": "synthetic", "params": {}},
        "source": {
            "study": "adamw-linear",
            "trial": 0,
            "steps": STEPS,
            "outcome": "complete",
            "metric": "val_loss",
            "value": record.value,
            "population": None,
        },
    }


def test_the_python_export_runs_without_tuner_in_a_fresh_process(studies, tmp_path):
    env = {**os.environ, "TUNER_STORAGE": studies}
    code = subprocess.run(
        [TUNER, "export", "sgd-constant"], capture_output=True, text=True, env=env, check=True
    ).stdout
    (record,) = trials_of(studies, "sgd-constant")
    script = tmp_path / "optimizer.py"
    script.write_text(code + "print(repr(optimizer.learning_rate.item()))\n")

    # A None in sys.modules makes `import tuner` fail, as where tuner is not installed.
    without_tuner = f"import sys; sys.modules['tuner'] = None; exec(open({str(script)!r}).read())"
    run = subprocess.run([sys.executable, "-c", without_tuner], capture_output=True, text=True)

    assert run.returncode == 0, run.stderr
    assert float(run.stdout) == record.lrs[0]


def test_an_export_reads_tuners_tables_and_never_loads_optuna(studies):
    # Optuna's load_study reads every trial in full: seconds for a large study.
    check = (
        "import sys\n"
        "from tuner.export import export_trial\n"
        "from tuner.plugins import load_plugins\n"
        f"exported = export_trial({studies!r}, 'adam-constant', 0, load_plugins())\n"
        "assert exported.config['source']['trial'] == 0\n"
        "assert 'optuna' not in sys.modules\n"
    )

    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)

    assert run.returncode == 0, run.stderr


def test_build_optimizer_stretches_the_schedule_and_its_warmup_over_other_steps(studies):
    config = json.loads(export(studies, "adam-constant", "--format", "json").stdout)
    (record,) = trials_of(studies, "adam-constant")

    rates, _ = trajectory(build_optimizer(config, steps=100), 100)

    expected, _ = trajectory(tuners_own(record.params, 100), 100)
    assert rates == expected
    assert rates[1] != record.lrs[1], "the warmup must be 10 steps long, not 3"


@pytest.mark.parametrize("warmup", [0.1, 0.0])
def test_export_steps_stretches_the_schedule_of_both_formats_and_the_api(studies, warmup):
    study = next(f"{o}-{s}" for o, s, w in PAIRS if w == warmup and s in ("linear", "cosine"))
    (record,) = trials_of(studies, study)
    longer = 4 * STEPS

    code = export(studies, study, "--steps", str(longer))
    as_json = export(studies, study, "--steps", str(longer), "--format", "json")
    config = json.loads(as_json.stdout)

    assert code.exit_code == 0, code.output
    assert (config["steps"], config["source"]["steps"]) == (longer, STEPS)
    assert StudyResults(study, studies).export(steps=longer) == config
    expected, _ = trajectory(tuners_own(record.params, longer), longer)
    for built in (run_code(code.stdout), build_optimizer(config)):
        rates, _ = trajectory(built, longer)
        assert rates == expected
    said = f"the schedule runs over {longer} steps, not the trial's {STEPS}"
    if warmup:
        said += (
            f"; its warmup stays a fraction, {warmup:g} of them: {round(warmup * longer)} "
            f"steps, not {round(warmup * STEPS)}"
        )
    else:
        said += "; it has no warmup"
    assert f"Note: {said}\n" in code.stderr


def test_export_steps_of_zero_is_a_usage_error(studies):
    zero = export(studies, "adam-constant", "--steps", "0")

    assert zero.exit_code == 2
    assert "Invalid value for '--steps': 0 is not in the range x>=1." in zero.stderr
    with pytest.raises(BadInput, match="steps must be at least 1, got 0"):
        StudyResults("adam-constant", studies).export(steps=0)


def test_without_trial_the_best_is_exported(sqlite_url):
    # No confirmation runs, whose winner export would take first.
    search(sqlite_url, "s", "--optimizers", "adam,sgd", "--schedules", "cosine", "--trials", "4",
           "--confirm", "0")  # fmt: skip
    best = optuna.load_study(study_name="s", storage=sqlite_url).best_trial

    config = json.loads(export(sqlite_url, "s", "--format", "json").stdout)

    assert config["source"]["trial"] == best.number
    assert config["lr"] == best.params["lr"]


@pytest.mark.parametrize(
    ("plugin", "optimizer", "schedule"),
    [
        (str(EXAMPLES / "single_file_plugin.py"), "adamw_bc", "polynomial"),
        ("tuner_example_plugin", "adam", "inverse_sqrt"),
    ],
)
def test_a_plugin_with_code_exports_plain_mlx(sqlite_url, monkeypatch, plugin, optimizer, schedule):
    # The example package by module name, as its entry point loads it; not an installed copy.
    monkeypatch.syspath_prepend(str(EXAMPLES / "example-plugin"))
    monkeypatch.setenv("TUNER_LOAD_PLUGINS", "")
    search(
        sqlite_url,
        "p",
        *("--plugin", plugin, "--optimizers", optimizer, "--schedules", schedule),
        *("--trials", "1", "--space", SAFE_LR, "--space", "warmup=0.1"),
    )
    (record,) = trials_of(sqlite_url, "p")

    code = export(sqlite_url, "p", "--plugin", plugin).stdout

    assert "import tuner" not in code
    rates, path = trajectory(run_code(code), STEPS)
    _, expected = trajectory(tuners_own(record.params, STEPS, load_plugins([plugin])), STEPS)
    assert rates == record.lrs
    assert all(map(same, path, expected))


def test_a_plugin_without_code_is_built_by_tuner_and_a_pruned_trial_has_a_note(sqlite_url):
    plugin = str(SEARCH_PLUGINS / "nan_optimizer.py")
    search(
        sqlite_url,
        "nan",
        *("--plugin", plugin, "--optimizers", "poison", "--schedules", "cosine"),
        "--trials",
        "2",
    )
    (record, _) = trials_of(sqlite_url, "nan")

    result = export(sqlite_url, "nan", "--trial", "0", "--plugin", plugin)

    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"Note: trial 0 did not complete (diverged: {record.reason}); exported as asked\n"
    )
    assert f"plugins=[{plugin!r}]" in result.stdout and "import tuner\n" in result.stdout
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rates, path = trajectory(run_code(result.stdout), record.steps)
    assert rates == record.lrs
    assert math.isnan(path[0]["w"][0, 0].item())


@pytest.mark.parametrize("fmt", ["python", "json"])
def test_an_optimizer_evaluated_at_other_weights_says_which_and_gives_them(studies, fmt):
    study = next(f"{o}-{s}" for o, s, _ in PAIRS if o == "schedule_free_adamw")
    config = json.loads(export(studies, study, "--format", "json").stdout)
    call = "model.update(tuner.eval_weights(config, optimizer, model.trainable_parameters()))"

    result = export(studies, study, "--format", fmt)

    assert result.stderr == (
        "Note: schedule_free_adamw trains the model at other weights than those to evaluate "
        f"and save it with: once trained, {call}\n"
    )
    if fmt == "python":
        assert result.stdout.endswith(f"# once trained, {call}\n")
    optimizer = build_optimizer(config)
    _, path = trajectory(optimizer, 3)
    weights = eval_weights(config, optimizer, path[-1])
    assert same(weights, {k: optimizer.state[k]["x"] for k in INITIAL})
    assert not same(weights, path[-1])


def test_the_weights_to_evaluate_an_optimizer_without_them_at_are_its_own(studies):
    config = json.loads(export(studies, "adam-constant", "--format", "json").stdout)
    optimizer = build_optimizer(config)
    _, path = trajectory(optimizer, 3)

    assert eval_weights(config, optimizer, path[-1]) is path[-1]


def test_sample_from_params_splits_by_owner():
    params = {
        "lr": 0.1,
        "warmup": 0.05,
        "optimizer": "adam",
        "schedule": "step",
        "adam.beta1": 0.9,
        "adamw.beta1": 0.8,
        "step.drops": 2,
    }

    sample = Sample.from_params(params)

    assert sample == Sample("adam", {"beta1": 0.9}, "step", {"drops": 2}, 0.1, 0.05)
    with pytest.raises(ValueError, match="lack warmup"):
        Sample.from_params({k: v for k, v in params.items() if k != "warmup"})


def test_build_optimizer_refuses_a_config_it_cannot_build(studies):
    config = json.loads(export(studies, "adam-constant", "--format", "json").stdout)

    with pytest.raises(BadInput, match="version 1"):
        build_optimizer({**config, "version": 2})
    with pytest.raises(BadInput, match="needs 'lr'"):
        build_optimizer({k: v for k, v in config.items() if k != "lr"})
    with pytest.raises(BadInput, match="steps must be a whole number"):
        build_optimizer(config, steps=0)
    with pytest.raises(BadInput, match=r"a warmup of 1\.0 of 30 steps leaves none"):
        build_optimizer({**config, "warmup": 1.0})
    with pytest.raises(BadInput, match="lr and warmup must be numbers"):
        build_optimizer({**config, "lr": "0.1"})
    renamed = {**config, "optimizer": {**config["optimizer"], "name": "signum"}}
    with pytest.raises(BadInput, match=r"unknown optimizer 'signum'.*--plugin"):
        build_optimizer(renamed)
    wrong = {**config, "optimizer": {**config["optimizer"], "params": {"beta1": 0.9}}}
    with pytest.raises(
        BadInput, match=r"takes the parameters \['beta1', 'beta2', 'bias_correction'\]"
    ):
        build_optimizer(wrong)


def test_build_optimizer_warns_of_another_plugin_version(studies):
    config = json.loads(export(studies, "adam-constant", "--format", "json").stdout)
    older = {**config, "optimizer": {**config["optimizer"], "plugin_version": "0.0.1"}}

    with pytest.warns(
        UserWarning, match="but the trial ran plugin 'tuner_builtins.optimizers' 0.0.1"
    ):
        build_optimizer(older)


def test_a_code_hook_that_fails_names_its_plugin(sqlite_url, tmp_path):
    plugin = tmp_path / "broken_code.py"
    plugin.write_text(
        "import mlx.optimizers as optim\n"
        "from tuner import OptimizerSpec, hookimpl\n\n"
        "@hookimpl\n"
        "def tuner_register_optimizers(register):\n"
        "    register(OptimizerSpec('plain', lambda learning_rate: optim.SGD(learning_rate), {},\n"
        "                           code=lambda learning_rate: 'optim.SGD(('))\n"
    )
    # A seed whose one trial completes: a diverged one would leave nothing to export.
    search(
        sqlite_url, "b", "--plugin", plugin, "--optimizers", "plain", "--trials", "1", "--seed", "0"
    )

    result = export(sqlite_url, "b", "--plugin", plugin)

    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("Error: plugin 'broken_code': the code of optimizer 'plain'")
    assert export(sqlite_url, "b", "--plugin", plugin, "--format", "json").exit_code == 0


def digest(path):
    return path.read_bytes() if path.exists() else None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["adam-constan"], "no study 'adam-constan' in sqlite:///"),
        (["adam-constan"], "did you mean 'adam-constant'?"),
        (
            ["adam-constant", "--trial", "7"],
            "study 'adam-constant' has no trial 7; its trials are 0",
        ),
        (["adam-constant", "--trial", "-1"], "Invalid value for '--trial'"),
        (["adam-constant", "--format", "yaml"], "Invalid value for '--format': 'yaml' is not one"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(studies, args, message):
    path = Path(studies.removeprefix("sqlite:///"))
    before = digest(path)

    result = export(studies, *args)

    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert digest(path) == before


def test_a_missing_database_is_not_created(tmp_path):
    result = export(f"sqlite:///{tmp_path / 'none.db'}", "s")

    assert result.exit_code == 2
    assert "no database at " in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_a_study_with_nothing_to_export_says_why(sqlite_url):
    search(
        sqlite_url,
        "nan",
        "--plugin",
        SEARCH_PLUGINS / "nan_optimizer.py",
        "--optimizers",
        "poison",
        "--trials",
        "1",
    )
    studies = optuna.storages.RDBStorage(sqlite_url)
    optuna.create_study(study_name="empty", storage=studies)
    running = optuna.create_study(study_name="running", storage=studies)
    # Named as tuner names its workers' trials: a trial without a name is another client's.
    studies.set_trial_system_attr(running.ask()._trial_id, WORKER_ATTR, "elsewhere 1")
    # As tuner search records them when it starts, before any trial ends.
    store = open_store(sqlite_url)
    for name in ("empty", "running"):
        store.save_study(dataclasses.replace(stored_studies(sqlite_url)["nan"], name=name))

    cases = {
        "empty": "study 'empty' has no trials yet: run tuner search --study empty",
        "nan": "study 'nan' has no complete trial (only pruned); export one with --trial N",
        "running": "study 'running' has no complete trial (only running); wait until one finishes",
    }
    for study, message in cases.items():
        result = export(sqlite_url, study, "--plugin", SEARCH_PLUGINS / "nan_optimizer.py")
        assert (result.exit_code, result.stdout) == (2, ""), result.output
        assert result.stderr == f"Error: {message}\n"
    running_trial = export(sqlite_url, "running", "--trial", "0")
    assert running_trial.exit_code == 2
    assert "trial 0 of study 'running' is still running" in running_trial.stderr


def test_another_applications_database_is_left_as_it_was(tmp_path):
    import sqlite3

    path = tmp_path / "theirs.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE users (id INTEGER)")

    result = CliRunner().invoke(cli, ["export", "x", "--storage", f"sqlite:///{path}"])

    assert result.exit_code == 2
    assert result.stderr.startswith("Error: no study 'x' in sqlite:///")
    with sqlite3.connect(path) as connection:
        tables = connection.execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("users",)]
