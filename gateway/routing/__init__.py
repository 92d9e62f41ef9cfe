"""Routing: who receives what (the directory and the routing rules).

* :class:`Directory` (SQL, on the store's database) implements the
  :class:`~gateway.routing.interfaces.AgencyDirectory` contract;
* :func:`route_message` turns a message into :class:`PlannedDelivery` items
  or an :class:`Unroutable`;
* :func:`build_outcome_message` and :func:`build_acknowledgement` build the
  messages the gateway sends back.
"""

from gateway.routing.interfaces import Agency, AgencyDirectory, DirectoryMaintenance, ImportReport, School
from gateway.routing.rules import (
    PlannedDelivery,
    Unroutable,
    build_acknowledgement,
    build_encompass_notification,
    build_outcome_message,
    route_message,
)
from gateway.routing.schoolday import next_school_day_start
from gateway.routing.services import Directory

__all__ = ["Agency", "AgencyDirectory", "Directory", "DirectoryMaintenance", "ImportReport", "PlannedDelivery",
           "School", "Unroutable", "build_acknowledgement", "build_encompass_notification", "build_outcome_message",
           "next_school_day_start", "route_message"]
