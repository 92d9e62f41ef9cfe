"""Named post-processing steps a mapping may list under ``post:``.

They do what a field-by-field mapping cannot: a police notice naming several
children becomes one canonical record per child, with every other person
described by their relationship *to that child*.
"""

from __future__ import annotations

from collections.abc import Callable

HOOKS: dict[str, Callable[[dict], list[dict]]] = {}


def hook(name: str):
    def register(fn):
        HOOKS[name] = fn
        return fn
    return register


def get_hook(name: str) -> Callable[[dict], list[dict]]:
    """Return the hook ``name``; raises KeyError listing the known ones."""
    try:
        return HOOKS[name]
    except KeyError:
        raise KeyError(f"unknown post step {name!r}; known: {', '.join(sorted(HOOKS))}") from None


# "from is the <type> of to" -> HL7 v3 RoleCode of *from* relative to the child, by from's gender.
_ROLE_CODES = {
    ("Parent", "female"): ("MTH", "mother"), ("Parent", "male"): ("FTH", "father"),
    ("Parent", None): ("PRN", "parent"),
    ("StepParent", "female"): ("STPMTH", "stepmother"), ("StepParent", "male"): ("STPFTH", "stepfather"),
    ("StepParent", None): ("STPPRN", "step parent"),
    ("Sibling", "female"): ("SIS", "sister"), ("Sibling", "male"): ("BRO", "brother"),
    ("Sibling", None): ("SIB", "sibling"),
}


@hook("ppn_per_child")
def ppn_per_child(record: dict) -> list[dict]:
    """Return one record per child named in a police notice.

    Reads ``persons`` (every Person, with ``role``) and ``relationships``
    (``{"from", "to", "type"}``); writes ``child``, ``people`` and
    ``child_key`` (the Person ``@id``). A notice with no child gives no
    record: the caller reports it.
    """
    persons = record.pop("persons", []) or []
    relationships = record.pop("relationships", []) or []
    children = [p for p in persons if p.get("role") == "Child"]
    out = []
    for child in children:
        # The records share what the notice says (read-only from here on); only child and people differ.
        rec = dict(record)
        rec["child"] = dict(child)
        rec["child_key"] = child.get("local_id")
        people = []
        for person in persons:
            if person is child:
                continue
            p = dict(person)
            rel_type = next((r["type"] for r in relationships
                             if r.get("from") == person.get("local_id") and r.get("to") == child.get("local_id")), None)
            if rel_type is None:
                # "to is the <type> of from": the child is the parent of this person? Only siblings are symmetric.
                rel_type = next((r["type"] for r in relationships if r.get("type") == "Sibling"
                                 and r.get("to") == person.get("local_id") and r.get("from") == child.get("local_id")),
                                None)
            gender = person.get("gender") if person.get("gender") in ("female", "male") else None
            if rel_type in ("Parent", "StepParent", "Sibling"):
                code, display = _ROLE_CODES[(rel_type, gender)]
                p["relationship"] = {"code": code, "display": display, "text": rel_type}
            elif rel_type:
                p["relationship"] = {"text": rel_type}
            elif person.get("role") == "Child":
                p["relationship"] = {"text": "another child named in the same notice"}
            if person.get("role") == "Suspect":
                p["alleged_harm"] = True
            people.append(p)
        rec["people"] = people
        # A problem found on another child's Person belongs to that child's message, not this one.
        others = [f"/ppn:Persons/ppn:Person[{i + 1}]" for i, p in enumerate(persons)
                  if p.get("role") == "Child" and p is not child]
        rec["issues"] = [issue for issue in record.get("issues") or []
                         if not any(o + "/" in issue.get("location", "") or issue.get("location", "").endswith(o)
                                    for o in others)]
        out.append(rec)
    return out
