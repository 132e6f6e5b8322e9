"""Deleting a study: Optuna's rows of it and tuner's, in one transaction.

Optuna's ``delete_study`` removes its own rows in a transaction of its own and leaves tuner's,
and tuner's records are linked to Optuna's by name, not by foreign key (see
:class:`~tuner.db.models.StudyRow`). So a study is deleted here, whole or not at all: its row
in Optuna's ``studies`` and in ``tuner_studies``, and every row whose foreign keys lead to
either: Optuna's trials with their parameters, values, attributes and heartbeats, and tuner's
trials, curves and confirmation runs. The tables and their keys are read from the database
itself, so that the rows of a table that a later Optuna adds go too.
"""

from __future__ import annotations

from sqlalchemy import Connection, MetaData, Table, delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import ColumnElement

from tuner.db.engine import make_engine
from tuner.db.models import StudyRow
from tuner.db.optuna import optuna_tables
from tuner.db.urls import mask_url, storage_failure
from tuner.errors import BadInput


def delete_study(url: str, name: str) -> dict[str, int]:
    """Delete study ``name`` from Optuna's tables and tuner's; the rows deleted, by table.

    A study that one side alone holds (Optuna's side deleted by another tool, or tuner's
    tables dropped) goes from that side. BadInput, with nothing deleted, when neither holds it.
    """
    engine = make_engine(url)
    try:
        # One transaction; on SQLite it takes the write lock before it reads.
        with engine.begin() as connection:
            tables = MetaData()
            tables.reflect(connection)
            deleted: dict[str, int] = {}
            sides = (
                (StudyRow.__tablename__, "name"),
                (optuna_tables()[1].name, "study_name"),
            )
            for table_name, name_column in sides:
                if table_name in tables.tables:
                    table = tables.tables[table_name]
                    _delete(connection, tables, table, table.c[name_column] == name, deleted)
            if not any(deleted.get(table_name) for table_name, _ in sides):
                raise BadInput(f"no study '{name}' in {mask_url(url)}")
    except SQLAlchemyError as error:
        raise storage_failure(error, engine.url) from None
    finally:
        engine.dispose()
    return deleted


def _delete(
    connection: Connection,
    tables: MetaData,
    table: Table,
    condition: ColumnElement[bool],
    deleted: dict[str, int],
) -> None:
    """Delete the rows of ``table`` that meet ``condition``, after every row whose foreign
    keys lead to them, and count them in ``deleted``."""
    # Locked first (PostgreSQL; SQLite's write lock already holds everything): a search still
    # running on the study would otherwise add a row that leads to them (a heartbeat) between
    # the deletion of its table's rows and theirs, and fail this transaction.
    connection.execute(select(table).where(condition).with_for_update())
    for child in tables.sorted_tables:
        for key in child.foreign_keys:
            if key.column.table is table and child is not table:
                parents = select(key.column).where(condition)
                _delete(connection, tables, child, key.parent.in_(parents), deleted)
    count = connection.execute(delete(table).where(condition)).rowcount
    deleted[table.name] = deleted.get(table.name, 0) + count
