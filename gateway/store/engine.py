"""Engines for the store's two backends, from a database URL.

* SQLite (``sqlite:///PATH``): the default, for development and the demo.
  The parent folder is created; WAL, foreign keys and ``BEGIN IMMEDIATE``
  (writers queue on the lock instead of failing) are switched on.
* PostgreSQL (``postgresql+psycopg://...``, psycopg 3): for deployments.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import ARRAY, Connection, Engine, Select, any_, bindparam, cast, create_engine, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

log = logging.getLogger(__name__)

#: Execution options for a connection that only reads: on SQLite its transaction
#: starts with a plain (deferred) ``BEGIN`` instead of ``BEGIN IMMEDIATE``, so
#: reads run beside a writer (WAL) instead of queueing for the write lock.
READ_ONLY = {"gateway_read_only": True}


@contextlib.contextmanager
def read_only(engine: Engine) -> Iterator[Connection]:
    """A short transaction that only reads (on SQLite: no write lock, see :data:`READ_ONLY`)."""
    with engine.connect().execution_options(**READ_ONLY) as connection, connection.begin():
        yield connection


def among(connection: Connection, column, values):
    """``column IN values`` (a list, or a select of one column), as the engine of ``connection`` reads it best.

    On PostgreSQL the values go as one array, ``column = ANY(...)``:

    * a list as one parameter, whatever its length: the statement is the same text every time, so the driver
      prepares it once, and no parameter per value is rendered;
    * a select run first, its values gathered into an array (``array_agg``), which the planner looks up by the
      index whatever the table's size or the cost settings. As an ``IN`` subquery it is planned as a join, and
      on a table of a few thousand rows PostgreSQL chose to scan it all and hash the subquery's values: 4 ms
      for a child's 200 events among 10,000, against 0.5 ms looked up.

    SQLite reads ``IN`` (a list, or a subquery looked up by the index) well as it is."""
    if connection.dialect.name != "postgresql":
        return column.in_(values)
    if isinstance(values, Select):
        array = cast(select(func.array_agg(values.subquery().c[0])).scalar_subquery(), ARRAY(column.type))
    else:
        array = bindparam(None, list(values), type_=ARRAY(column.type))
    return column == any_(array)


class StoreConfigError(ValueError):
    """The database URL names a backend or driver the store does not support."""


def make_engine(url: str, **options) -> Engine:
    """Return an engine for ``url`` (SQLite or PostgreSQL through psycopg 3).

    ``postgresql://`` is taken to mean psycopg 3. ``options`` go to
    :func:`sqlalchemy.create_engine`. Raises :class:`StoreConfigError` for
    any other backend.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreConfigError(f"database URL {url!r} is not a URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, **options)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.drivername != "postgresql+psycopg":
            raise StoreConfigError(f"database URL uses driver {parsed.drivername!r}; use postgresql+psycopg://")
        options.setdefault("pool_pre_ping", True)
        # Enough kept-open connections for a gunicorn process's threads (16 by default): past
        # pool_size, SQLAlchemy opens overflow connections and closes them again on return, and a
        # new PostgreSQL connection (a forked backend, authentication) costs more than the
        # transaction it serves.
        options.setdefault("pool_size", 20)
        options.setdefault("max_overflow", 10)
        return create_engine(parsed, **options)
    raise StoreConfigError(f"database URL {parsed.render_as_string(hide_password=True)!r}: unsupported backend "
                           f"{backend!r}; use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")


def _sqlite_engine(parsed, **options) -> Engine:
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    log.warning("store: SQLite at %s is for development and demos only; use PostgreSQL in a deployment",
                database or ":memory:")
    options.setdefault("connect_args", {}).setdefault("timeout", 30)
    engine = create_engine(parsed, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" below start transactions, not pysqlite.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        read_only = connection.get_execution_options().get("gateway_read_only", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


class WriteLock:
    """One writer at a time on an SQLite database, queued without sleeping.

    SQLite allows one writer; a second ``BEGIN IMMEDIATE`` waits in SQLite's
    busy handler, which sleeps in growing steps (1, 2, 5 ... 100 ms) and so
    lets the lock sit free while writers sleep: under load, the gateway's
    processes and its worker spent more time asleep there than working.
    Writers of the store therefore queue first on a Python lock (the threads
    of a process) and an exclusive ``flock`` on ``<database>.write-lock``
    (the processes on the host); both wake the next writer as soon as the
    lock is released. SQLite's own locking still guards the data; this only
    orders the queue. A database without a file (``:memory:``) gets the
    thread lock only, and so does a platform without ``fcntl``.
    """

    def __init__(self, database: str | None):
        self._threads = threading.Lock()
        self._path = None
        if database and database != ":memory:" and not database.startswith("file:"):
            self._path = Path(database).with_name(Path(database).name + ".write-lock")
        self._fd: int | None = None
        self._pid: int | None = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._threads:
            fd = self._file()
            if fd is None:
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _file(self) -> int | None:
        if self._path is None or fcntl is None:
            return None
        # Opened once per process, under the thread lock. A forked child (gunicorn's workers) opens
        # its own: flock excludes open files, and one inherited across fork would be shared.
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
        return self._fd


try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]
