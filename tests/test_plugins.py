"""Plugin loading: every way a plugin can break is reported by name, and the rest still load."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import TUNER

from tuner import Float, ScheduleSpec, hookimpl
from tuner.cli import cli
from tuner.errors import BadInput, TunerError
from tuner.plugins import load_plugins

BROKEN = Path(__file__).parent / "broken_plugins"
GOOD = str(BROKEN / "good.py")

CASES = {
    "import_error": "ModuleNotFoundError: No module named 'tuner_no_such_module'",
    "syntax_error": "syntax error in syntax_error.py, line 1",
    "hook_raises": "tuner_register_schedules: RuntimeError: schedule table missing",
    "duplicate_name": "schedule 'twice' refused: the name is taken by plugin 'duplicate_name'",
    "malformed_space": "schedule 'malformed' refused: parameter 'level' must be Float, Int or",
    "empty_space": "schedule 'spaceless' refused: build() needs 'level', which its space",
    "build_not_callable": "schedule 'uncallable' refused: build must be callable, not str",
    "builtin_clash": "schedule 'cosine' refused: the name is taken by a built-in",
    "code_not_callable": "schedule 'uncoded' refused: code must be callable, not str",
    "eval_weights_not_callable": (
        "optimizer 'unweighed' refused: eval_weights must be callable, not str"
    ),
    "exits": "called sys.exit(3)",
    "hook_exits": "tuner_register_schedules: called sys.exit('no schedules today')",
    "misspelt_hook": (
        "@hookimpl tuner_register_schedule is no hook of tuner's; "
        "did you mean 'tuner_register_schedules'?"
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_broken_plugin_is_named_and_the_others_load(case):
    registry = load_plugins([str(BROKEN / f"{case}.py"), GOOD])

    assert [e.plugin for e in registry.errors] == [case]
    assert CASES[case] in str(registry.errors[0])
    assert str(registry.errors[0]).startswith(f"plugin '{case}': ")
    assert "halving" in registry.schedules
    assert {"adam", "sgd"} <= set(registry.optimizers)
    assert "digits" in registry.tasks


def test_a_builtin_keeps_its_name_when_a_plugin_clashes():
    registry = load_plugins([str(BROKEN / "builtin_clash.py")])

    assert registry.plugin_of("schedule", "cosine").source == "built-in"


@pytest.mark.parametrize("case", CASES)
def test_tuner_plugins_still_works_and_shows_the_error(case):
    result = CliRunner().invoke(
        cli, ["plugins", "--format", "json", "--plugin", str(BROKEN / f"{case}.py")]
    )

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [e["plugin"] for e in data["errors"]] == [case]
    assert CASES[case] in f"plugin '{case}': {data['errors'][0]['message']}"


def test_a_command_that_needs_the_broken_part_fails_with_its_line():
    result = CliRunner().invoke(
        cli,
        [
            "schedule",
            "spaceless",
            "--lr",
            "0.1",
            "--steps",
            "5",
            "--plugin",
            BROKEN / "empty_space.py",
        ],
    )

    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: plugin 'empty_space': schedule 'spaceless' refused: "
        "build() needs 'level', which its space does not give"
    )


def test_an_unknown_name_after_an_import_failure_fails_with_that_failure():
    with pytest.raises(TunerError) as raised:
        load_plugins([str(BROKEN / "import_error.py")]).get("schedule", "whatever")

    assert raised.value.exit_code == 1
    assert "plugin 'import_error': ModuleNotFoundError" in str(raised.value)


def test_a_typo_is_exit_2_whatever_another_plugin_had_refused(tmp_path, monkeypatch):
    # An installed plugin that registers a name tuner has since made a built-in of.
    monkeypatch.setenv("TUNER_PLUGINS", str(BROKEN / "builtin_clash.py"))
    db = tmp_path / "tuner.db"

    result = CliRunner().invoke(
        cli, ["search", "--optimizers", "adamz", "--storage", f"sqlite:///{db}"]
    )

    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1] == (
        "Error: unknown optimizer 'adamz'; did you mean 'adam'?"
    )
    assert not db.exists()


def test_an_unknown_name_suggests_the_nearest():
    with pytest.raises(BadInput, match="unknown schedule 'cosin'; did you mean 'cosine'"):
        load_plugins().get("schedule", "cosin")


def test_a_plugin_object_registers_for_one_load():
    class Plugin:
        @hookimpl
        def tuner_register_schedules(self, register):
            register(ScheduleSpec("flat", lambda lr, steps, f: lambda s: lr, {"f": Float(0, 1)}))

    assert "flat" in load_plugins([Plugin()]).schedules
    assert "flat" not in load_plugins().schedules


def test_tuner_plugins_env_loads_files_and_modules(monkeypatch):
    monkeypatch.setenv("TUNER_PLUGINS", f"{GOOD}, json")

    registry = load_plugins()

    assert "halving" in registry.schedules
    assert [p.source for p in registry.plugins][-2:] == [GOOD, "json"]
    assert registry.errors == []


def test_a_missing_plugin_file_is_an_error_not_a_crash():
    registry = load_plugins(["no/such/plugin.py"])

    assert [str(e) for e in registry.errors] == [
        "plugin 'plugin': FileNotFoundError: no such file: no/such/plugin.py"
    ]


def test_load_plugins_restricts_entry_points_and_names_the_missing(monkeypatch):
    monkeypatch.setenv("TUNER_LOAD_PLUGINS", "not-installed")

    registry = load_plugins()

    assert [str(e) for e in registry.errors] == [
        "plugin 'not-installed': named in TUNER_LOAD_PLUGINS but not installed"
    ]
    assert "adam" in registry.optimizers


def test_tuner_plugins_json_lists_every_kind_with_its_space():
    result = CliRunner().invoke(cli, ["plugins", "--format", "json", "--plugin", GOOD])

    data = json.loads(result.stdout)
    halving = next(s for s in data["schedules"] if s["name"] == "halving")
    assert halving == {
        "name": "halving",
        "plugin": "good",
        "description": "halves over the run",
        "space": {"floor": {"type": "float", "low": 0.0, "high": 0.5, "log": False}},
    }
    assert {"optimizers", "schedules", "tasks", "errors", "plugins"} <= set(data)
    assert all({"name", "plugin", "description", "space"} <= set(o) for o in data["optimizers"])


def test_tuner_plugins_table_lists_plugins_and_spaces():
    result = CliRunner().invoke(cli, ["plugins", "--plugin", GOOD])

    assert result.exit_code == 0
    assert re.search(
        r"\nhalving +good +halves over the run\n +space: floor=0\.\.0\.5\n", result.stdout
    )


def test_tuner_plugins_json_is_the_registrys_json():
    result = CliRunner().invoke(
        cli,
        ["plugins", "--format", "json", "--plugin", GOOD, "--plugin", BROKEN / "hook_raises.py"],
    )

    registry = load_plugins([GOOD, str(BROKEN / "hook_raises.py")])
    assert json.loads(result.stdout) == registry.to_json()
    assert list(registry.to_json()) == ["plugins", "optimizers", "schedules", "tasks", "errors"]


def run_tuner(*args, cwd, pythonpath=None, **more_env):
    env = {**os.environ, "TUNER_DEBUG": "", **more_env}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [TUNER, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def test_a_search_goes_on_past_a_plugin_that_calls_sys_exit(tmp_path):
    database = tmp_path / "t.db"
    search = ("search", "--task", "synthetic", "--trials", "1", "--confirm", "0", "--quiet")
    search += ("--optimizers", "sgd", "--schedules", "constant", "--study", "s")
    search += ("--storage", f"sqlite:///{database}")
    exits = str(BROKEN / "exits.py")

    named = run_tuner(*search, "--plugin", exits, cwd=tmp_path)
    standing = run_tuner(*search, cwd=tmp_path, TUNER_PLUGINS=exits)

    # Asked for on the command line, it is refused; standing configuration is only warned of.
    assert named.returncode == 2, named.stderr
    assert named.stderr == f"Error: --plugin {exits} failed to load: called sys.exit(3)\n"
    assert standing.returncode == 0, standing.stderr
    assert "Warning: plugin 'exits': called sys.exit(3)" in standing.stderr.splitlines()
    assert standing.stdout.strip() == "s"


def test_an_entry_point_that_calls_sys_exit_is_listed_among_the_errors(tmp_path):
    # A real distribution on the path, found by importlib.metadata as pip's would be.
    (tmp_path / "tuner_test_exiting.py").write_text("import sys\n\nsys.exit(3)\n")
    dist = tmp_path / "tuner_test_exiting-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tuner-test-exiting\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text("[tuner]\nexiting = tuner_test_exiting\n")

    result = run_tuner("plugins", "--format", "json", cwd=tmp_path, pythonpath=tmp_path)

    assert result.returncode == 0, result.stderr
    errors = json.loads(result.stdout)["errors"]
    assert {"plugin": "exiting", "message": "called sys.exit(3)"} in errors


def test_a_plugin_whose_package_calls_sys_exit_is_listed_among_the_errors(tmp_path):
    package = tmp_path / "tuner_test_exit_package"
    package.mkdir()
    (package / "__init__.py").write_text("import sys\n\nsys.exit(3)\n")
    (package / "plugin.py").write_text("")

    result = run_tuner(
        "plugins", "--format", "json", "--plugin", "tuner_test_exit_package.plugin",
        cwd=tmp_path, pythonpath=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    errors = json.loads(result.stdout)["errors"]
    assert {"plugin": "tuner_test_exit_package.plugin", "message": "called sys.exit(3)"} in errors
