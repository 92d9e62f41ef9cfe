"""Contracts of delivery: what it asks of routing and of the directory.

Routing (:mod:`gateway.routing`) plans; delivery keeps the plan durable and
carries it out. The outbox reads routing's results by shape (see
:func:`gateway.delivery.outbox.split_result`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Protocol


#: ``route(signed_bundle, now, directory)``: the routing rules, as the outbox calls them. It returns
#: planned deliveries (``destination``, ``message``, ``rule``, ``due``) and unroutable parts
#: (``reason``, ``rule``): a list of them, one of them, or an empty list for "deliberately sent to
#: nobody" (see :func:`gateway.delivery.outbox.split_result`). :func:`gateway.routing.route_message`
#: fits, with the directory as a keyword.
Route = Callable[[dict, dt.datetime, "AgencyLookup"], object]


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


#: Binds the directory to the accepting transaction: ``directory_for(session)``
#: (:class:`gateway.routing.Directory` fits: ``Directory(session)``).
DirectoryFactory = Callable[[object], AgencyLookup]
