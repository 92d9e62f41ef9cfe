"""The SQL implementation of the store contracts (SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gateway.store.engine import READ_ONLY, WriteLock, make_engine
from gateway.store.interfaces import AcceptedMessage, AlreadyAccepted
from gateway.store.models import AcceptedMessageRow, Base

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
            self.session.connection().execute(_INSERT, dataclasses.asdict(message))
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


class SqlMessageStore:
    """:class:`~gateway.store.interfaces.MessageStore` on an SQLAlchemy engine."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer at a time: writers queue on a lock that wakes the next one at once
        # (gateway.store.engine.WriteLock). PostgreSQL locks rows and needs none.
        self._write_lock = (WriteLock(engine.url.database) if engine.dialect.name == "sqlite"
                            else contextlib.nullcontext)

    @classmethod
    def from_url(cls, url: str, *, create_schema: bool = True, **options) -> "SqlMessageStore":
        """Return a store on ``url``, creating missing tables unless told not to.

        Raises :class:`~gateway.store.engine.StoreConfigError` for an
        unsupported URL and SQLAlchemy's errors when the database cannot be
        reached.
        """
        store = cls(make_engine(url, **options))
        if create_schema:
            store.create_schema()
        return store

    def create_schema(self) -> None:
        """Create every table of :class:`~gateway.store.models.Base` that is missing."""
        Base.metadata.create_all(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[SqlUnitOfWork]:
        try:
            with self._write_lock(), self._sessions() as session, session.begin():
                yield SqlUnitOfWork(session=session, messages=SqlAcceptedMessages(session))
        except _DuplicateMessageId as exc:
            existing = self.find_accepted(exc.message_id)
            if existing is None:  # pragma: no cover - the winner rolled back after all
                raise
            raise AlreadyAccepted(existing) from None

    def find_accepted(self, message_id: str) -> AcceptedMessage | None:
        # A read: on SQLite it does not take the write lock (see gateway.store.engine.READ_ONLY).
        with self.engine.connect().execution_options(**READ_ONLY) as connection, connection.begin():
            return _get(connection, message_id)

    def close(self) -> None:
        self.engine.dispose()
