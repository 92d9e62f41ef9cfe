"""The SQL implementation of the store contracts (SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from sqlalchemy import Engine, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import chain as audit_chain  # a module, not its names: gateway.audit imports the store too
from gateway.store.engine import WriteLock, make_engine, read_only
from gateway.store.interfaces import AcceptedMessage, AlreadyAccepted
from gateway.store.models import AcceptedMessageRow

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Threads that run submitted work on PostgreSQL (each holds a pooled connection while it commits).
_POOL_THREADS = 4

_FIELDS = [field.name for field in dataclasses.fields(AcceptedMessage)]
_TABLE = AcceptedMessageRow.__table__
# Core statements on the table (compiled once, cached by SQLAlchemy): the accept path runs them
# for every message, and the ORM's unit of work would cost several times as much for one row.
_SELECT_ONE = select(*(_TABLE.c[name] for name in _FIELDS)).where(_TABLE.c.message_id == bindparam("message_id"))
_INSERT = insert(_TABLE)


def _record(row) -> AcceptedMessage:
    return AcceptedMessage(**{name: getattr(row, name) for name in _FIELDS})


def _get(connection, message_id: str) -> AcceptedMessage | None:
    row = connection.execute(_SELECT_ONE, {"message_id": message_id}).first()
    return _record(row) if row is not None else None


class _DuplicateMessageId(Exception):
    def __init__(self, message_id: str):
        super().__init__(message_id)
        self.message_id = message_id


class SqlAcceptedMessages:
    """:class:`~gateway.store.interfaces.AcceptedMessages` on one SQLAlchemy session."""

    def __init__(self, session: Session):
        self.session = session

    def get(self, message_id: str) -> AcceptedMessage | None:
        return _get(self.session.connection(), message_id)

    def add(self, message: AcceptedMessage) -> None:
        # Insert first, ask later: the primary key refuses a second message
        # with the same id (one committed before, or by a concurrent request).
        # The transaction is then spoilt, so the store reads the winner in a
        # fresh one and raises AlreadyAccepted (see SqlMessageStore.transaction).
        try:
            self.session.connection().execute(_INSERT, {name: getattr(message, name) for name in _FIELDS})
        except IntegrityError:
            raise _DuplicateMessageId(message.message_id) from None

    def recent(self, *, sender_agency: str | None = None, limit: int = 100) -> list[AcceptedMessage]:
        query = select(AcceptedMessageRow).order_by(AcceptedMessageRow.received_at.desc()).limit(limit)
        if sender_agency is not None:
            query = query.where(AcceptedMessageRow.sender_agency == sender_agency)
        return [_record(row) for row in self.session.scalars(query)]


@dataclasses.dataclass
class SqlUnitOfWork:
    """One transaction; later steps add their repositories on the same ``session``."""

    session: Session
    messages: SqlAcceptedMessages


#: ``session.info`` key of a store transaction's hooks, run in order once its work is done, before its audit
#: records and its commit (see :func:`at_commit`).
BEFORE_COMMIT = "gateway_before_commit"


def at_commit(session: Session, key: str, hook: Callable[[Session], None]) -> bool:
    """Run ``hook(session)`` once at the end of ``session``'s store transaction (:meth:`SqlMessageStore.transaction`,
    and the accept path's group commit), after all its work and before it commits, however many times it is
    registered under ``key``. Return False, registering nothing, when ``session`` is no store transaction's: the
    caller does its work at once then."""
    hooks = session.info.get(BEFORE_COMMIT)
    if hooks is None:
        return False
    hooks.setdefault(key, hook)
    return True


class SqlMessageStore:
    """:class:`~gateway.store.interfaces.MessageStore` on an SQLAlchemy engine."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer at a time: writers queue on a lock that wakes the next one at once
        # (gateway.store.engine.WriteLock). PostgreSQL locks rows and needs none.
        self._write_lock = (WriteLock(engine.url.database) if engine.dialect.name == "sqlite"
                            else contextlib.nullcontext)
        self._group: GroupCommit | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._group_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options) -> "SqlMessageStore":
        """Return a store on ``url``, whose schema must be at this gateway's revision.

        Nothing is created here: ``gateway db upgrade`` (or
        :func:`gateway.store.schema.upgrade`) brings a database to it.
        Raises :class:`~gateway.store.schema.SchemaNotCurrent` (a
        :class:`~gateway.store.engine.StoreConfigError`) naming the database's
        revision and the one needed, :class:`~gateway.store.engine.StoreConfigError`
        for an unsupported URL, SQLAlchemy's errors when the database
        cannot be reached, and :class:`~gateway.config.SettingsError` naming
        ``GATEWAY_DATA_KEYS`` when the data keys cannot be loaded or do not
        decrypt the database's values (checked here, at start, rather than at
        the first encrypted value).
        """
        from gateway.store import crypto
        from gateway.store.schema import require_current  # schema imports every sub-package's tables

        crypto.active()
        engine = make_engine(url, **options)
        try:
            require_current(engine)
            with read_only(engine) as connection:
                crypto.check_database(connection)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @contextmanager
    def transaction(self) -> Iterator[SqlUnitOfWork]:
        try:
            with self._unit() as unit:
                yield unit
        except _DuplicateMessageId as exc:
            raise self._already_accepted(exc) from None

    @contextmanager
    def _unit(self) -> Iterator[SqlUnitOfWork]:
        """One write transaction (on SQLite, once this process's turn at the write lock has come)."""
        with self._write_lock(), self._sessions() as session, session.begin():
            # Audit records wait for the end of the transaction: the chain's head is locked only for the commit.
            audit_chain.defer_audit(session)
            session.info[BEFORE_COMMIT] = {}
            yield SqlUnitOfWork(session=session, messages=SqlAcceptedMessages(session))
            for hook in session.info.pop(BEFORE_COMMIT).values():
                hook(session)
            audit_chain.write_deferred(session)

    def _already_accepted(self, duplicate: "_DuplicateMessageId") -> Exception:
        """What a refused second insert of a message id means, read after its transaction ended:
        :class:`AlreadyAccepted` with the stored message (or the duplicate itself, should the winner
        have rolled back after all)."""
        existing = self.find_accepted(duplicate.message_id)
        return AlreadyAccepted(existing) if existing is not None else duplicate

    def together(self, work: Callable[[SqlUnitOfWork], T]) -> T:
        """Run ``work(unit)`` and return its result once its transaction has committed.

        On SQLite the transaction is shared with other threads' work (group
        commit: see :class:`GroupCommit`), and ``work`` runs in its own
        savepoint: when it raises, only its own changes roll back, and the
        exception is raised here. On PostgreSQL, which takes concurrent
        writers, it is a transaction of its own in the calling thread (a
        single committing thread would queue every request's round trips to
        the server: measured slower). Raises :class:`AlreadyAccepted` as
        :meth:`transaction` does.
        """
        if self.engine.dialect.name != "sqlite":
            with self.transaction() as unit:
                return work(unit)
        return self._group_commit().submit(work).result()

    def submit(self, work: Callable[[SqlUnitOfWork], T]) -> "_Job[T] | Future[T]":
        """Start ``work(unit)`` as :meth:`together` runs it and return at once; ``.result()`` waits for the
        commit and returns the result or raises the error. On SQLite the committing thread takes it; on
        PostgreSQL a thread of the store's own pool runs its transaction. (The console records a read this way
        while it renders the page, and waits before sending it.)"""
        if self.engine.dialect.name == "sqlite":
            return self._group_commit().submit(work)
        with self._group_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=_POOL_THREADS, thread_name_prefix="store-submit")
        return self._pool.submit(self.together, work)

    def _group_commit(self) -> "GroupCommit":
        with self._group_lock:
            if self._group is None:
                self._group = GroupCommit(self)
            return self._group

    def find_accepted(self, message_id: str) -> AcceptedMessage | None:
        with read_only(self.engine) as connection:
            return _get(connection, message_id)

    def close(self) -> None:
        if self._group is not None:
            self._group.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.engine.dispose()


@dataclasses.dataclass
class _Job(Generic[T]):
    work: Callable[[SqlUnitOfWork], T]
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    value: T | None = None
    error: BaseException | None = None

    def result(self) -> T:
        """Wait for the commit; return the work's result or raise its exception."""
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class GroupCommit:
    """One committing thread that runs the units of work that arrive together in one transaction.

    Accepting a message ends in a short write transaction. SQLite has one
    writer, and under load the write lock, held through each commit's fsync,
    is what the gateway's threads and processes queue for. Request
    threads hand their work here and wait; the committing thread takes all
    that is waiting (up to ``max_batch``), runs each piece in its own
    savepoint of one transaction, commits once, and then releases them. A
    piece that raises rolls back to its savepoint and gets its exception; the
    others commit. A failed commit fails every piece of that transaction
    (nothing of it is stored). Nobody is answered before their work is
    committed, so the promise is the same as one transaction per message.
    """

    def __init__(self, store: "SqlMessageStore", *, max_batch: int = 32):
        self.store = store
        self.max_batch = max_batch
        self._queue: "queue.SimpleQueue[_Job | None]" = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="group-commit", daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[SqlUnitOfWork], T]) -> _Job[T]:
        """Queue ``work`` for the next transaction; the job's ``result()`` waits for it."""
        job = _Job(work)
        self._queue.put(job)
        return job

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            batch = [job]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(more)
            try:
                self._commit(batch)
            except BaseException as exc:  # the thread must outlive any failure
                log.exception("group commit: a transaction of %d failed", len(batch))
                for waiting in batch:
                    if waiting.error is None:
                        waiting.error = exc
            finally:
                for waiting in batch:
                    waiting.done.set()

    def _commit(self, batch: list[_Job]) -> None:
        if len(batch) == 1:  # alone: its own transaction, no savepoint needed to keep it apart
            (job,) = batch
            try:
                with self.store._unit() as unit:
                    job.value = job.work(unit)
            except Exception as exc:
                job.error = exc
        else:
            with self.store._unit() as unit:
                for job in batch:
                    mark = audit_chain.deferred_mark(unit.session)
                    try:
                        with unit.session.begin_nested():
                            job.value = job.work(unit)
                    except Exception as exc:
                        audit_chain.discard_deferred(unit.session, mark)  # its records roll back with it
                        job.error = exc
        for job in batch:  # after the commit: a duplicate id is a replay of what is stored
            if isinstance(job.error, _DuplicateMessageId):
                job.error = self.store._already_accepted(job.error)
