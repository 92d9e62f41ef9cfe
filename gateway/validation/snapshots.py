"""Snapshots of the standard's profiles: the FHIR R4 base definition with the differential applied.

FHIR validators (Medplum's among them) read a profile's snapshot, not its
differential. :func:`snapshot` starts from the base resource's snapshot (in
``r4/base-definitions.json``: FHIR R4 4.0.1, from the HL7 specification) and
applies each differential element: a constrained element replaces its
properties (constraints are added to the base ones), and a slice is
inserted after the sliced element and its earlier slices, as a copy of it.
It covers what the gateway's generator writes (cardinality, fixed values,
bindings, types, constraints, slices on ``extension`` and on a choice
type); anything else raises, so a new kind of constraint cannot be
published with a wrong snapshot.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources as importlib_resources

# Differential properties the snapshot takes as they are.
_REPLACED = ("short", "definition", "comment", "min", "max", "fixedCode", "fixedUri", "binding", "mustSupport",
             "slicing", "type", "sliceName")
_KNOWN = set(_REPLACED) | {"id", "path", "constraint"}


class SnapshotError(ValueError):
    """A differential element the generator cannot apply (unknown property or element); names the element."""


@cache
def base_definitions() -> dict[str, dict]:
    """Return ``{type: StructureDefinition}`` of the FHIR R4 base definitions shipped with the gateway."""
    text = importlib_resources.files("gateway.validation").joinpath("r4/base-definitions.json").read_text("utf-8")
    return {sd["id"]: sd for sd in json.loads(text)["definitions"]}


def snapshot(profile: dict) -> list[dict]:
    """Return the snapshot elements of ``profile`` (a constraint StructureDefinition with a differential).

    Raises :class:`SnapshotError` when the base type is not shipped or a
    differential element cannot be applied.
    """
    base = base_definitions().get(profile["type"])
    if base is None:
        raise SnapshotError(f"{profile['url']}: no base definition of {profile['type']} is shipped")
    elements = copy.deepcopy(base["snapshot"]["element"])
    for diff in profile["differential"]["element"]:
        unknown = set(diff) - _KNOWN
        if unknown:
            raise SnapshotError(f"{profile['url']}, {diff['id']}: cannot apply {', '.join(sorted(unknown))}")
        if "sliceName" in diff:
            _insert_slice(elements, diff, profile["url"])
            continue
        target = next((e for e in elements if e["id"] == diff["id"]), None) or _expand(elements, diff["id"])
        if target is None:
            raise SnapshotError(f"{profile['url']}: {diff['id']} is not an element of {profile['type']}")
        _apply(target, diff)
    return elements


def _expand(elements: list[dict], element_id: str) -> dict | None:
    """Insert the children of ``element_id``'s parent from its data type's definition; return the element.

    ``Patient.address.postalCode``: the children of ``Patient.address`` from
    the definition of Address. ``None`` when the parent is not there or its
    data type is not shipped.
    """
    parent_id, _, _ = element_id.rpartition(".")
    position = next((n for n, e in enumerate(elements) if e["id"] == parent_id), None)
    if position is None:
        return None
    types = [t["code"] for t in elements[position].get("type", [])]
    datatype = base_definitions().get(types[0]) if len(types) == 1 else None
    if datatype is None:
        return None
    children = []
    for child in copy.deepcopy(datatype["snapshot"]["element"][1:]):
        child["id"] = parent_id + child["id"][len(datatype["type"]):]
        child["path"] = elements[position]["path"] + child["path"][len(datatype["type"]):]
        children.append(child)
    elements[position + 1:position + 1] = children
    return next((e for e in children if e["id"] == element_id), None)


def _apply(target: dict, diff: dict) -> None:
    for key in _REPLACED:
        if key in diff:
            target[key] = copy.deepcopy(diff[key])
    if "constraint" in diff:
        target["constraint"] = target.get("constraint", []) + copy.deepcopy(diff["constraint"])


def _insert_slice(elements: list[dict], diff: dict, url: str) -> None:
    sliced_id = diff["id"].rsplit(":", 1)[0]
    position = next((n for n, e in enumerate(elements) if e["id"] == sliced_id), None)
    if position is None:
        raise SnapshotError(f"{url}: {diff['id']} slices {sliced_id}, which is not an element")
    sliced = elements[position]
    if "slicing" not in sliced:
        raise SnapshotError(f"{url}: {diff['id']} comes before the slicing of {sliced_id}")
    # After the sliced element, its children and the slices already inserted (ids under it).
    end = position + 1
    while end < len(elements) and (elements[end]["id"].startswith(sliced_id + ".")
                                   or elements[end]["id"].startswith(sliced_id + ":")):
        end += 1
    element = {k: v for k, v in copy.deepcopy(sliced).items() if k != "slicing"}
    element["id"] = diff["id"]
    _apply(element, diff)
    elements.insert(end, element)
