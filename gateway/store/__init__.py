"""Persistence: one schema (SQLAlchemy 2), two engines (SQLite, PostgreSQL).

Use the contracts in :mod:`gateway.store.interfaces`; :func:`open_store`
returns the SQL implementation for a database URL.
"""

from gateway.store.interfaces import AcceptedMessage, AcceptedMessages, AlreadyAccepted, MessageStore, UnitOfWork
from gateway.store.services import SqlMessageStore


def open_store(url: str, **options) -> SqlMessageStore:
    """Return the store for ``url``, refusing a database not at this gateway's revision (see
    :meth:`SqlMessageStore.from_url`; ``gateway db upgrade`` brings it there)."""
    return SqlMessageStore.from_url(url, **options)


__all__ = ["AcceptedMessage", "AcceptedMessages", "AlreadyAccepted", "MessageStore", "SqlMessageStore",
           "UnitOfWork", "open_store"]
