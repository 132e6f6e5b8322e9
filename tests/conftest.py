"""Fixtures shared by the tests: seed 0 where a search is given none, one process a search
where it is given no --jobs, a SQLite file per test,
and a PostgreSQL schema per test on the server that TUNER_TEST_POSTGRES_URL names. Without
that variable the PostgreSQL tests are skipped, and say why, so that CI can refuse a run that
skipped them.

What the tests share besides fixtures (tuner's command line, the installed command, a short
search's options) is in helpers.py.
"""

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool


@pytest.fixture(autouse=True)
def seeded(monkeypatch) -> None:
    """Seed 0 for every new study a test makes without --seed, where it would draw one at
    random: a test reads what one seed's trials do. The tests of the drawn seed unset it."""
    monkeypatch.setenv("TUNER_SEED", "0")


@pytest.fixture(autouse=True)
def one_process(monkeypatch) -> None:
    """--jobs 1 for every search a test runs without --jobs: a worker of --jobs auto costs a
    process's start-up for a few trials, and the tests run two at a time on two cores. The
    tests of --jobs auto, and of signals reaching its workers, unset it."""
    monkeypatch.setenv("TUNER_JOBS", "1")


@pytest.fixture(autouse=True)
def terminal_sized_by_itself(monkeypatch) -> None:
    """No COLUMNS or LINES: pytest-xdist's workers set them (80 by 24), and they would size
    every terminal the tests open, over the pseudo-terminal's own size."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'tuner.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose search_path is a schema made for this test alone, dropped afterwards."""
    server = os.environ.get("TUNER_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("TUNER_TEST_POSTGRES_URL is not set: PostgreSQL tests need a server")
    schema = f"tuner_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, poolclass=NullPool)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(server).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            # A connection a test left open must not hang the whole run.
            connection.execute(text("SET LOCAL lock_timeout = '10s'"))
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def own_database() -> Iterator[tuple[str, Engine]]:
    """A new database on the server, for a test whose locks or connections must be its own:
    (its URL, an engine on the server's database), dropped afterwards."""
    server = os.environ.get("TUNER_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("TUNER_TEST_POSTGRES_URL is not set: PostgreSQL tests need a server")
    name = f"tuner_own_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False), admin
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def storage_url(request) -> str:
    """Each backend in turn."""
    return request.getfixturevalue(f"{request.param}_url")
