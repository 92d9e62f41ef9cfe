"""Contracts of delivery: what routing hands the outbox, and what the outbox asks of the directory.

Routing (:mod:`gateway.routing`) plans; delivery keeps the plan durable and
carries it out. The outbox reads routing's results by shape (see
:func:`gateway.delivery.outbox.split_result`), so routing may return its own
dataclasses with these fields.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable
from typing import Protocol, Union


@dataclasses.dataclass(frozen=True)
class PlannedDelivery:
    """One message to send to one destination agency.

    ``bundle`` is the message Bundle to deliver: the accepted, gateway-signed
    Bundle itself, or one routing derived from it (unsigned: the outbox signs
    it with the gateway's key). ``due`` is when the destination must have it
    by (a deadline, never a delay), or ``None``.
    """

    destination: str
    bundle: dict
    rule: str
    due: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class Unroutable:
    """No destination was found for (part of) a message, and why."""

    reason: str
    rule: str | None = None


#: What a routing function returns: planned deliveries and unroutable parts, in any mix.
RoutingResult = Iterable[Union[PlannedDelivery, Unroutable]]

#: ``route(signed_bundle, now)``: the routing rules, as the outbox calls them.
Route = Callable[[dict, dt.datetime], object]


class DestinationAgency(Protocol):
    """What delivery needs to know of an agency (routing's ``Agency`` has these)."""

    uri: str
    name: str
    delivery: str            # "push" or "mailbox"
    endpoint: str | None     # https:// URL for push, else None


class AgencyLookup(Protocol):
    """The part of routing's ``AgencyDirectory`` that delivery uses."""

    def agency(self, uri: str) -> DestinationAgency | None:
        """Return the agency with this URI, or ``None`` if the directory does not know it."""
