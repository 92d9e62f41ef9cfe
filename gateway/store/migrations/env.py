"""Alembic's environment for the gateway: migrates the connection :mod:`gateway.store.schema` hands it.

Run migrations through ``gateway db ...`` or :func:`gateway.store.schema.upgrade`,
never a bare ``alembic`` command: the connection (and its engine's
options, such as a PostgreSQL ``search_path``) is the caller's, and there
is no ``alembic.ini``.
"""

from alembic import context

from gateway.store import schema
from gateway.store.models import UTCDateTime


def render_item(type_, obj, autogen_context):
    """Write the store's UTCDateTime as the column type it is in the database, ``sa.DateTime(timezone=True)``:
    a revision must not import the models, which change after it."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `gateway db upgrade` or gateway.store.schema.upgrade(); "
                           "there is no offline (SQL script) mode")
    context.configure(
        connection=connection,
        target_metadata=schema.metadata,
        # SQLite cannot ALTER most things: Alembic's batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
