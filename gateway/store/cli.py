"""``gateway db``: bring the database's schema to this gateway's revision, and say where it is.

The database is ``--database URL`` or, by default, ``GATEWAY_DATABASE_URL``
(:class:`gateway.config.Settings`). ``docs/migrations.md`` has the how-to.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click
from alembic import command
from alembic.util import CommandError
from sqlalchemy import Engine

from gateway.store import schema
from gateway.store.cli_support import database_name as _name
from gateway.store.cli_support import with_engine
from gateway.store.engine import StoreConfigError, make_engine

#: A revision id: four digits, then what it does ("0002_person_index").
REVISION_ID = re.compile(r"^\d{4}_[a-z0-9_]+$")

#: Open the database for a command; database and migration errors become a message, not a traceback.
_with_engine = with_engine(StoreConfigError, CommandError)


def _describe(revision: str | None) -> str:
    return revision if revision is not None else "no revision (an empty database, or one made before migrations)"


@click.group("db")
def db_group() -> None:
    """The database schema: upgrade it to this gateway's revision, show or check where it is."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, metavar="REV",
              help="The revision to upgrade to (an id such as 0001_baseline, or head).")
@_with_engine
def upgrade_command(engine: Engine, revision: str) -> None:
    """Upgrade the database to this gateway's revision (or REV), in one transaction."""
    before = schema.current(engine)
    after = schema.upgrade(engine, revision)
    if before == after:
        click.echo(f"{_name(engine)}: already at {_describe(after)}")
    else:
        click.echo(f"{_name(engine)}: upgraded from {before or 'an empty database'} to {after}")


@db_group.command("current")
@_with_engine
def current_command(engine: Engine) -> None:
    """Show the database's revision and whether it is the one this gateway needs."""
    found, needed = schema.current(engine), schema.head()
    state = "this gateway's revision" if found == needed else f"this gateway needs {needed}: run `gateway db upgrade`"
    click.echo(f"{_name(engine)}: {_describe(found)} ({state})")


@db_group.command("check")
@_with_engine
def check_command(engine: Engine) -> None:
    """Exit 0 when the database is at this gateway's revision, 1 (saying why) when not."""
    try:
        schema.require_current(engine)
    except schema.SchemaNotCurrent as exc:
        click.echo(str(exc), err=True)
        raise click.exceptions.Exit(1) from None
    click.echo(f"{_name(engine)}: at {schema.head()}")


@db_group.command("stamp")
@click.argument("revision")
@_with_engine
def stamp_command(engine: Engine, revision: str) -> None:
    """Record REVISION as the database's without running migrations.

    Only for a database made before migrations whose tables you have
    checked match REVISION (see docs/migrations.md).
    """
    schema.stamp(engine, revision)
    click.echo(f"{_name(engine)}: stamped {schema.current(engine)}")


@db_group.command("revision")
@click.argument("message")
@click.option("--id", "revision_id", required=True, metavar="NNNN_WHAT",
              help="The new revision's id: the next number and what it does, e.g. 0002_person_index.")
@click.option("--empty", is_flag=True, help="Write an empty revision (data migrations) instead of comparing.")
@click.option("--database", "database_url", metavar="URL",
              help="Compare against this database (at head) instead of a temporary SQLite one.")
@click.option("--into", type=click.Path(file_okay=False, exists=True, path_type=Path), hidden=True,
              help="Write the revision into this folder instead (tests: the package's stays untouched).")
def revision_command(message: str, revision_id: str, empty: bool, database_url: str | None,
                     into: Path | None) -> None:
    """(Developers) Write a new revision from what the models have that the migrations do not.

    The models are compared with a database upgraded to the current head
    (a temporary SQLite file unless --database is given); the revision is
    written to gateway/store/migrations/versions/ for you to read, tidy and
    test (docs/migrations.md).
    """
    if not REVISION_ID.match(revision_id):
        raise click.UsageError(f"--id {revision_id!r}: use four digits and what it does, e.g. 0002_person_index")
    try:
        with _head_database(database_url) as engine, engine.begin() as connection:
            script = command.revision(schema.alembic_config(connection, also_versions=into), message,
                                      autogenerate=not empty, rev_id=revision_id,
                                      version_path=str(into) if into else None)
    except (StoreConfigError, CommandError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {Path(script.path)}: read it, tidy it and run tests/store/test_schema.py")


@contextlib.contextmanager
def _head_database(database_url: str | None) -> Iterator[Engine]:
    with tempfile.TemporaryDirectory(prefix="gateway-revision-") as folder:
        engine = make_engine(database_url or f"sqlite:///{Path(folder) / 'head.sqlite3'}")
        try:
            if database_url is None:
                schema.upgrade(engine)
            schema.require_current(engine)
            yield engine
        finally:
            engine.dispose()
