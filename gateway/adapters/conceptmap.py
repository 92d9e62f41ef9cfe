"""FHIR ConceptMaps as lookup tables for vendor codes and labels.

A mapping file names its ConceptMaps; each is a plain FHIR R4 ConceptMap
(JSON) that other FHIR tools can load too. Source labels are matched
case-insensitively and with white space folded, because vendors are not
consistent about either.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Target:
    system: str
    code: str
    display: str | None
    equivalence: str


def _key(label: str) -> str:
    return " ".join(str(label).split()).casefold()


class ConceptMap:
    """A loaded ConceptMap: ``lookup(label)`` returns its targets."""

    def __init__(self, resource: dict, path: Path | None = None):
        if resource.get("resourceType") != "ConceptMap":
            raise ValueError(f"{path or 'resource'}: not a ConceptMap")
        self.resource = resource
        self.url = resource.get("url")
        self.version = resource.get("version")
        self.path = path
        self._table: dict[str, list[Target]] = {}
        for group in resource.get("group", []):
            system = group.get("target")
            for element in group.get("element", []):
                targets = [Target(system, t["code"], t.get("display"), t.get("equivalence", "equivalent"))
                           for t in element.get("target", []) if t.get("code") and t.get("equivalence") != "unmatched"]
                self._table.setdefault(_key(element["code"]), []).extend(targets)

    @classmethod
    def load(cls, path: Path) -> "ConceptMap":
        """Read a ConceptMap JSON file; raises ValueError naming the file when it is not one."""
        try:
            resource = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read ConceptMap ({exc})") from None
        return cls(resource, Path(path))

    def lookup(self, label: str) -> list[Target]:
        """Return the targets for ``label`` (empty when the label is on no map)."""
        return self._table.get(_key(label), [])

    def source_labels(self) -> list[str]:
        return [e["code"] for g in self.resource.get("group", []) for e in g.get("element", [])]
