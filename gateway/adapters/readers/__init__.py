"""Streaming readers, one per container format, named in mapping files (``reader.type``)."""

from __future__ import annotations

from importlib import import_module

# reader type -> "module:function"; modules are imported only when used.
READERS = {
    "csv": "gateway.adapters.readers.csvstream:read_csv",
    "concernhub-json": "gateway.adapters.readers.jsonstream:read_concernhub_json",
    "ppn-xml": "gateway.adapters.readers.xml:read_ppn_xml",
}


def get_reader(name: str):
    """Return the reader function called ``name``; raises KeyError naming the known ones."""
    try:
        target = READERS[name]
    except KeyError:
        raise KeyError(f"unknown reader type {name!r}; known: {', '.join(sorted(READERS))}") from None
    module, _, func = target.partition(":")
    return getattr(import_module(module), func)
