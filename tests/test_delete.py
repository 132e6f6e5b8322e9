"""`tuner delete` on real searches: every row of the study goes, Optuna's and tuner's, in one
transaction, and nothing else does; a study whose Optuna side another tool deleted is shown as
such and can be deleted; bad input changes nothing."""

import json
import sqlite3
import subprocess
import time

import optuna
import pytest
from helpers import FAST, TUNER, tuner
from on_a_terminal import answer
from sqlalchemy import MetaData, select

from tuner.db import make_engine

# The tables that hold rows of every study searched and confirmed.
PER_STUDY = {
    "studies",
    "study_directions",
    "trials",
    "trial_params",
    "trial_values",
    "trial_intermediate_values",
    "trial_user_attributes",
    "tuner_studies",
    "tuner_trials",
    "tuner_curves",
    "tuner_confirmations",
}


def search(storage, study, *args):
    result = tuner("search", *FAST, "--study", study, "--trials", "6", *args, storage=storage)
    assert result.exit_code == 0, result.output


def rows(url):
    """Every row of every table, Optuna's and tuner's, by table."""
    engine = make_engine(url)
    tables = MetaData()
    with engine.connect() as connection:
        tables.reflect(connection)
        found = {
            name: sorted(map(repr, connection.execute(select(table))))
            for name, table in tables.tables.items()
        }
    engine.dispose()
    return found


def make_two(url):
    """Study ``kept`` alone, its rows; then study ``gone`` beside it, searched and confirmed."""
    search(url, "kept", "--confirm", "0")
    alone = rows(url)
    search(url, "gone", "--confirm", "2x2", "--seed", "1")
    return url, alone


@pytest.fixture
def two(storage_url):
    return make_two(storage_url)


def test_delete_removes_every_row_of_the_study_and_nothing_else(two):
    url, alone = two
    grew = {name for name, found in rows(url).items() if len(found) > len(alone.get(name, []))}

    result = tuner("delete", "gone", "--yes", storage=url)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Deleted study gone (synthetic; 6 trials: ")
    assert "; 4 confirmation runs) from " in result.stdout
    assert grew >= PER_STUDY
    assert rows(url) == alone
    listed = tuner("studies", "--format", "json", storage=url)
    assert [study["name"] for study in json.loads(listed.stdout)] == ["kept"]
    assert tuner("best", "kept", storage=url).exit_code == 0


def test_delete_is_one_transaction(sqlite_url):
    url, _ = make_two(sqlite_url)
    with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
        connection.execute(
            "CREATE TRIGGER kept BEFORE DELETE ON studies BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
    before = rows(url)

    result = tuner("delete", "gone", "--yes", storage=url)

    # Optuna's rows go last: tuner's, deleted first, must be back.
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert rows(url) == before


def test_delete_on_postgres_in_one_transaction(postgres_url):
    search(postgres_url, "gone", "--confirm", "0")
    engine = make_engine(postgres_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE 'no'; END $$ "
            "LANGUAGE plpgsql; CREATE TRIGGER kept BEFORE DELETE ON studies "
            "FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
    engine.dispose()
    before = rows(postgres_url)

    result = tuner("delete", "gone", "--yes", storage=postgres_url)

    assert result.exit_code == 1
    assert rows(postgres_url) == before


def test_a_study_deleted_by_optuna_is_shown_as_such_and_can_be_deleted(two):
    url, alone = two
    optuna.delete_study(study_name="gone", storage=url)
    before = rows(url)

    table = tuner("studies", storage=url)
    listed = json.loads(tuner("studies", "--format", "json", storage=url).stdout)
    best = tuner("best", "gone", storage=url)
    again = tuner("search", *FAST, "--study", "gone", "--trials", "2", storage=url)

    gone = next(study for study in listed if study["name"] == "gone")
    assert gone["in_optuna"] is False
    assert gone["trials"]["total"] == 0 and gone["best"] is None
    lines = table.stdout.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("gone"))
    assert lines[row].split()[:3] == ["gone", "synthetic", "-"]
    assert "deleted from Optuna's tables; tuner delete gone removes the rest" in lines[row + 1]
    assert best.exit_code == 2
    assert "study 'gone' was deleted from Optuna's tables" in best.stderr
    assert again.exit_code == 2 and "tuner delete gone" in again.stderr
    assert rows(url) == before

    deleted = tuner("delete", "gone", "--yes", "--format", "json", storage=url)

    assert deleted.exit_code == 0, deleted.output
    data = json.loads(deleted.stdout)
    assert data["in_optuna"] is False and data["rows"]["tuner_trials"] == 6
    assert data["rows"].get("trials", 0) == 0
    assert rows(url) == alone


def drop_tuners_tables(url):
    """tuner's tables gone, Optuna's kept: as a hand-made cleanup, or a restore of Optuna's
    tables alone, leaves a database."""
    engine = make_engine(url)
    tables = MetaData()
    with engine.begin() as connection:
        tables.reflect(connection)
        # Table by table: the metadata's drop_all would drop Optuna's enum types on PostgreSQL.
        for table in reversed(tables.sorted_tables):
            if table.name.startswith("tuner_"):
                table.drop(connection)
    engine.dispose()


def test_the_studies_only_optuna_holds_are_listed_and_can_be_deleted(two):
    url, _ = two
    drop_tuners_tables(url)
    before = rows(url)
    note = (
        f"Optuna's tables in {url} hold 2 studies that tuner has no record of: kept (6 trials), "
        "gone (6 trials). tuner's tables are missing: restore them from a backup to read them "
        "with tuner; tuner db upgrade makes them anew, empty. tuner delete NAME removes "
        "a study from Optuna's tables.\n"
    )

    table = tuner("studies", storage=url)
    listed = tuner("studies", "--format", "json", storage=url)
    best = tuner("best", "gone", storage=url)

    assert table.exit_code == 0, table.output
    assert " ".join(table.stdout.split()) == " ".join(note.split())
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []
    assert " ".join(listed.stderr.split()) == " ".join(note.split())
    assert (best.exit_code, best.stderr) == (
        2,
        "Error: study 'gone' is in Optuna's tables alone: tuner has no record of it (tuner's "
        "tables are missing), so read it with Optuna, or remove it with tuner delete gone\n",
    )
    assert rows(url) == before

    deleted = tuner("delete", "gone", "--yes", "--format", "json", storage=url)

    assert deleted.exit_code == 0, deleted.output
    data = json.loads(deleted.stdout)
    assert (data["in_tuner"], data["in_optuna"], data["trials"]) == (False, True, 6)
    assert data["rows"]["trials"] == 6 and data["rows"]["studies"] == 1
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["kept"]


def test_bad_input_deletes_nothing(sqlite_url, tmp_path):
    url, _ = make_two(sqlite_url)
    before = rows(url)
    missing = f"sqlite:///{tmp_path / 'none.db'}"

    typo = tuner("delete", "gome", "--yes", storage=url)
    unasked = tuner("delete", "gone", storage=url)
    nowhere = tuner("delete", "gone", "--yes", storage=missing)

    assert (typo.exit_code, typo.stderr) == (
        2,
        f"Error: no study 'gome' in {url}; did you mean 'gone'?\n",
    )
    assert unasked.exit_code == 2
    assert unasked.stderr == (
        "Error: tuner delete asks first, and stdin is no terminal: give --yes\n"
    )
    assert nowhere.exit_code == 2 and not (tmp_path / "none.db").exists()
    assert rows(url) == before


def test_on_a_terminal_it_asks_first(sqlite_url, tmp_path):
    search(sqlite_url, "gone", "--confirm", "0")
    before = rows(sqlite_url)
    args = ["delete", "gone", "--storage", sqlite_url]

    kept, kept_status = answer(args, b"n\n", tmp_path)
    after_no = rows(sqlite_url)
    deleted, deleted_status = answer(args, b"y\n", tmp_path)

    assert "Delete study gone (synthetic; 6 trials: " in kept
    assert "It cannot be undone. [y/N]: " in kept
    assert "Nothing deleted." in kept and kept_status == 1
    assert after_no == before
    assert deleted_status == 0 and "Deleted study gone" in deleted
    assert json.loads(tuner("studies", "--format", "json", storage=sqlite_url).stdout) == []


def test_a_study_deleted_during_its_search_stops_the_search_in_one_line(storage_url):
    command = [TUNER, "search", *FAST, "--study", "gone", "--trials", "2000", "--quiet"]
    searching = subprocess.Popen(
        [*command, "--confirm", "0", "--storage", storage_url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(rows(storage_url).get("tuner_trials", [])) < 3:
            assert time.monotonic() < deadline and searching.poll() is None
            time.sleep(0.2)
        assert tuner("delete", "gone", "--yes", storage=storage_url).exit_code == 0
        _, stderr = searching.communicate(timeout=60)
    finally:
        searching.kill()

    assert searching.returncode == 1
    assert (
        stderr
        == "Error: study 'gone' was deleted while this search ran on it: the search stopped\n"
    )
    assert not rows(storage_url)["tuner_trials"] and not rows(storage_url)["trials"]
    assert json.loads(tuner("studies", "--format", "json", storage=storage_url).stdout) == []
