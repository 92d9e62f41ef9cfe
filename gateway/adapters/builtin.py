"""The built-in formats: each is a declarative mapping under ``mappings/<format>/``."""

from __future__ import annotations

from functools import cache

from gateway.adapters.mapping import Mapping
from gateway.config import Settings


@cache
def _mapping(format_id: str, mappings_dir=None) -> Mapping:
    base = mappings_dir or Settings.from_env().mappings_dir
    return Mapping.load(base / format_id / "mapping.yaml")


def schoolsafe_csv() -> Mapping:
    """The school safeguarding record system's CSV incident export."""
    return _mapping("schoolsafe-csv")


def concernhub_json() -> Mapping:
    """The concernhub JSON concern export (2.x; 1.x accepted)."""
    return _mapping("concernhub-json")


def ppn_xml() -> Mapping:
    """Police Public Protection Notice XML v1."""
    return _mapping("ppn-xml")
