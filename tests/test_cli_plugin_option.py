"""`--plugin` on the command line: a file or module that cannot be found is a usage error before
anything is opened or written; one that is found but fails to load is a usage error too, once
loaded, but for `tuner plugins`, which shows it; those of TUNER_PLUGINS stay warnings."""

import json
import subprocess
from pathlib import Path

import pytest
from helpers import TUNER, one_error_line, tuner

GOOD = str(Path(__file__).parent / "broken_plugins" / "good.py")
SYNTAX_ERROR = str(Path(__file__).parent / "broken_plugins" / "syntax_error.py")
TINY = ["--task", "synthetic", "--trials", "1", "--steps", "5", "--confirm", "0"]


def test_a_missing_plugin_file_is_a_usage_error_of_the_installed_script(tmp_path):
    result = subprocess.run(
        [TUNER, "plugins", "--plugin", "./nope.py"], capture_output=True, text=True, cwd=tmp_path
    )

    assert result.returncode == 2
    assert "'./nope.py'" in one_error_line(result.stderr)
    assert "give the path of a plugin's .py file" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("module", ["no_such_module_xyz", "no_such_package_xyz.plugin", "./nope"])
def test_a_module_that_cannot_be_found_is_a_usage_error(module):
    result = tuner("plugins", "--plugin", module)

    assert result.exit_code == 2
    assert f"'{module}'" in one_error_line(result.stderr)
    assert result.stdout == ""


def test_search_with_a_missing_plugin_creates_no_database(tmp_path):
    database = tmp_path / "t.db"

    result = tuner(
        *("search", "--plugin", "./nope.py", "--storage", f"sqlite:///{database}"),
        *("--task", "synthetic", "--trials", "1"),
    )

    assert result.exit_code == 2
    assert "'./nope.py'" in one_error_line(result.stderr)
    assert not database.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["search", "--task", "synthetic", "--trials", "1"],
        ["schedule", "cosine", "--lr", "0.1", "--steps", "5"],
        ["export", "some-study"],
        ["plugins"],
    ],
)
def test_every_command_refuses_a_missing_plugin_and_writes_nothing(command, tmp_path, monkeypatch):
    # The default storage is a file in the working directory.
    monkeypatch.chdir(tmp_path)

    result = tuner(*command, "--plugin", GOOD, "--plugin", "missing.py")

    assert result.exit_code == 2
    assert "'missing.py'" in one_error_line(result.stderr)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "import tuner_no_such_module",
            "ModuleNotFoundError: No module named 'tuner_no_such_module'",
        ),
        ("raise RuntimeError('half installed')", "RuntimeError: half installed"),
    ],
)
def test_a_module_that_is_found_but_fails_to_import_stays_a_warning(
    body, message, tmp_path, monkeypatch
):
    package = tmp_path / "tuner_test_failing_package"
    package.mkdir()
    (package / "__init__.py").write_text(body + "\n")
    monkeypatch.syspath_prepend(tmp_path)

    result = tuner("plugins", "--format", "json", "--plugin", "tuner_test_failing_package.plugin")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["errors"] == [
        {"plugin": "tuner_test_failing_package.plugin", "message": message}
    ]


def test_an_importable_module_loads():
    result = tuner("plugins", "--format", "json", "--plugin", "json")

    assert result.exit_code == 0, result.output
    assert "json" in [p["name"] for p in json.loads(result.stdout)["plugins"]]


def test_tuner_plugins_env_naming_a_missing_file_stays_a_warning(monkeypatch):
    monkeypatch.setenv("TUNER_PLUGINS", "./nope.py")

    result = tuner("plugins", "--format", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["errors"] == [
        {"plugin": "nope", "message": "FileNotFoundError: no such file: ./nope.py"}
    ]


def test_search_refuses_a_plugin_that_fails_to_load_and_writes_nothing(tmp_path):
    database = tmp_path / "t.db"

    result = subprocess.run(
        [TUNER, "search", *TINY, "--plugin", SYNTAX_ERROR, "--storage", f"sqlite:///{database}"],
        capture_output=True,
        text=True,
    )

    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"Error: --plugin {SYNTAX_ERROR} failed to load: syntax error in syntax_error.py, line 1\n"
    )
    assert result.stdout == ""
    assert not database.exists()


def test_tuner_plugins_env_failing_to_load_stays_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNER_PLUGINS", SYNTAX_ERROR)

    result = tuner("search", *TINY, "--storage", f"sqlite:///{tmp_path / 't.db'}")

    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        "Warning: plugin 'syntax_error': syntax error in syntax_error.py, line 1"
    )


def test_a_plugin_loaded_twice_under_one_name_is_one_line(tmp_path, monkeypatch):
    # As when a plugin file is installed as a package of the same name, and still named.
    monkeypatch.setenv("TUNER_PLUGINS", GOOD)

    result = tuner("search", *TINY, "--plugin", GOOD, "--storage", f"sqlite:///{tmp_path / 't.db'}")

    assert result.exit_code == 2, result.output
    assert one_error_line(result.stderr) == (
        f"Error: --plugin {GOOD} failed to load: a plugin of that name is loaded already, "
        f"from {GOOD}: load it once\n"
    )
    assert list(tmp_path.iterdir()) == []
