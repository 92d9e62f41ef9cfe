"""Delivery: the transactional outbox, its workers, agency mailboxes and idempotent receipt.

* :func:`outbox_step` (an accept step) routes each accepted message and
  enqueues all its deliveries in the accepting transaction;
* :class:`OutboxWorker` (``gateway worker``) pushes them over mutual TLS,
  with backoff, leases and dead-lettering;
* the blueprint in :mod:`gateway.delivery.views` serves ``/mailbox`` and
  ``/messages/<id>/status``;
* :mod:`gateway.delivery.receiver` is a receiving endpoint that applies each
  message id once.

See ``docs/delivery.md``.
"""

from gateway.delivery.interfaces import AgencyLookup
from gateway.delivery.outbox import outbox_step, routing_step
from gateway.delivery.receiver import ReceiptLog, create_receiver_app
from gateway.delivery.worker import Backoff, OutboxWorker

__all__ = ["AgencyLookup", "Backoff", "OutboxWorker", "ReceiptLog", "create_receiver_app", "outbox_step",
           "routing_step"]
