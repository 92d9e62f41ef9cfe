"""Alembic's environment for the gateway: migrates the connection :mod:`gateway.store.schema` hands it.

Run migrations through ``gateway db ...`` or :func:`gateway.store.schema.upgrade`,
never a bare ``alembic`` command: the connection (and its engine's
options, such as a PostgreSQL ``search_path``) is the caller's, and there
is no ``alembic.ini``.
"""

from alembic import context

from gateway.store import schema


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `gateway db upgrade` or gateway.store.schema.upgrade(); "
                           "there is no offline (SQL script) mode")
    context.configure(connection=connection, **schema.context_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
