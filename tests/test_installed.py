"""tuner as a user installs it: a wheel in a fresh virtual environment, with the example plugin
package installed beside it and found through its entry point."""

import json
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
JUNK = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", "*.db")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """The bin folder of a new virtual environment holding tuner and the example plugin."""
    where = tmp_path_factory.mktemp("installed")
    # Copies, because pip builds in the source tree and would leave build/ behind in the checkout.
    shutil.copytree(ROOT, where / "source", ignore=JUNK)
    venv.create(where / "venv", with_pip=True)
    bin = where / "venv" / "bin"
    subprocess.run(
        [bin / "pip", "install", "-q", where / "source", where / "source/examples/example-plugin"],
        check=True,
        capture_output=True,
    )
    return bin


def fresh_tuner(fresh, *args, cwd=None):
    """What the fresh installation's own command printed; it must succeed."""
    return subprocess.run(
        [fresh / "tuner", *args], capture_output=True, text=True, check=True, cwd=cwd
    ).stdout


def test_the_example_package_is_found_through_its_entry_point(fresh):
    data = json.loads(fresh_tuner(fresh, "plugins", "--format", "json"))

    assert data["errors"] == []
    example = [p for p in data["plugins"] if p["name"] == "example"]
    assert example == [
        {"name": "example", "version": "0.1.0", "source": "entry point of tuner-example-plugin"}
    ]
    assert {"signum"} <= {o["name"] for o in data["optimizers"] if o["plugin"] == "example"}
    assert [s["name"] for s in data["schedules"] if s["plugin"] == "example"] != []


def test_the_single_file_example_is_listed_when_passed(fresh):
    plugin = ROOT / "examples" / "single_file_plugin.py"

    data = json.loads(fresh_tuner(fresh, "plugins", "--format", "json", "--plugin", str(plugin)))

    mine = {
        o["name"]
        for o in data["optimizers"] + data["schedules"]
        if o["plugin"] == "single_file_plugin"
    }
    assert mine == {"adamw_bc", "polynomial"}


def test_the_installed_tuner_searches_the_plugin_optimizer(fresh, tmp_path):
    out = fresh_tuner(
        fresh,
        "search",
        "--task",
        "synthetic",
        "--trials",
        "3",
        "--optimizers",
        "signum",
        "--study",
        "plugged",
        cwd=tmp_path,
    )

    assert "signum" in out.split("\n", 3)[3]
    assert (tmp_path / "tuner.db").exists()


def test_without_the_extras_the_commands_that_draw_say_which_to_install(fresh, tmp_path):
    commands = {
        ("report", "s"): "tuner report needs plotly: pip install 'tuner[report]'",
        ("schedule", "cosine", "--lr", "0.1", "--steps", "9", "--plot", "a.png"): (
            "tuner schedule --plot needs plotly: pip install 'tuner[report]'"
        ),
        ("dashboard",): "tuner dashboard needs optuna-dashboard: pip install 'tuner[dashboard]'",
    }

    for args, line in commands.items():
        result = subprocess.run(
            [fresh / "tuner", *args], capture_output=True, text=True, cwd=tmp_path
        )

        assert (result.returncode, result.stdout, result.stderr) == (1, "", f"Error: {line}\n")
    assert list(tmp_path.iterdir()) == []


def test_the_default_install_has_no_scikit_learn_and_digits_still_trains(fresh, tmp_path):
    installed = subprocess.run(
        [fresh / "pip", "list", "--format", "json"], capture_output=True, text=True, check=True
    ).stdout

    out = fresh_tuner(
        fresh, "search", "--trials", "2", "--steps", "20", "--confirm", "0", cwd=tmp_path
    )

    assert "scikit-learn" not in {p["name"] for p in json.loads(installed)}
    assert out.startswith("Top 2 of 2 finished trials")
    assert "Study digits-" in out


def test_without_its_package_a_tracker_is_refused_in_one_line_and_nothing_written(fresh, tmp_path):
    for tracker in ("mlflow", "wandb:project"):
        name = tracker.split(":")[0]

        result = subprocess.run(
            [fresh / "tuner", "search", "--log-to", tracker],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )

        package = {"mlflow": "mlflow-skinny"}.get(name, name)
        line = f"Error: --log-to {name} needs {package}: pip install 'tuner[{name}]'\n"
        # Exit 1, as every command whose extra is missing: the command itself is right.
        assert (result.returncode, result.stdout, result.stderr) == (1, "", line)
    assert list(tmp_path.iterdir()) == []
