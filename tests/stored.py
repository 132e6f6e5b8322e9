"""tuner's rows as the database holds them, read straight from its tables: what a test of
writing compares with the rows it wrote."""

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from tuner.db import ConfirmationRow, StudyRow, TrialRow, make_engine


def stored_studies(url):
    """The rows of every study, as the database holds them."""
    engine = make_engine(url)
    with Session(engine) as session:
        rows = list(session.scalars(select(StudyRow).order_by(StudyRow.id)))
    engine.dispose()
    return {row.name: row for row in rows}


def stored_trials(url, study="s1"):
    """The rows of a study's trials, curves included, by number."""
    engine = make_engine(url)
    query = (
        select(TrialRow)
        .join(StudyRow)
        .where(StudyRow.name == study)
        .options(joinedload(TrialRow.curve))
        .order_by(TrialRow.number)
    )
    with Session(engine) as session:
        rows = list(session.scalars(query).unique())
    engine.dispose()
    return rows


def stored_confirmations(url, study):
    """The rows of a study's confirmation runs, in the order they were written."""
    engine = make_engine(url)
    query = (
        select(ConfirmationRow)
        .join(StudyRow)
        .where(StudyRow.name == study)
        .order_by(ConfirmationRow.id)
    )
    with Session(engine) as session:
        rows = list(session.scalars(query))
    engine.dispose()
    return rows
