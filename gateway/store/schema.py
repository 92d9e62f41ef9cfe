"""The gateway's schema: every table, and the Alembic migrations that build it.

The database changes only through the revisions in
``gateway/store/migrations/versions`` (``docs/migrations.md`` says how to add
one). Nothing creates tables from the models: :func:`upgrade` brings a
database to a revision (``gateway db upgrade``), and the gateway's services
and commands check with :func:`require_current` that it is at this code's
:func:`head` before they use it.

:data:`metadata` holds every table of every sub-package, so Alembic's
autogenerate and the tests compare the migrations against the whole model.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, inspect

# Every module that defines tables on Base. A test imports all of gateway and fails if one is missing here.
import gateway.audit.models  # noqa: F401
import gateway.delivery.models  # noqa: F401
import gateway.linkage.models  # noqa: F401
import gateway.retention.models  # noqa: F401
import gateway.routing.models  # noqa: F401
import gateway.store.models  # noqa: F401
from gateway.store.crypto import EncryptedText, KeyedHash
from gateway.store.engine import StoreConfigError, make_engine, read_only
from gateway.store.models import Base, UTCDateTime

#: All the gateway's tables.
metadata = Base.metadata

#: The Alembic environment, shipped inside the package (an installed wheel needs no alembic.ini).
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _render_item(type_, obj, autogen_context):
    """Write the store's UTCDateTime as the column type it is in the database, ``sa.DateTime(timezone=True)``:
    a revision must not import the models, which change after it."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, (EncryptedText, KeyedHash)):  # the column type under the encryption
        return "sa.Text()" if isinstance(obj, EncryptedText) else "sa.String(length=64)"
    return False


def context_options(dialect_name: str) -> dict:
    """Return the options of Alembic's migration context, the same for migrations, autogenerate and checks.

    Column types are compared (UTCDateTime compares as the
    ``DateTime(timezone=True)`` it compiles to), and SQLite, which cannot
    ALTER most things, gets Alembic's batch mode (a changed table is copied).
    """
    return {"target_metadata": metadata, "compare_type": True, "render_item": _render_item,
            "render_as_batch": dialect_name == "sqlite"}


def differences(connection: Connection, target: MetaData | None = None) -> list:
    """Return what autogenerate finds between the database and ``target`` (default: :data:`metadata`).

    An empty list means the migrations build exactly the models: tables,
    columns, types, nullability, indexes, unique and foreign keys. (Alembic
    does not compare CHECK constraints; the tests compare their names.)
    """
    options = context_options(connection.dialect.name)
    options.pop("target_metadata")
    return compare_metadata(MigrationContext.configure(connection, opts=options), target or metadata)


class SchemaNotCurrent(StoreConfigError):
    """The database is not at the revision this gateway's code needs."""


def alembic_config(connection: Connection | None = None, *, also_versions: Path | None = None) -> Config:
    """Return the Alembic configuration (built in code), running on ``connection`` when given.

    ``env.py`` migrates the connection it finds in ``config.attributes``;
    it never builds an engine of its own. ``also_versions`` adds a folder
    of revisions after the package's own (the tests write new ones there).
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if also_versions is not None:
        config.set_main_option("version_locations", os.pathsep.join([str(MIGRATIONS_DIR / "versions"),
                                                                     str(also_versions)]))
    # A new revision's file is named by its id alone ("0002_person_index.py"); "%%" is ConfigParser's "%".
    config.set_main_option("file_template", "%%(rev)s")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """Return the revision this code needs (the newest in ``migrations/versions``).

    Raises Alembic's ``CommandError`` when the revisions have more than one
    head (two branches added without a merge: a developer's mistake).
    """
    return _script().get_current_head()


def revisions() -> list[str]:
    """Return every revision id, oldest first."""
    return [script.revision for script in reversed(list(_script().walk_revisions()))]


@contextlib.contextmanager
def _engine(target: str | Engine) -> Iterator[Engine]:
    if isinstance(target, Engine):  # the caller's engine, with its connect_args (search_path, ...)
        yield target
        return
    engine = make_engine(target)
    try:
        yield engine
    finally:
        engine.dispose()


def current(target: str | Engine) -> str | None:
    """Return the database's revision, or ``None`` when it has none (an empty database).

    ``target`` is a database URL or an engine. Raises
    :class:`~gateway.store.engine.StoreConfigError` for an unsupported URL and
    SQLAlchemy's errors when the database cannot be reached.
    """
    with _engine(target) as engine, read_only(engine) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(target: str | Engine, revision: str = "head") -> str | None:
    """Upgrade the database to ``revision`` (default: :func:`head`) in one transaction; return its revision.

    ``target`` is a database URL or an engine. Raises
    :class:`StoreConfigError` when the database holds gateway tables but no
    revision (made before migrations, see ``docs/migrations.md``), Alembic's
    ``CommandError`` for an unknown revision, and SQLAlchemy's errors when a
    migration fails (then nothing of the upgrade is kept).
    """
    with _engine(target) as engine:
        with engine.begin() as connection:
            if MigrationContext.configure(connection).get_current_revision() is None:
                _refuse_unversioned_tables(connection, engine)
            command.upgrade(alembic_config(connection), revision)
        return current(engine)


def stamp(target: str | Engine, revision: str) -> None:
    """Record ``revision`` as the database's without running any migration (see ``docs/migrations.md``)."""
    with _engine(target) as engine, engine.begin() as connection:
        command.stamp(alembic_config(connection), revision)


def _refuse_unversioned_tables(connection: Connection, engine: Engine) -> None:
    existing = sorted(set(inspect(connection).get_table_names()) & set(metadata.tables))
    if existing:
        raise StoreConfigError(
            f"the database {_name(engine)} has gateway tables ({', '.join(existing)}) but no schema revision: "
            "it was made before migrations. Check its tables match revision 0001_baseline, run "
            "`gateway db stamp 0001_baseline`, then `gateway db upgrade` (docs/migrations.md)")


def require_current(target: str | Engine) -> None:
    """Return when the database (a URL or an engine) is at :func:`head`; raise :class:`SchemaNotCurrent` otherwise.

    The message names the database, its revision and the one needed, and
    tells the operator to run ``gateway db upgrade``. Raises
    :class:`~gateway.store.engine.StoreConfigError` for an unsupported URL
    and SQLAlchemy's errors when the database cannot be reached.
    """
    with _engine(target) as engine:
        _require_current(engine)


def _require_current(engine: Engine) -> None:
    found, needed = current(engine), head()
    if found == needed:
        return
    if found is None:
        raise SchemaNotCurrent(f"the database {_name(engine)} has no gateway schema (no revision); this gateway "
                               f"needs revision {needed}: run `gateway db upgrade`")
    if found not in revisions():
        raise SchemaNotCurrent(f"the database {_name(engine)} is at revision {found}, which this gateway does not "
                               f"know (it needs {needed}): the database was upgraded by a newer gateway")
    raise SchemaNotCurrent(f"the database {_name(engine)} is at revision {found}; this gateway needs {needed}: "
                           "run `gateway db upgrade`")


def _name(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
