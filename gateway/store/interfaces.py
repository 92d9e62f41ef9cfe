"""Contracts of the store, apart from their implementations."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol, TypeVar

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@dataclasses.dataclass(frozen=True)
class AcceptedMessage:
    """A message the gateway accepted, and the response it returned.

    ``raw_message`` is the JSON exactly as received; ``signed_message`` is
    the Bundle with the gateway's signature, as it will be delivered.
    ``received_at`` is the gateway's clock; ``message_timestamp`` the
    sender's ``Bundle.timestamp``. ``completeness`` is the standard's
    completeness score of the message (0-100) from the feedback in the
    response, kept beside it so that lists need not read the response; None
    without one (or for a message accepted before revision 0007).
    """

    message_id: str
    sender_agency: str
    received_at: dt.datetime
    message_timestamp: dt.datetime | None
    payload_sha256: str
    raw_message: str
    signed_message: str
    response_status: int
    response_body: str
    completeness: int | None = None


class AlreadyAccepted(Exception):
    """A message with this id was accepted before; ``existing`` is that record."""

    def __init__(self, existing: AcceptedMessage):
        super().__init__(f"message {existing.message_id} was already accepted")
        self.existing = existing


class AcceptedMessages(Protocol):
    """The accepted messages, within one unit of work."""

    def get(self, message_id: str) -> AcceptedMessage | None:
        """Return the accepted message with this id, or ``None``."""

    def add(self, message: AcceptedMessage) -> None:
        """Record ``message``; it is kept when the unit of work commits.

        Raises :class:`AlreadyAccepted` (with the stored record) when a
        message with the same id was accepted before, including by a
        concurrent request that committed first.
        """

    def recent(self, *, sender_agency: str | None = None, limit: int = 100) -> list[AcceptedMessage]:
        """Return up to ``limit`` messages, latest ``received_at`` first."""


class Pending(Protocol[T_co]):
    """Work handed to the store to commit: ``result()`` waits until it has committed."""

    def result(self) -> T_co:
        """Wait for the commit; return the work's result, or raise its exception."""


class UnitOfWork(Protocol):
    """One transaction. Later steps add their repositories next to ``messages``
    and use ``session`` so that everything commits, or nothing does."""

    messages: AcceptedMessages
    session: object


class MessageStore(Protocol):
    """Where accepted messages are kept (SQLite or PostgreSQL)."""

    def transaction(self) -> AbstractContextManager[UnitOfWork]:
        """Return a context manager for one unit of work.

        It commits when the block ends normally and rolls back when it
        raises; the exception then propagates.
        """

    def together(self, work: Callable[[UnitOfWork], T]) -> T:
        """Run ``work(unit)`` in a unit of work and return its result once it has committed.

        The store may commit it together with other callers' work, each in
        its own savepoint; ``work`` that raises rolls back alone and its
        exception is raised here. Raises :class:`AlreadyAccepted` as
        :meth:`transaction` does.
        """

    def submit(self, work: Callable[[UnitOfWork], T]) -> "Pending[T]":
        """Start :meth:`together`'s ``work`` and return at once: ``.result()`` waits for the commit and
        returns its result (or raises its error), so the caller can do other work meanwhile."""

    def find_accepted(self, message_id: str) -> AcceptedMessage | None:
        """Return the accepted message with this id, or ``None`` (own short transaction)."""

    def close(self) -> None:
        """Release every database connection."""

