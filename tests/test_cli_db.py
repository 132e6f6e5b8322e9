"""`tuner db upgrade | current | check`: what they print, what they change, and that no
password ever reaches their output."""

import json
import subprocess

import pytest
from helpers import FAST, TUNER, one_error_line, tuner
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tuner.db import make_engine


def test_upgrade_creates_a_sqlite_file_then_has_nothing_to_do(sqlite_url, tmp_path):
    first = tuner("db", "upgrade", "--storage", sqlite_url)
    again = tuner("db", "upgrade", "--storage", sqlite_url)

    assert first.exit_code == 0, first.output
    assert first.stdout == f"Upgraded {sqlite_url} from revision none to 0007.\n"
    assert again.stdout == f"{sqlite_url} is at revision 0007, the newest: nothing to do.\n"
    assert (tmp_path / "tuner.db").is_file()


def test_upgrade_reads_the_storage_from_the_environment(sqlite_url):
    result = tuner("db", "upgrade", "--format", "json", env={"TUNER_STORAGE": sqlite_url})

    assert result.exit_code == 0, result.output
    expected = {"storage": sqlite_url, "from": None, "to": "0007", "reaped": 0}
    assert json.loads(result.stdout) == expected


def test_upgrade_of_a_storage_with_a_study_says_nothing_on_stderr(sqlite_url):
    made = tuner("search", "--storage", sqlite_url, *FAST, "--trials", "1", "--confirm", "0")
    assert made.exit_code == 0, made.output

    upgrade = subprocess.run(
        [TUNER, "db", "upgrade", "--storage", sqlite_url], capture_output=True, text=True
    )

    # Its reaping calls Optuna's fail_stale_trials, which would warn that it is experimental.
    assert (upgrade.returncode, upgrade.stderr) == (0, "")


def test_current_creates_nothing(sqlite_url, tmp_path):
    result = tuner("db", "current", "--storage", sqlite_url, "--format", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "storage": sqlite_url,
        "revision": None,
        "head": "0007",
        "status": "missing",
    }
    assert list(tmp_path.iterdir()) == []


def test_current_shows_a_table(sqlite_url):
    tuner("db", "upgrade", "--storage", sqlite_url)

    result = tuner("db", "current", "--storage", sqlite_url)

    lines = result.stdout.splitlines()
    assert lines[0].split() == ["storage", "revision", "head", "status"]
    assert lines[2].split() == [sqlite_url, "0007", "0007", "current"]


def test_check_passes_at_head(sqlite_url):
    tuner("db", "upgrade", "--storage", sqlite_url)

    table = tuner("db", "check", "--storage", sqlite_url)
    as_json = tuner("db", "check", "--storage", sqlite_url, "--format", "json")

    assert table.exit_code == 0, table.output
    assert table.stdout == f"{sqlite_url}: the tuner tables are at revision 0007 and match.\n"
    assert json.loads(as_json.stdout) == {
        "storage": sqlite_url,
        "revision": "0007",
        "head": "0007",
        "status": "current",
        "differences": [],
        "ok": True,
    }


def test_check_fails_without_a_database_and_creates_none(sqlite_url, tmp_path):
    result = tuner("db", "check", "--storage", sqlite_url)

    assert result.exit_code == 1
    assert "there is no database at" in one_error_line(result.stderr)
    assert "run `tuner db upgrade`" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_check_fails_on_a_table_changed_by_hand(sqlite_url):
    tuner("db", "upgrade", "--storage", sqlite_url)
    engine = make_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_tuner_trials_study_id_outcome"))
    engine.dispose()

    table = tuner("db", "check", "--storage", sqlite_url)
    as_json = tuner("db", "check", "--storage", sqlite_url, "--format", "json")

    assert table.exit_code == 1 and table.stdout == ""
    assert one_error_line(table.stderr).endswith(
        "differ from its models: add_index ix_tuner_trials_study_id_outcome\n"
    )
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["ok"] is False
    assert as_json.stderr == table.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root:s3cret@localhost/tuner", "unsupported storage URL scheme 'mysql'"),
        ("tuner.db", "not a storage URL: 'tuner.db'"),
        ("sqlite:///{tmp}/no/such/folder/tuner.db", "no folder {tmp}/no/such/folder"),
        ("sqlite:///{tmp}/notes.txt", "{tmp}/notes.txt is not a SQLite database"),
    ],
)
@pytest.mark.parametrize("command", ["upgrade", "current", "check"])
def test_bad_storage_is_one_line_exit_2_and_writes_nothing(tmp_path, command, url, message):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")

    result = tuner("db", command, "--storage", url.format(tmp=tmp_path))

    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert message.format(tmp=tmp_path) in one_error_line(result.stderr)
    assert "s3cret" not in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert notes.read_text() == "not a database\n"


def test_a_newer_schema_is_one_line_and_unchanged(sqlite_url):
    tuner("db", "upgrade", "--storage", sqlite_url)
    engine = make_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE tuner_alembic_version SET version_num = 'abcd'"))
    engine.dispose()

    for command in ("upgrade", "check"):
        result = tuner("db", command, "--storage", sqlite_url)
        assert result.exit_code == 1
        assert "revision abcd, newer than this tuner" in one_error_line(result.stderr)
    assert "ahead" in tuner("db", "current", "--storage", sqlite_url).stdout


def with_password(url):
    return make_url(url).set(password="s3cret").render_as_string(hide_password=False)


def test_no_output_of_any_db_command_shows_a_postgres_password(postgres_url):
    url = with_password(postgres_url)
    unreachable = with_password("postgresql+psycopg://postgres@127.0.0.1:1/test")
    outputs = []

    def run(*args):
        result = tuner("db", *args)
        outputs.append(result.stdout + result.stderr)
        return result

    assert run("current", "--storage", url).exit_code == 0
    assert run("check", "--storage", url, "--format", "json").exit_code == 1
    assert run("upgrade", "--storage", url).exit_code == 0
    for command in ("upgrade", "current", "check"):
        for fmt in ("table", "json"):
            assert run(command, "--storage", url, "--format", fmt).exit_code == 0
        assert run(command, "--storage", unreachable).exit_code == 1

    assert len(outputs) == 12
    assert all("postgres:***@127.0.0.1" in output for output in outputs)
    assert not [output for output in outputs if "s3cret" in output]


def test_the_installed_console_script_upgrades_postgres(postgres_url):
    url = with_password(postgres_url)

    result = subprocess.run(
        [TUNER, "db", "upgrade", "--storage", url], capture_output=True, text=True
    )
    current = subprocess.run(
        [TUNER, "db", "current", "--format", "json"],
        capture_output=True,
        text=True,
        env={"TUNER_STORAGE": url, "PATH": ""},
    )

    assert result.returncode == 0, result.stderr
    assert "from revision none to 0007" in result.stdout
    assert json.loads(current.stdout)["status"] == "current"
    assert "s3cret" not in result.stdout + result.stderr + current.stdout + current.stderr
