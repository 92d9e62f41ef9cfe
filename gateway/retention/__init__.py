"""Retention: messages and personal data kept for a set period, then purged, unless a legal hold keeps them.

* :mod:`gateway.retention.holds`: legal holds on people (``gateway hold``);
* :mod:`gateway.retention.purge`: the purge (``gateway retention purge``), in
  batches, with an audit record of what each purged message took with it;
* :mod:`gateway.retention.schedule`: the outbox worker's daily purge, when
  ``Settings.retention_purge_daily`` is on.

The rule and its reasons are in ``docs/retention.md``.
"""
