"""A ``--study`` that names no study but nearly names one is most likely a typo, which would
start a new study beside the one meant: asked about on a terminal, refused elsewhere, unless
``--new`` says a new study is meant."""

from __future__ import annotations

import shlex
import sys

import click

from tuner.errors import BadInput


def check_study_name(storage: str, study: str, new: bool) -> None:
    """Ask about, or refuse, a ``study`` that does not exist but is a typo of one that does;
    refuse ``new`` for one that exists. Reads only, and creates no SQLite file."""
    # Here for start-up time: tuner.api's storage brings in SQLAlchemy.
    from tuner.api import mask_url, near_study

    known, near = near_study(storage, study)
    if known:
        if new:
            raise BadInput(f"--new: study '{study}' exists already; leave --new out to continue it")
        return
    if near is None or new:
        return
    where = mask_url(storage)
    if not sys.stdin.isatty():
        raise BadInput(
            f"no study '{study}' in {where}; did you mean '{near}'? "
            "Give --new to start a new study of that name"
        )
    question = f"No study '{study}' in {where}, but there is '{near}'. Start a new study '{study}'?"
    if not click.confirm(question, default=False, err=True):
        click.echo(f"Nothing run. To continue the other: --study {shlex.quote(near)}", err=True)
        raise click.exceptions.Exit(1)
