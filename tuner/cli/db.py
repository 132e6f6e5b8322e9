"""``tuner db``: bring the tuner tables of a storage up to date, and say where they stand.

A SQLite file upgrades itself on first use; a PostgreSQL database shared by many workers is
upgraded only on purpose, with ``tuner db upgrade``, so these commands exist for it above all.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import click

from tuner.cli import format_option, storage_option
from tuner.cli.output import echo_json, table
from tuner.errors import TunerError

if TYPE_CHECKING:
    from tuner.api import SchemaState


@click.group("db")
def db_group() -> None:
    """Migrate and inspect tuner's tables in a storage database.

    tuner's tables sit beside Optuna's, prefixed tuner_, with their own migration history in
    tuner_alembic_version.
    """


def _show(state: SchemaState) -> None:
    row = (state.storage, state.revision or "none", state.head, state.status)
    click.echo(table(["storage", "revision", "head", "status"], [row]))


@db_group.command("upgrade")
@storage_option
@format_option("table", "json")
def upgrade_command(storage: str, fmt: str) -> None:
    """Create or upgrade tuner's tables.

    Brings them to this tuner's revision. Run it once on a PostgreSQL database, with no worker
    of an older tuner running, before searching with a new tuner. A SQLite file upgrades itself
    on first use; this only does it ahead of time. It also fails the trials of workers that died
    (silent past the heartbeat's grace), and queues their settings once more.
    """
    # Start-up time: SQLAlchemy and alembic, and for the reaping Optuna.
    from tuner.api import upgrade_storage

    before, after, reaped = upgrade_storage(storage)
    if fmt == "json":
        echo_json(
            {
                "storage": after.storage,
                "from": before.revision,
                "to": after.revision,
                "reaped": reaped,
            }
        )
        return
    if before.revision == after.revision:
        click.echo(f"{after.storage} is at revision {after.revision}, the newest: nothing to do.")
    else:
        click.echo(
            f"Upgraded {after.storage} from revision {before.revision or 'none'} "
            f"to {after.revision}."
        )
    if reaped:
        click.echo(f"Failed {reaped} trial(s) whose workers had died; their settings run again.")


@db_group.command("current")
@storage_option
@format_option("table", "json")
def current_command(storage: str, fmt: str) -> None:
    """Show where tuner's tables stand.

    Shows their revision and this tuner's newest, and changes nothing. Status is one of:
    missing (no SQLite file), empty (no tuner tables), behind, current, or ahead (a newer
    tuner made them).
    """
    from tuner.api import schema_state  # start-up time: SQLAlchemy and alembic

    state = schema_state(storage)
    if fmt == "json":
        echo_json(asdict(state))
    else:
        _show(state)


@db_group.command("check")
@storage_option
@format_option("table", "json")
def check_command(storage: str, fmt: str) -> None:
    """Check tuner's tables against this tuner.

    Exits 1, with the reason, unless they are at this tuner's revision and match its models.
    Changes nothing.
    """
    from tuner.api import check  # start-up time: SQLAlchemy and alembic

    state, differences = check(storage)
    if fmt == "json":
        ok = state.status == "current" and not differences
        echo_json({**asdict(state), "differences": differences, "ok": ok})
    problem = state.problem
    if problem is None and differences:
        problem = f"the tuner tables in {state.storage} differ from its models: " + ", ".join(
            differences
        )
    if problem:
        raise TunerError(problem)
    if fmt == "table":
        click.echo(f"{state.storage}: the tuner tables are at revision {state.head} and match.")


COMMANDS = [db_group]
