"""Source formats -> canonical records, through declarative mappings or plug-in adapters.

Adapters are found through the ``gateway.adapters`` entry-point group: the
built-in ones point at mapping files, and a vendor's package adds its own.
Two adapters claiming one format name are refused, never guessed between.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from gateway.adapters.base import Adapter
from gateway.adapters.errors import AdapterConflict

ENTRY_POINT_GROUP = "gateway.adapters"


def _load(ep):
    obj = ep.load()
    return obj() if callable(obj) and not isinstance(obj, Adapter) else obj


def discover(eps=None) -> dict[str, "object"]:
    """Return ``{format id: entry point}`` for every installed adapter.

    Raises :class:`AdapterConflict` naming both providers when two entry
    points claim the same format name.
    """
    eps = list(entry_points(group=ENTRY_POINT_GROUP)) if eps is None else list(eps)
    found: dict = {}
    for ep in eps:
        if ep.name in found and found[ep.name].value != ep.value:
            raise AdapterConflict(
                f"two adapters claim the format {ep.name!r}: {found[ep.name].value} and {ep.value}; "
                "uninstall one of them or give the vendor's adapter its own format name")
        found[ep.name] = ep
    return found


def get_adapter(format_id: str, eps=None) -> Adapter:
    """Return the adapter for ``format_id``.

    Raises KeyError naming the formats that exist, :class:`AdapterConflict`
    for duplicates, and :class:`TypeError` when a plug-in is not an Adapter.
    """
    found = discover(eps)
    if format_id not in found:
        raise KeyError(f"unknown format {format_id!r}; known formats: {', '.join(sorted(found)) or 'none'}")
    adapter = _load(found[format_id])
    if not isinstance(adapter, Adapter):
        raise TypeError(f"the adapter for {format_id!r} ({found[format_id].value}) does not provide "
                        "format_id, description, version, records() and translate()")
    if adapter.format_id != format_id:
        raise AdapterConflict(f"the entry point {format_id!r} loads an adapter for {adapter.format_id!r}")
    return adapter


def all_adapters(eps=None) -> list[Adapter]:
    """Return every adapter, sorted by format id."""
    return [get_adapter(name, eps) for name in sorted(discover(eps))]
