"""tuner's migrations, on SQLite and PostgreSQL: from nothing to head and back, in step with the
models, beside Optuna's tables and any other application's, and shipped inside the wheel."""

import hashlib
import math
import shutil
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import optuna
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from stored import stored_studies, stored_trials

from tuner import db
from tuner.db import (
    CurveRow,
    StudyRow,
    TrialRow,
    check,
    downgrade,
    make_engine,
    open_store,
    optuna_storage,
    upgrade,
)
from tuner.errors import TunerError

OURS = {
    "tuner_studies",
    "tuner_trials",
    "tuner_curves",
    "tuner_confirmations",
    "tuner_alembic_version",
}
ROOT = Path(__file__).resolve().parent.parent


def tables(url):
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def rows(url, table):
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return sorted(connection.execute(text(f"SELECT * FROM {table}")).all())
    finally:
        engine.dispose()


def execute(url, statement):
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


def indexes(url, table):
    engine = make_engine(url)
    try:
        return {index["name"] for index in inspect(engine).get_indexes(table)}
    finally:
        engine.dispose()


def columns(url, table):
    engine = make_engine(url)
    try:
        return {column["name"] for column in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def test_upgrade_from_empty_to_head_and_back_to_empty(storage_url):
    before, after = upgrade(storage_url)

    assert (before.status, after.status) == ("empty", "current")
    assert tables(storage_url) == OURS
    assert {
        "ix_tuner_trials_study_id_optimizer",
        "ix_tuner_trials_study_id_schedule",
        "ix_tuner_trials_study_id_outcome",
        "ix_tuner_trials_study_id_value",
    } <= indexes(storage_url, "tuner_trials")

    assert downgrade(storage_url, "base").status == "empty"
    assert tables(storage_url) == {"tuner_alembic_version"}
    assert rows(storage_url, "tuner_alembic_version") == []

    assert upgrade(storage_url)[1].status == "current"


def test_the_models_match_the_migrations(storage_url):
    upgrade(storage_url)

    state, differences = check(storage_url)

    assert state.status == "current"
    assert differences == []


def test_check_sees_a_table_changed_by_hand(storage_url):
    upgrade(storage_url)
    execute(storage_url, "DROP INDEX ix_tuner_trials_study_id_value")

    assert check(storage_url)[1] == ["add_index ix_tuner_trials_study_id_value"]


SHARED_COLUMNS = {
    "tuner_studies": "id, name, task, settings, plugins, versions, device, seed, command, "
    "created_at",
    "tuner_trials": "id, study_id, number, optimizer, schedule, params, seed, steps, wall_time_s, "
    "step_time_s, compiled, metrics, value, outcome, reason, finished_at",
    "tuner_curves": "trial_id, losses, lrs, evals",
}


def contents(url):
    """Every row of tuner's tables, in the columns that 0002 and 0003 share."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table: connection.execute(text(f"SELECT {names} FROM {table} ORDER BY 1")).all()
                for table, names in SHARED_COLUMNS.items()
            }
    finally:
        engine.dispose()


def recorded_study(url, name, trials, values=None):
    """A study with ``trials`` trials, curves and all, as tuner search writes them; ``values``
    are their values, when not the usual finite ones."""
    values = values or [1 / (number + 1) for number in range(trials)]
    store = open_store(url)
    store.save_study(
        StudyRow(
            name=name,
            task="digits",
            settings={"metric": "val_loss", "space": {"lr": {"low": 1e-4, "high": 1e-1}}},
            plugins={"tuner-builtins": "0.1.0"},
            versions={"mlx": "0.32.4", "optuna": "5.0.0"},
            device="cpu",
            seed=7,
            command=f"tuner search --study {name}",
            created_at=datetime(2026, 12, 1, 9, 30, 1, 123456, tzinfo=UTC),
        )
    )
    for number in range(trials):
        store.save_trial(
            name,
            TrialRow(
                number=number,
                optimizer=("adamw", "sgd")[number % 2],
                schedule="cosine",
                params={"lr": 10.0 ** -(number + 1)},
                seed=number,
                steps=4,
                duration_s=0.5 + number,
                step_time_s=0.125,
                compiled=True,
                metrics={"val_loss": 1 / (number + 1), "diverged_at": math.inf},
                value=values[number],
                outcome=("complete", "pruned", "diverged")[number % 3],
                curve=CurveRow(
                    losses=[2.5, 1.25 / (number + 1), 0.5, 0.25],
                    lrs=[0.1 * math.cos(step / 4) for step in range(4)],
                    evals=[{"step": 4, "val_loss": 1 / (number + 1)}],
                ),
                finished_at=datetime(2026, 12, 1, 9, 31, number, tzinfo=UTC),
            ),
        )
    store.close()
    return stored_studies(url)[name], stored_trials(url, name)


def test_0003_drops_optunas_ids_and_keeps_every_record_both_ways(storage_url):
    upgrade(storage_url)
    first = recorded_study(storage_url, "first", trials=3)
    second = recorded_study(storage_url, "second", trials=2)
    stored = contents(storage_url)

    assert downgrade(storage_url, "0002").revision == "0002"
    assert "optuna_study_id" in columns(storage_url, "tuner_studies")
    assert "optuna_trial_id" in columns(storage_url, "tuner_trials")
    assert "ix_tuner_trials_optuna_trial_id" in indexes(storage_url, "tuner_trials")
    assert contents(storage_url) == stored
    assert {row.optuna_trial_id for row in rows(storage_url, "tuner_trials")} == {None}
    # As a tuner at 0002 left them: a trial's Optuna id written, a study's not.
    execute(storage_url, "UPDATE tuner_trials SET optuna_trial_id = 100 + number")

    before, after = upgrade(storage_url)

    assert (before.revision, after.status) == ("0002", "current")
    assert "optuna_study_id" not in columns(storage_url, "tuner_studies")
    assert "optuna_trial_id" not in columns(storage_url, "tuner_trials")
    assert "ix_tuner_trials_optuna_trial_id" not in indexes(storage_url, "tuner_trials")
    assert contents(storage_url) == stored
    assert check(storage_url)[1] == []
    assert (stored_studies(storage_url)["first"], stored_trials(storage_url, "first")) == first
    assert (stored_studies(storage_url)["second"], stored_trials(storage_url, "second")) == second

    downgrade(storage_url, "0002")
    assert contents(storage_url) == stored
    assert {row.optuna_trial_id for row in rows(storage_url, "tuner_trials")} == {None}


def test_0004_stores_values_with_their_type_and_gives_them_back_both_ways(storage_url):
    upgrade(storage_url)
    values = [0.25, math.inf, -math.inf, math.nan, None, 1e300]
    study, trials = recorded_study(storage_url, "typed", len(values), values)
    # What an older tuner stored: NaN as NULL on SQLite, which has no NaN.
    on_postgres = storage_url.startswith("postgresql")
    older = [None if v is not None and math.isnan(v) and not on_postgres else v for v in values]

    downgrade(storage_url, "0003")

    assert "value_type" not in columns(storage_url, "tuner_trials")
    held = [row.value for row in rows(storage_url, "tuner_trials")]
    assert repr(held) == repr(older)

    before, after = upgrade(storage_url)

    assert (before.revision, after.status) == ("0003", "current")
    assert check(storage_url)[1] == []
    if on_postgres:
        assert stored_trials(storage_url, "typed") == trials
    else:
        # The NaN that SQLite lost before 0004 stays lost: a value that is not there.
        assert [t.value_type for t in stored_trials(storage_url, "typed")] == [
            "finite",
            "inf_pos",
            "inf_neg",
            None,
            None,
            "finite",
        ]
    assert stored_studies(storage_url) == {"typed": study}


def test_0007_adds_populations_and_trials_recorded_before_trained_alone(storage_url):
    upgrade(storage_url)
    study, trials = recorded_study(storage_url, "older", trials=3)
    stored = contents(storage_url)
    execute(storage_url, "UPDATE tuner_trials SET population = 1 WHERE number > 0")

    assert downgrade(storage_url, "0006").revision == "0006"
    assert "population" not in columns(storage_url, "tuner_trials")
    assert contents(storage_url) == stored

    before, after = upgrade(storage_url)

    assert (before.revision, after.status) == ("0006", "current")
    assert check(storage_url)[1] == []
    assert contents(storage_url) == stored
    assert [row.population for row in stored_trials(storage_url, "older")] == [None] * 3
    assert stored_trials(storage_url, "older") == trials
    assert stored_studies(storage_url) == {"older": study}


def optuna_first(url):
    """A database that Optuna alone made, with a study and a finished trial in it."""
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(storage=storage, study_name="older")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    storage.engine.dispose()


def test_a_database_that_optuna_made_first_gains_our_tables_and_keeps_its_own(storage_url):
    optuna_first(storage_url)
    optunas = rows(storage_url, "alembic_version")
    assert len(optunas) == 1

    upgrade(storage_url)
    storage = optuna_storage(storage_url)

    assert rows(storage_url, "alembic_version") == optunas
    assert tables(storage_url) >= OURS
    assert len(optuna.load_study(study_name="older", storage=storage).trials) == 1
    assert check(storage_url)[1] == []


def test_a_sqlite_file_that_optuna_made_first_upgrades_on_first_use(sqlite_url):
    optuna_first(sqlite_url)
    optunas = rows(sqlite_url, "alembic_version")

    open_store(sqlite_url).close()

    assert rows(sqlite_url, "alembic_version") == optunas
    assert db.schema_state(sqlite_url).status == "current"


def test_another_applications_alembic_version_is_left_alone(storage_url):
    execute(storage_url, "CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
    execute(storage_url, "INSERT INTO alembic_version VALUES ('c0ffee12')")
    execute(storage_url, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")

    upgrade(storage_url)
    open_store(storage_url).close()

    assert rows(storage_url, "alembic_version") == [("c0ffee12",)]
    assert tables(storage_url) == OURS | {"alembic_version", "users"}
    assert check(storage_url) == (db.schema_state(storage_url), [])


def digest(path):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in path.parent.iterdir()}


def test_a_schema_newer_than_this_tuner_is_refused_and_left_unchanged(storage_url):
    upgrade(storage_url)
    execute(storage_url, "UPDATE tuner_alembic_version SET version_num = '9999'")
    before = rows(storage_url, "tuner_alembic_version"), tables(storage_url)
    path = Path(make_url(storage_url).database or "")
    files = digest(path) if storage_url.startswith("sqlite") else None

    for attempt in (open_store, optuna_storage, upgrade, lambda url: downgrade(url, "base")):
        with pytest.raises(TunerError, match="revision 9999, newer than this tuner") as error:
            attempt(storage_url)
        assert "\n" not in str(error.value)

    assert (rows(storage_url, "tuner_alembic_version"), tables(storage_url)) == before
    assert db.schema_state(storage_url).status == "ahead"
    if files is not None:
        assert digest(path) == files


NEXT_MIGRATION = '''"""The migration after this tuner's newest, as the next tuner would ship it."""

revision = "next"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
'''


@pytest.fixture
def next_tuner(tmp_path, monkeypatch):
    """A tuner whose migrations go one further than this one's; its head is "next"."""
    folder = tmp_path / "next_migrations"
    shutil.copytree(ROOT / "alembic", folder, ignore=shutil.ignore_patterns("__pycache__"))
    head = db.schema_state(f"sqlite:///{tmp_path / 'absent.db'}").head
    (folder / "versions" / "next.py").write_text(NEXT_MIGRATION.format(head=head))
    monkeypatch.setattr(db.migrations, "migrations_folder", lambda: folder)
    return head


def test_tables_behind_are_upgraded_on_sqlite_and_refused_on_postgres(storage_url, request):
    upgrade(storage_url)
    ours = request.getfixturevalue("next_tuner")

    if storage_url.startswith("sqlite"):
        open_store(storage_url).close()
        assert rows(storage_url, "tuner_alembic_version") == [("next",)]
        return
    for attempt in (open_store, optuna_storage):
        with pytest.raises(TunerError) as error:
            attempt(storage_url)
        assert str(error.value) == (
            f"the tuner tables in {db.mask_url(storage_url)} are at revision {ours}, older than "
            "this tuner needs (next): run `tuner db upgrade` with this --storage"
        )
    assert rows(storage_url, "tuner_alembic_version") == [(ours,)]


def test_the_wheel_ships_the_migrations_and_runs_them(tmp_path):
    source = tmp_path / "source"
    # A copy, because building in the checkout would leave build/ and egg-info behind.
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__"),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path, source],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("tuner-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = {n for n in names if n.startswith("tuner/migrations/")}
    assert {
        "tuner/migrations/env.py",
        "tuner/migrations/script.py.mako",
        "tuner/migrations/versions/0001_first_tables.py",
    } <= migrations
    assert {"tuner/db/__init__.py", "tuner/db/migrations.py"} <= names
    installed = tmp_path / "installed"
    zipfile.ZipFile(wheel).extractall(installed)

    # The unpacked wheel comes first on the path; this environment supplies the dependencies.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tuner.db, tuner.cli; print(tuner.db.migrations.migrations_folder());"
            " tuner.cli.main()",
            "db",
            "upgrade",
            "--storage",
            f"sqlite:///{tmp_path / 'wheel.db'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(installed), "PATH": ""},
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == str(installed / "tuner" / "migrations")
    assert f"from revision none to {db.schema_state(f'sqlite:///{tmp_path}/x.db').head}" in (
        result.stdout
    )
