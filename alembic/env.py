"""Runs tuner's migrations on the connection that ``tuner.db`` hands over.

tuner calls alembic from code (``tuner db upgrade``, or the first use of a SQLite file), inside a
transaction of its own, so this file only configures the context. For a developer writing a new
migration, ``alembic -c alembic/alembic.ini revision --autogenerate -m "..."`` connects to the
``sqlalchemy.url`` of that file instead.
"""

from alembic import context

from tuner.db import make_engine, migration_options

connection = context.config.attributes.get("connection")
if connection is None:
    engine = make_engine(context.config.get_main_option("sqlalchemy.url", ""))
    with engine.begin() as connection:
        context.configure(connection=connection, **migration_options())
        context.run_migrations()
    engine.dispose()
else:
    context.configure(connection=connection, **migration_options())
    with context.begin_transaction():
        context.run_migrations()
