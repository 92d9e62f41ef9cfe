"""Publish the standard: ``docs/referral-standard.md``, ``docs/standard/`` and the FHIR package in ``docs/fhir/``.

Everything here is derived from the one definition (``standard.yaml``, the
extension table in :mod:`gateway.validation.extensions`, the code lists in
:mod:`gateway.model.terminology` and :mod:`gateway.validation.codelists`)
and the mappings' ConceptMaps, so the documentation and the conformance
resources cannot drift from what the validator checks. The conformance
resources are written one per file and as a FHIR package
(``docs/fhir/package.tgz``: NPM format, ``package/package.json`` and
``package/.index.json``, as implementation guides publish) that validators
load by canonical URL. Run::

    gateway standard package          # write the files
    gateway standard package --check  # exit 1 naming what is out of date
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import sys
import tarfile
from pathlib import Path

from gateway import __version__
from gateway.config import REPO_DIR
from gateway.model import FHIR_VERSION, model_class
from gateway.model import systems as S
from gateway.model.terminology import CONCERN_CATEGORIES, CONCERN_CONTEXT, MESSAGE_EVENTS
from gateway.validation import extensions as X
from gateway.validation.codelists import CODE_SYSTEMS
from gateway.validation.snapshots import snapshot
from gateway.validation.standard import Item, Standard, load_standard

COMMAND = "gateway standard package"
DOC = "docs/referral-standard.md"
FHIR_DIR = "docs/fhir"
PAGES_DIR = "docs/standard"
PACKAGE = f"{FHIR_DIR}/package.tgz"
# The FHIR package's name (FHIR package naming: lower case, dot-separated).
PACKAGE_NAME = "example.safeguarding-gateway.referral-standard"
PUBLISHER = "Safeguarding interoperability gateway project"

# The resources of a referral message, in message order; each gets a constraint profile.
PROFILED = ("Bundle", "MessageHeader", "Organization", "Practitioner", "PractitionerRole", "Patient",
            "RelatedPerson", "ServiceRequest", "Observation", "DocumentReference", "Location", "Provenance")

VALUESET_CONCERN_CATEGORY = f"{S.BASE}/ValueSet/concern-category"


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def profile_url(resource: str) -> str:
    """Return the URL of the gateway's profile on ``resource`` (the Bundle's is ``safeguarding-message``)."""
    return S.extension_url(profile_id(resource))


def profile_id(resource: str) -> str:
    return "safeguarding-message" if resource == "Bundle" else f"safeguarding-{_kebab(resource)}"


def _dumps(resource: dict) -> str:
    return json.dumps(resource, indent=2, ensure_ascii=False) + "\n"


def _short_path(text: str) -> str:
    """Return a FHIRPath with the gateway's extension URLs shortened to their names, for people."""
    return re.sub(re.escape(S.BASE) + r"/StructureDefinition/([a-z0-9-]+)", r"\1", text)


# StructureDefinitions ---------------------------------------------------------------------------
def _extension_definition(ext: X.Extension, standard: Standard) -> dict:
    version = standard.version
    value = {"id": "Extension.value[x]", "path": "Extension.value[x]", "min": 1, "type": []}
    for code in ext.value:
        typ: dict = {"code": code}
        if code == "Reference":
            typ["targetProfile"] = ["http://hl7.org/fhir/StructureDefinition/Organization"]
        value["type"].append(typ)
    return _with_snapshot({
        "resourceType": "StructureDefinition",
        "id": ext.name,
        "url": ext.url,
        "version": version,
        "name": _pascal(ext.name),
        "title": ext.title,
        "status": "draft",
        "date": standard.date,
        "publisher": PUBLISHER,
        "description": ext.definition,
        "fhirVersion": FHIR_VERSION,
        "kind": "complex-type",
        "abstract": False,
        "context": [{"type": "element", "expression": c} for c in ext.context],
        "type": "Extension",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension",
        "derivation": "constraint",
        "differential": {"element": [
            {"id": "Extension", "path": "Extension", "short": ext.title, "definition": ext.definition},
            {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
            {"id": "Extension.url", "path": "Extension.url", "fixedUri": ext.url},
            value,
        ]},
    })


def _with_snapshot(sd: dict) -> dict:
    sd["snapshot"] = {"element": snapshot(sd)}
    return sd


_ELEMENT = re.compile(r"^([a-z][A-Za-z]*(?:\.[a-z][A-Za-z]*)*)")


def _element_of(item_path: str) -> str | None:
    """Return the base element an item's path starts at (``address.postalCode``), None for extensions/root."""
    if item_path.startswith(("extension(", "where(")):
        return None
    match = _ELEMENT.match(item_path)
    if not match:
        return None
    parts = match.group(1).split(".")
    # stop before FHIRPath functions written without parentheses in the match (first, tail, where...)
    return ".".join(p for p in parts if p not in ("first", "tail", "where", "exists", "value"))


def constraint_keys(standard: Standard) -> dict[str, str]:
    """Return ``{item id: constraint key}`` (``sgr-1``...) of the items published as invariants, in file order."""
    return {item.id: f"sgr-{n}" for n, item in enumerate((i for i in standard.items if i.invariant), 1)}


def _constraints(standard: Standard) -> list[dict]:
    out = []
    for item_id, key in constraint_keys(standard).items():
        item = standard.item(item_id)
        out.append({
            "key": key,
            "requirements": item.why,
            "severity": "error" if item.level == "MUST" else "warning",
            "human": f"{item.level} {item.id}: {item.title}. {item.action}",
            "expression": standard.constraint(item),
            "source": profile_url("Bundle"),
        })
    return out


def _in_base_order(resource: str, elements: list[dict]) -> list[dict]:
    """Return differential elements in the base resource's element order (snapshot generators need it)."""
    order = {name: n for n, name in enumerate(model_class(resource).elements_sequence())}

    def key(element: dict):
        parts = element["path"].split(".")[1:]
        return (order.get(parts[0], len(order)), len(parts), parts, element.get("sliceName") or "")
    return sorted(elements, key=key)


def _resource_profile(resource: str, standard: Standard, version: str) -> dict:
    root: dict = {"id": resource, "path": resource}
    elements: dict[str, dict] = {}

    def element(path: str) -> dict:
        full = f"{resource}.{path}"
        return elements.setdefault(full, {"id": full, "path": full})

    if resource == "Bundle":
        root["short"] = "A safeguarding message: MessageHeader first, then the resources it refers to"
        root["constraint"] = _constraints(standard)
        element("type")["fixedCode"] = "message"
        element("timestamp")["min"] = 1
        element("entry")["min"] = 1
    if resource == "MessageHeader":
        element("event[x]")["slicing"] = {"discriminator": [{"type": "type", "path": "$this"}], "ordered": False,
                                          "rules": "closed"}
        elements["MessageHeader.event[x]:eventCoding"] = {
            "id": "MessageHeader.event[x]:eventCoding", "path": "MessageHeader.event[x]", "sliceName": "eventCoding",
            "min": 1, "type": [{"code": "Coding"}],
            "binding": {"strength": "required", "valueSet": f"{S.BASE}/ValueSet/message-event"}}
    if resource == "ServiceRequest":
        element("category")["binding"] = {"strength": "extensible", "valueSet": VALUESET_CONCERN_CATEGORY,
                                          "description": "The national concern categories"}

    notes: dict[str, list[Item]] = {}
    for item in standard.items:
        if item.resource == resource and item.resource != "Bundle":
            elem = _element_of(item.path)
            if elem:
                notes.setdefault(elem, []).append(item)
    for elem, items in notes.items():
        e = element(elem)
        e["short"] = "; ".join(i.title for i in items)
        e["comment"] = " ".join(f"Referral standard {i.level} item '{i.id}': {i.why}" for i in items)
        e["mustSupport"] = True

    slices = [ext for ext in X.EXTENSIONS if resource in ext.context]
    ext_items = {}
    for item in standard.items:
        m = re.match(r"extension\('([^']+)'\)", item.path)
        if item.resource == resource and m:
            ext_items.setdefault(m.group(1), []).append(item)
    slice_elements = []
    if slices:
        slice_elements.append({"id": f"{resource}.extension", "path": f"{resource}.extension", "slicing": {
            "discriminator": [{"type": "value", "path": "url"}], "ordered": False, "rules": "open"}})
        for ext in slices:
            el = {"id": f"{resource}.extension:{_pascal(ext.name)[0].lower() + _pascal(ext.name)[1:]}",
                  "path": f"{resource}.extension", "sliceName": _pascal(ext.name)[0].lower() + _pascal(ext.name)[1:],
                  "short": ext.title, "min": 0, "max": ext.max,
                  "type": [{"code": "Extension", "profile": [ext.url]}]}
            if ext.url in ext_items:
                el["mustSupport"] = True
                el["comment"] = " ".join(f"Referral standard {i.level} item '{i.id}': {i.why}"
                                         for i in ext_items[ext.url])
            slice_elements.append(el)

    return _with_snapshot({
        "resourceType": "StructureDefinition",
        "id": profile_id(resource),
        "url": profile_url(resource),
        "version": version,
        "date": standard.date,
        "name": f"Safeguarding{'Message' if resource == 'Bundle' else resource}",
        "title": f"Safeguarding {'message (Bundle)' if resource == 'Bundle' else _kebab(resource).replace('-', ' ')}",
        "status": "draft",
        "publisher": PUBLISHER,
        "description": (f"The {resource} of a safeguarding referral message, as the national referral standard "
                        f"{standard.version} constrains it. Generated from the standard's definition; see "
                        "docs/referral-standard.md."),
        "fhirVersion": FHIR_VERSION,
        "kind": "resource",
        "abstract": False,
        "type": resource,
        "baseDefinition": f"http://hl7.org/fhir/StructureDefinition/{resource}",
        "derivation": "constraint",
        "differential": {"element": [root] + _in_base_order(resource, slice_elements + list(elements.values()))},
    })


# Terminology -------------------------------------------------------------------------------------
def _code_system(cs_id: str, url: str, title: str, description: str, concepts: dict[str, tuple[str, str]],
                 version: str, case_sensitive: bool = True) -> dict:
    return {
        "resourceType": "CodeSystem",
        "id": cs_id,
        "url": url,
        "version": version,
        "name": _pascal(cs_id),
        "title": title,
        "status": "draft",
        "publisher": PUBLISHER,
        "description": description,
        "caseSensitive": case_sensitive,
        "content": "complete",
        "count": len(concepts),
        "concept": [{"code": code, "display": display, "definition": definition}
                    for code, (display, definition) in concepts.items()],
    }


def _value_set(vs_id: str, title: str, description: str, system: str, version: str) -> dict:
    return {
        "resourceType": "ValueSet",
        "id": vs_id,
        "url": f"{S.BASE}/ValueSet/{vs_id}",
        "version": version,
        "name": _pascal(vs_id),
        "title": title,
        "status": "draft",
        "publisher": PUBLISHER,
        "description": description,
        "compose": {"include": [{"system": system}]},
    }


def _standard_items_concepts(standard: Standard) -> dict[str, tuple[str, str]]:
    concepts = {i.id: (i.title, f"{i.level}: {i.why}") for i in standard.items}
    concepts.update({r.id: (r.title, f"Identifier check: {r.why}") for r in standard.identifiers})
    concepts.update({f.id: (f.title, f"Content flag: {f.why}") for f in standard.flags})
    concepts["fhir-base"] = ("Valid FHIR R4", "The message must conform to the FHIR R4 base resource definitions.")
    return concepts


def terminology(standard: Standard, version: str) -> list[dict]:
    """Return the CodeSystems and ValueSets the gateway owns."""
    return [
        _code_system("concern-category", S.CONCERN_CATEGORY, "Safeguarding concern categories",
                     "The national categories of harm a referral is about.", CONCERN_CATEGORIES, version),
        _value_set("concern-category", "Safeguarding concern categories",
                   "All national concern categories; ServiceRequest.category of a referral holds at least one.",
                   S.CONCERN_CATEGORY, version),
        _code_system("concern-context", S.CONCERN_CONTEXT, "Concern context labels",
                     "Labels that describe a record but are not kinds of harm (a disclosure, attendance...).",
                     CONCERN_CONTEXT, version),
        _code_system("message-event", S.MESSAGE_EVENT, "Safeguarding message events",
                     "The events of the gateway's FHIR messages (MessageHeader.eventCoding).", MESSAGE_EVENTS, version),
        _value_set("message-event", "Safeguarding message events", "All safeguarding message events.",
                   S.MESSAGE_EVENT, version),
        _code_system("referral-standard-item", X.STANDARD_ITEM, "Referral standard items",
                     "The items, identifier checks and content flags of the national referral standard; each "
                     "OperationOutcome issue of the gateway's validation names one in details.coding.",
                     _standard_items_concepts(standard), version),
        _code_system("childs-voice-absent-reason", X.CHILDS_VOICE_ABSENT, "Why the child's voice is absent",
                     "Why a referral does not record the child's own words.", X.CHILDS_VOICE_ABSENT_CODES, version),
        _code_system("parents-informed", S.PARENTS_INFORMED, "Parents informed of the referral",
                     "Whether the parents or carers know of the referral.", X.PARENTS_INFORMED_CODES, version),
    ] + [_code_system(cs_id, url, title, description, concepts, version, case_sensitive)
         for cs_id, url, title, description, case_sensitive, concepts in CODE_SYSTEMS]


# Messages ----------------------------------------------------------------------------------------
# What each message event is about (MessageDefinition.focus); events not listed have no fixed focus.
_EVENT_FOCUS = {S.EVENT_REFERRAL: "ServiceRequest", S.EVENT_CONCERN: "ServiceRequest",
                S.EVENT_ENCOMPASS: "ServiceRequest"}


def message_definition_url(code: str) -> str:
    """Return the canonical URL of the MessageDefinition of message event ``code``."""
    return f"{S.BASE}/MessageDefinition/{code}"


def message_definitions(standard: Standard) -> list[dict]:
    """Return a MessageDefinition for every message event (:data:`MESSAGE_EVENTS`)."""
    out = []
    for code, (display, definition) in MESSAGE_EVENTS.items():
        md = {
            "resourceType": "MessageDefinition",
            "id": code,
            "url": message_definition_url(code),
            "version": standard.version,
            "name": _pascal(code),
            "title": display,
            "status": "draft",
            "date": standard.date,
            "publisher": PUBLISHER,
            "description": f"{definition} A FHIR message Bundle (profile {profile_url('Bundle')}) whose "
                           f"MessageHeader names event {code}.",
            "eventCoding": {"system": S.MESSAGE_EVENT, "code": code, "display": display},
            "category": "notification",
        }
        focus = _EVENT_FOCUS.get(code)
        if focus:
            md["focus"] = [{"code": focus, "profile": profile_url(focus), "min": 1, "max": "1"}]
        out.append(md)
    return out


def concept_maps(mappings_dir: Path) -> list[dict]:
    """Return the ConceptMaps of every mapping under ``mappings_dir``, sorted by file path.

    Raises ``ValueError`` naming the file when one is not JSON or has no id.
    """
    out = []
    for path in sorted(mappings_dir.glob("*/*.conceptmap.json")):
        try:
            resource = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{path}: not JSON ({exc})") from None
        if resource.get("resourceType") != "ConceptMap" or not resource.get("id"):
            raise ValueError(f"{path}: not a ConceptMap with an id")
        out.append(resource)
    return out


def fhir_artefacts(standard: Standard | None = None, mappings_dir: Path | None = None) -> dict[str, dict]:
    """Return ``{file name: resource}`` of every conformance resource for ``docs/fhir/``."""
    standard = standard or load_standard()
    mappings_dir = mappings_dir or REPO_DIR / "mappings"
    version = standard.version
    out: dict[str, dict] = {}
    for resource in PROFILED:
        sd = _resource_profile(resource, standard, version)
        out[f"StructureDefinition-{sd['id']}.json"] = sd
    for ext in X.EXTENSIONS:
        out[f"StructureDefinition-{ext.name}.json"] = _extension_definition(ext, standard)
    for res in terminology(standard, version) + message_definitions(standard):
        out[f"{res['resourceType']}-{res['id']}.json"] = res
    for cm in concept_maps(mappings_dir):
        out[f"ConceptMap-{cm['id']}.json"] = cm
    return out


# The document --------------------------------------------------------------------------------------
def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def document(standard: Standard | None = None, artefacts: dict[str, dict] | None = None) -> str:
    """Return ``docs/referral-standard.md``: the standard as tables a designated safeguarding lead can read."""
    standard = standard or load_standard()
    artefacts = fhir_artefacts(standard) if artefacts is None else artefacts
    out = [
        "<!-- Generated from gateway/validation/standard.yaml by "
        f"`{COMMAND}`; do not edit by hand. -->",
        "",
        f"# The national referral standard (version {standard.version})",
        "",
        "What a safeguarding referral must and should contain. The gateway checks every message against it "
        "and tells the sender exactly what is missing; a child's referral is never held back for paperwork "
        "unless the gateway could not identify, route or act on it at all.",
        "",
        "- **MUST**: without it the gateway cannot identify the child, route the referral or act on it. A "
        "missing MUST item is an *error*: the message is refused and the sender is told why.",
        "- **SHOULD**: needed to act well. A missing SHOULD item is a *warning* that goes back to the sender; "
        "the message still goes on. The **completeness score** is the share (0-100) of the SHOULD items that "
        "apply to the message and are present.",
        "- **TIMELINESS**: warnings that state the delay.",
        "",
        "Applies to: " + "; ".join(f"*{k}*: {v}" for k, v in standard.applicability.items()) + ".",
        "",
        "Where it goes in FHIR is a FHIRPath into the message Bundle; `extension('name')` stands for the "
        f"extension `{S.BASE}/StructureDefinition/name`.",
        "",
        "## The minimum dataset",
        "",
        "| # | Item | Level | Applies to | Why it matters | Where it goes in FHIR |",
        "|---|------|-------|------------|----------------|-----------------------|",
    ]
    for n, item in enumerate(standard.items, 1):
        out.append(f"| {n} | **{_cell(item.title)}** (`{item.id}`) | {item.level} | {item.applies} | "
                   f"{_cell(item.why)} | `{_cell(_short_path(item.fhirpath))}` |")
    out += ["", "## What the sender is told", "",
            "Each missing item gives one OperationOutcome issue: its severity (error for MUST, warning "
            "otherwise), its `expression` (R4's simple FHIRPath, element names and indexes, naming the one "
            "node of the message it is about or the element that should hold what is missing), the fuller "
            "FHIRPath of the place in `location` when that says more (`extension('...')`, `where(...)`), "
            "`details.coding` naming the item in the CodeSystem "
            f"`{X.STANDARD_ITEM}` and `details.text` saying what to add:", "",
            "| Item | What to add |", "|------|-------------|"]
    out += [f"| `{i.id}` | {_cell(i.action)} |" for i in standard.items]
    out += ["", "## Checking a message", "",
            "- `gateway validate FILE` checks a Bundle (JSON) or NDJSON of Bundles and prints one "
            "OperationOutcome per Bundle; it exits 1 when any Bundle has an error.",
            "- `POST /fhir/Bundle/$validate` with a Bundle (`application/fhir+json`) returns the "
            "OperationOutcome; a body that is not JSON or not a Bundle gets a 400 with an OperationOutcome.",
            "- `gateway quality INPUT.ndjson [--html OUT.html]` shows, per sender, how many referrals, their "
            "completeness and the ten most common gaps.",
            "- `gateway translate` checks every Bundle it writes; a Bundle with an error goes to the error "
            "report, never out as a message.",
            "", "## Timeliness rules", "",
            "- A date alone (no time) is read as its whole UK day, and the *shortest* delay the dates allow is "
            "the one reported: a concern that happened on 5 June and was recorded at 14:32 on 6 June is not "
            "late.",
            "- A time without an offset is UK local time.",
            "- A date more than 5 minutes after the time of checking is in the future (a few minutes is clock "
            "difference between systems).", "",
            "## Identifier checks", "",
            "An invalid identifier is a *warning* naming the value. It is kept in the message, marked with the "
            "`identifier-invalid` extension and `use: secondary`, never used for linking, and does not count "
            "as present for the items above.", "",
            "Check digits and formats are the one part of the standard FHIRPath cannot say, so the gateway "
            "decides the items that depend on them (" + ", ".join(f"`{i.id}`" for i in standard.items
                                                             if i.check and i.invariant) + ") in Python. "
            "Their published invariants read the `identifier-invalid` mark, which the gateway's translator "
            "sets; they agree with the gateway on every message it translates (a test holds them to it), but "
            "a message built elsewhere that carries a wrong NHS number, UPN, URN or postcode *without* the "
            "mark passes the invariant while the gateway counts the identifier as absent.", "",
            "| Check | On | Why |", "|-------|----|-----|"]
    for rule in standard.identifiers:
        where = f"identifier (system `{rule.system}`)" if rule.system else f"`{rule.element}`"
        out.append(f"| **{_cell(rule.title)}** (`{rule.id}`) | {', '.join(rule.resources)} {where} | {_cell(rule.why)} |")
    out += ["", "## Content flags", "", "Warnings about what the message says; they do not change the score.", "",
            "| Flag | Applies to | Why |", "|------|------------|-----|"]
    out += [f"| **{_cell(f.title)}** (`{f.id}`) | {f.applies} | {_cell(f.why)} |" for f in standard.flags]
    new = {X.EXT_REQUESTED_ACTION, X.EXT_LAWFUL_BASIS, X.EXT_CHILDS_VOICE_ABSENT_REASON,
           X.EXT_PARENTS_NOT_INFORMED_REASON, X.EXT_EXPECTED_DUE_DATE}
    out += ["", "## Extensions", "",
            "Every extension a message may carry. Those marked *new* are defined by this standard for items "
            "that had no place in the message before; senders and mappings fill them as their systems start "
            "to record the information.", "",
            "| Extension | On | Value | Meaning |", "|-----------|----|-------|---------|"]
    for ext in sorted(X.EXTENSIONS, key=lambda e: e.name):
        mark = " *new*" if ext.url in new else ""
        out.append(f"| `{ext.name}`{mark} | {', '.join(ext.context)} | {', '.join(ext.value)} | "
                   f"{_cell(ext.definition)} |")
    out += ["", "## FHIR conformance resources", "",
            f"Under `{FHIR_DIR}/`, one file per resource and all of them as the FHIR package "
            f"`{PACKAGE}` ({PACKAGE_NAME}, NPM format with `package/package.json` and `package/.index.json`), "
            f"which FHIR tools load by canonical URL (FHIR {FHIR_VERSION}; profiles carry snapshots). The "
            "message profile carries every MUST item as an error constraint and every SHOULD item as a "
            "warning constraint: FHIRPath on the Bundle, the applicability condition included, and the very "
            "expression the gateway evaluates (only the identifier check digits, postcode formats and the "
            "timeliness rules are decided in Python; their invariants are tested against the same cases). "
            f"A page per profile and code system is in [{PAGES_DIR}/]({PAGES_DIR.split('/', 1)[1]}/README.md).",
            "",
            "To check messages with another validator as the gateway's tests do, load the package into it: "
            "`node tests/validation/medplum_validate.mjs docs/fhir/package.tgz BUNDLES.json` (after `npm ci`) "
            "validates a JSON array of Bundles with Medplum's validator, and the conformance test requires it "
            "to agree with `gateway validate` on the golden outputs, synthetic data and the standard's cases.",
            ""]
    for name in sorted(artefacts):
        res = artefacts[name]
        out.append(f"- [`{name}`](fhir/{name}): {res['resourceType']} {res.get('title') or res.get('name')}")
    out += ["", "## Regenerating", "",
            f"Edit `gateway/validation/standard.yaml` (or the code lists, extensions or ConceptMaps), then run "
            f"`{COMMAND}`. A test fails while this page or `{FHIR_DIR}/` is out of date.", ""]
    return "\n".join(out)


def package_manifest(standard: Standard) -> dict:
    """Return ``package/package.json`` of the FHIR package (NPM format, as FHIR packages are)."""
    return {
        "name": PACKAGE_NAME,
        "version": standard.version,
        "description": "The national safeguarding referral standard: profiles, extensions, code systems, "
                       "value sets, concept maps and message definitions.",
        "author": PUBLISHER,
        "license": "MIT",
        "fhirVersions": [FHIR_VERSION],
        "type": "fhir.ig",
        "canonical": S.BASE,
        "url": S.BASE,
        "date": standard.date.replace("-", "") + "000000",
        "dependencies": {"hl7.fhir.r4.core": FHIR_VERSION},
    }


def package_index(artefacts: dict[str, dict]) -> dict:
    """Return ``package/.index.json``: one row per resource, as FHIR package tools read it."""
    files = []
    for name in sorted(artefacts):
        res = artefacts[name]
        row = {"filename": name, "resourceType": res["resourceType"], "id": res["id"]}
        for key in ("url", "version", "kind", "type"):
            if key in res:
                row[key] = res[key]
        files.append(row)
    return {"index-version": 1, "files": files}


def package(standard: Standard, artefacts: dict[str, dict]) -> bytes:
    """Return the FHIR package (``package.tgz``) of ``artefacts``; the same input gives the same bytes."""
    members = {"package/package.json": package_manifest(standard), "package/.index.json": package_index(artefacts)}
    members.update({f"package/{name}": res for name, res in artefacts.items()})
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(members):
            data = _dumps(members[name]).encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(tar_bytes.getvalue())
    return out.getvalue()


def render(standard: Standard | None = None, mappings_dir: Path | None = None) -> dict[str, str | bytes]:
    """Return ``{path relative to the repository: text (or bytes, the package)}`` of every generated file."""
    from gateway.validation.pages import pages

    standard = standard or load_standard()
    artefacts = fhir_artefacts(standard, mappings_dir)
    files: dict[str, str | bytes] = {f"{FHIR_DIR}/{name}": _dumps(res) for name, res in artefacts.items()}
    files[PACKAGE] = package(standard, artefacts)
    files[DOC] = document(standard, artefacts)
    files.update({f"{PAGES_DIR}/{name}": text for name, text in pages(standard, artefacts).items()})
    return files


def _differs(path: Path, content: str | bytes) -> bool:
    if not path.is_file():
        return True
    if isinstance(content, bytes):
        return path.read_bytes() != content
    return path.read_text(encoding="utf-8") != content


def outdated(root: Path, files: dict[str, str | bytes] | None = None) -> list[str]:
    """Return the generated paths under ``root`` that differ from what :func:`render` gives.

    Includes files missing on disk and stale generated files (``docs/fhir/*.json``,
    ``docs/standard/*.md``) that would no longer be generated.
    """
    files = render() if files is None else files
    out = [path for path, content in files.items() if _differs(root / path, content)]
    for folder, pattern in ((FHIR_DIR, "*.json"), (PAGES_DIR, "*.md")):
        if (root / folder).is_dir():
            out += [f"{folder}/{p.name}" for p in sorted((root / folder).glob(pattern))
                    if f"{folder}/{p.name}" not in files]
    return sorted(out)


def write(root: Path, files: dict[str, str | bytes] | None = None) -> list[str]:
    """Write the generated files under ``root``, remove stale ones, and return the paths changed."""
    files = render() if files is None else files
    changed = outdated(root, files)
    for path in changed:
        target = root / path
        if path not in files:
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        content = files[path]
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8", newline="\n")
    return changed


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the generated files; return the exit status."""
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 when anything is out of date")
    parser.add_argument("--root", type=Path, default=REPO_DIR, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    try:
        files = render(mappings_dir=args.root / "mappings")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        stale = outdated(args.root, files)
        for path in stale:
            print(f"out of date: {path}", file=sys.stderr)
        if stale:
            print(f"run `{COMMAND}` to regenerate", file=sys.stderr)
        return 1 if stale else 0
    changed = write(args.root, files)
    print(f"{len(changed)} file(s) written or removed of {len(files)} generated (gateway {__version__})")
    for path in changed:
        print(f"  {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
