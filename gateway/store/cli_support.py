"""What the ``gateway`` commands share about the database: open it, run, say what went wrong, close it.

:func:`reported` is the pattern: run the command's work, turn the errors it
expects into a :class:`click.ClickException` (a message and exit code 1, no
traceback) and close the store or engine whatever happens.
:func:`store_transaction` runs the work in one transaction of a store (the
domain errors say what to do in their ``text``); :func:`with_engine` gives a
command the engine of ``--database URL`` or ``GATEWAY_DATABASE_URL``.
"""

from __future__ import annotations

import contextlib
import functools
import operator
from collections.abc import Callable, Iterator

import click
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from gateway.config import Settings, SettingsError
from gateway.store.engine import StoreConfigError, make_engine

database_option = click.option(
    "--database", "database_url", metavar="URL",
    help="Database URL (sqlite:///PATH or postgresql+psycopg://...); default: GATEWAY_DATABASE_URL.")


@contextlib.contextmanager
def reported(*errors: type[Exception], close: Callable[[], object],
             message: Callable[[Exception], str] = str) -> Iterator[None]:
    """Run the block; an error of ``errors`` becomes a ClickException saying ``message(error)``; ``close()`` after."""
    try:
        yield
    except errors as exc:
        raise click.ClickException(message(exc)) from None
    finally:
        close()


@contextlib.contextmanager
def store_transaction(store, *errors: type[Exception]) -> Iterator:
    """One transaction of ``store`` (yield its unit of work); an error of ``errors`` becomes a ClickException
    saying its ``text``; the store is closed after."""
    with reported(*errors, close=store.close, message=operator.attrgetter("text")), store.transaction() as unit:
        yield unit


def database_name(engine: Engine) -> str:
    """The engine's URL without its password."""
    return engine.url.render_as_string(hide_password=True)


def with_engine(*errors: type[Exception]):
    """Decorate a command ``f(engine, **options)``: it takes ``--database URL`` (default: GATEWAY_DATABASE_URL).

    A bad URL or setting is a usage error (exit 2); an error of ``errors`` (its
    text) or of the database (its first line) is a message, not a traceback;
    the engine is disposed after.
    """

    def decorate(command):
        @database_option
        @functools.wraps(command)
        def wrapper(database_url: str | None, **kwargs):
            try:
                engine = make_engine(database_url or Settings.from_env().database_url)
            except (SettingsError, StoreConfigError) as exc:
                raise click.UsageError(str(exc)) from None

            def message(exc: Exception) -> str:
                if isinstance(exc, SQLAlchemyError):
                    return f"database {database_name(engine)}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
                return str(exc)

            with reported(*errors, SQLAlchemyError, close=engine.dispose, message=message):
                return command(engine, **kwargs)

        return wrapper

    return decorate
