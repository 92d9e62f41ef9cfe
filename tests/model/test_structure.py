"""The FHIR structural pre-check (gateway.model.structure) against the reference (fhir.resources).

The property everything rests on: ``certainly_valid(x)`` implies that the
reference (``validate_resource``) accepts ``x``. It is tested on every valid
message the project knows and on random mutations of them (Hypothesis). The
fast path is only worth having if valid messages take it, so every known valid
Bundle must be certainly valid too. Then one test per rule, and
``check_resource``: the reference's decision and errors, unchanged.

All data is fictional; NHS numbers start with 999.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import importlib.util
import json
import random
import re
import threading
import typing
from pathlib import Path

import pytest
from fhir_core.constraints import FHIR_TYPES_MAPS
from hypothesis import HealthCheck, event, find, given, settings
from hypothesis import strategies as st
from pydantic import StringConstraints, TypeAdapter, field_validator

from gateway.model import FhirInvalid, build_bundle, check_resource, model_class, validate_resource
from gateway.model import fhir as fhir_module
from gateway.model import structure
from gateway.model.structure import certainly_valid
from gateway.routing import Agency, build_acknowledgement, build_encompass_notification, build_outcome_message
from gateway.signing import Signer, countersign_message, pki, sign_message

from tests.routing.helpers import FAMILY_A_RECEIVED, HAMPSHIRE, translate
from tests.validation import referral_builders as RB

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_NOW = "2026-01-05T09:00:00+00:00"
DECIDED = dt.datetime(2018, 10, 2, 15, 0, tzinfo=dt.timezone.utc)
EXT_URL = "https://fhir.safeguarding-gateway.example/StructureDefinition/test-note"


# The known valid messages ----------------------------------------------------------------------

def _golden_bundles() -> list[tuple[str, dict]]:
    """The messages of every mapping golden, with the values goldens strip (they vary per run) put back."""
    found = []
    for path in sorted(ROOT.glob("mappings/*/cases/*/expected.json")):
        for i, bundle in enumerate(json.loads(path.read_text(encoding="utf-8"))["messages"]):
            bundle.setdefault("timestamp", GOLDEN_NOW)
            for entry in bundle["entry"]:
                if entry["resource"]["resourceType"] == "Provenance":
                    entry["resource"].setdefault("recorded", GOLDEN_NOW)
            found.append((f"golden {path.parent.parent.parent.name}/{path.parent.name}[{i}]", bundle))
    return found


def _bench_records(count: int) -> list[dict]:
    """Varied referral records (school and police, complete to sparse) from bench/validate.py."""
    spec = importlib.util.spec_from_file_location("bench_validate_records", ROOT / "bench" / "validate.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = random.Random(0)
    return [bench.referral_record(rng, n) for n in range(count)]


def _pipeline_referral(n: int) -> dict:
    """bench/pipeline.py's complete school referral, with an NHS number besides."""
    spec = importlib.util.spec_from_file_location("bench_pipeline_records", ROOT / "bench" / "pipeline.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    record = bench.referral_record(n, record_id=f"00000000-0000-4000-8000-{n:012d}")
    record["child"]["nhs_number"] = RB.NHS_OK
    return record


@functools.cache
def _unsigned_corpus() -> tuple[tuple[str, dict], ...]:
    """Every valid message Bundle the project makes without a signing key."""
    found = _golden_bundles()
    found += [(f"bench record {i}", build_bundle(record, now=RB.NOW)) for i, record in enumerate(_bench_records(40))]
    found += [("pipeline referral", build_bundle(_pipeline_referral(7), now=RB.NOW)),
              ("school record", build_bundle(RB.school_record(), now=RB.NOW)),
              ("police record", build_bundle(RB.police_record(), now=RB.NOW)),
              ("complete school", RB.complete_bundle("school")), ("complete police", RB.complete_bundle("police"))]
    ppns = translate("ppn-xml", "ppn-sample.xml")
    schools = translate("schoolsafe-csv", "schoolsafe-sample.csv")
    found += [(f"translated ppn {i}", b) for i, b in enumerate(ppns)]
    found += [(f"translated school {i}", b) for i, b in enumerate(schools)]
    found += [("translated concernhub", b) for b in translate("concernhub-json", "concernhub-sample.json")]
    found += [
        ("routing outcome", build_outcome_message(schools[0], "declined", "Below threshold.", HAMPSHIRE, DECIDED)),
        ("routing outcome accepted", build_outcome_message(schools[0], "accepted-for-assessment", "Section 47.",
                                                           HAMPSHIRE, DECIDED, decided_by_name="Fictional MASH")),
        ("routing ack ok", build_acknowledgement(schools[0], "ok", None, HAMPSHIRE, DECIDED)),
        ("routing ack error", build_acknowledgement(schools[0], "fatal-error", "Fictional details.", HAMPSHIRE,
                                                    DECIDED)),
        ("routing encompass", build_encompass_notification(
            ppns[0], Agency("school", "999101", "Riverside Infant School"), due=DECIDED, now=FAMILY_A_RECEIVED)),
    ]
    return tuple(found)


@pytest.fixture(scope="module")
def corpus(deployment) -> list[tuple[str, dict]]:
    """The unsigned messages, and a referral as its sender signs it and as the gateway counter-signs it."""
    school = Signer.from_files(f"{deployment.school}.crt", f"{deployment.school}.key")
    gateway = Signer.from_files(deployment.dir / pki.GATEWAY_CERT, deployment.dir / pki.GATEWAY_KEY)
    now = dt.datetime.now(dt.timezone.utc)
    signed = sign_message(build_bundle(_pipeline_referral(8), now=now), school, now=now)
    return [*_unsigned_corpus(), ("signed referral", signed),
            ("counter-signed referral", countersign_message(signed, gateway, now=now))]


def test_every_known_valid_bundle_is_certainly_valid(corpus):
    assert len(corpus) >= 60
    for name, bundle in corpus:
        validate_resource(bundle)  # the reference first: each one really is valid
    declined = [name for name, bundle in corpus if not certainly_valid(bundle)]
    assert declined == []


# Mutations -------------------------------------------------------------------------------------

Choose = typing.Callable[[typing.Sequence], typing.Any]

#: Values put in place of a value, or under a new key: other JSON types, empties, bad primitives.
REPLACEMENTS = [
    None, [], "", {}, " ", "   ", "\t", "\n", True, False, 0, 1, -1, 2 ** 31, 1.5, -0.0, 1e300, "1.5", "true",
    "2023-02-29", "2024-13", "2024-02-30", "20240101", "2024-01-01T10:00:00", "2024-01-01T10:00Z",
    "2024-01-01T24:00:00Z", "2024-06-30T23:59:60Z", "2024-01-01T10:00:00.123+14:00", "2024", "2024-01",
    "2012-04-03", "12:00:00", "not a date", "a  b", "A B", "x", "female", "Male", "unknown", "message",
    "Patient", "urn:uuid:1", "https://example.org/x", "a\x00b", "\x1c", "\xa0", "a\u2028b", "caf\u00e9",
    "x" * 300, "AAAA", "AAA=", "@@", [None], [[]], [{}], {"resourceType": "Patient"}, {"extension": []},
    {"id": "x"}, {"url": EXT_URL}, {"url": EXT_URL, "valueString": "x"}, {"text": "x"}, {"reference": "x"},
    {"extension": [{"url": EXT_URL, "valueBoolean": True}]}, [{"url": EXT_URL, "valueString": "x"}],
    {"resourceType": "Basic", "code": {"text": "x"}}, [{"resourceType": "Basic", "code": {"text": "x"}}],
]
#: Keys added to an object: unknown ones, JSON names of other types, field names, choice members.
KEYS = ["foo", "_foo", "resourceType", "id", "_id", "extension", "modifierExtension", "fhir_comments", "text",
        "meta", "contained", "url", "system", "value", "display", "reference", "_birthDate", "birthDate__ext",
        "_status", "_gender", "class_fhir", "valueBoolean", "valueString", "valueInteger", "valueDateTime",
        "valueCodeableConcept", "valueReference", "effectivePeriod", "deceasedBoolean", "occurrenceDateTime",
        "eventUri"]
RESOURCE_TYPES = ["Patient", "Observation", "Organization", "Bundle", "Basic", "Unknown", "Resource",
                  "DomainResource", "BundleEntry", "Element", "FHIRPrimitiveExtension", "patient", ""]
#: Suffixes of a second member of a choice group, with a value of that type.
CHOICE_MEMBERS = {"Boolean": True, "String": "x", "DateTime": "2019-06-05", "Integer": 1,
                  "CodeableConcept": {"text": "x"}, "Reference": {"reference": "x"}, "Uri": "urn:x",
                  "Coding": {"code": "x"}, "Period": {"start": "2019"}}
CHOICE_PREFIXES = ("value", "effective", "occurrence", "deceased", "multipleBirth", "event", "content",
                   "onset", "performed", "timing", "born")


def _nodes(node, path=()):
    """Every (path, value) of a JSON tree, the root first."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _nodes(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _nodes(value, (*path, i))


def _at(tree, path):
    for part in path:
        tree = tree[part]
    return tree


def _choice_member(node: dict, choose: Choose) -> tuple[str, object] | None:
    """A key (and value) that would be a second member of a choice group ``node`` already has."""
    for key in node:
        for prefix in CHOICE_PREFIXES:
            if key.startswith(prefix) and key[len(prefix):][:1].isupper():
                suffix = choose(sorted(CHOICE_MEMBERS))
                return f"{prefix}{suffix}", CHOICE_MEMBERS[suffix]
    return None


def mutate_once(tree, choose: Choose) -> None:
    """Apply one random mutation at a random place of ``tree`` (in place)."""
    nodes = list(_nodes(tree))
    path, node = nodes[choose(range(len(nodes)))]
    op = choose(["delete", "add", "replace", "replace", "wrap", "choice", "resourceType", "string", "primitive-ext",
                 "list"])
    if op == "delete" and isinstance(node, dict) and node:
        del node[choose(sorted(node))]
    elif op == "add" and isinstance(node, dict):
        node[choose(KEYS)] = copy.deepcopy(choose(REPLACEMENTS + [v for v in node.values()][:4]))
    elif op == "choice" and isinstance(node, dict) and (member := _choice_member(node, choose)):
        node[member[0]] = copy.deepcopy(member[1])
    elif op == "resourceType" and isinstance(node, dict) and "resourceType" in node:
        node["resourceType"] = choose(RESOURCE_TYPES)
    elif op == "primitive-ext" and isinstance(node, dict):
        keys = sorted(k for k, v in node.items() if isinstance(v, (str, bool, int, float)) and k != "resourceType")
        if keys:
            key = choose(keys)
            node["_" + key] = copy.deepcopy(choose([{"extension": [{"url": EXT_URL, "valueString": "x"}]},
                                                    {"id": "a1"}, {}, {"extension": []}, {"foo": 1}, []]))
            if choose([True, False]):
                del node[key]
    elif op == "list" and isinstance(node, list) and node:
        if choose(["pop", "append"]) == "pop":
            node.pop(choose(range(len(node))))
        else:
            node.append(copy.deepcopy(choose(node + [None, "x", {}])))
    elif path:
        parent, key = _at(tree, path[:-1]), path[-1]
        if op == "wrap":
            parent[key] = [node]
        elif op == "string" and isinstance(node, str):
            parent[key] = choose([" " + node, node + "\n", node + "  x", node.upper(), node[:1], node * 2])
        else:
            parent[key] = copy.deepcopy(choose(REPLACEMENTS))


def mutated(bundle: dict, choose: Choose) -> dict:
    """A copy of ``bundle`` with one to three mutations."""
    tree = copy.deepcopy(bundle)
    for _ in range(choose([1, 1, 2, 3])):
        mutate_once(tree, choose)
    return tree


def _reference_accepts(resource) -> bool:
    try:
        validate_resource(resource)
    except Exception:  # noqa: BLE001 - FhirInvalid, KeyError..., even the reference's own AttributeError
        return False
    return True


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_certainly_valid_implies_the_reference_accepts(corpus, data):
    _, bundle = corpus[data.draw(st.integers(0, len(corpus) - 1), label="bundle")]
    candidate = mutated(bundle, lambda options: data.draw(st.sampled_from(list(options))))
    fast = certainly_valid(candidate)
    event("certainly valid" if fast else "declined")  # see --hypothesis-show-statistics
    if fast:
        validate_resource(candidate)  # raises (and fails the test) if the pre-check was wrong


def test_mutations_reach_both_outcomes(corpus):
    """The property test is only as good as its mutations: many must be invalid, some still valid."""
    rng = random.Random(20240601)
    counts = {"invalid": 0, "certainly valid": 0, "valid but declined": 0}
    for _ in range(600):
        candidate = mutated(rng.choice(corpus)[1], lambda options: rng.choice(list(options)))
        fast, reference = certainly_valid(candidate), _reference_accepts(candidate)
        assert reference or not fast, "the pre-check accepted what the reference refuses"
        counts["invalid" if not reference else "certainly valid" if fast else "valid but declined"] += 1
    assert counts["invalid"] >= 250, counts
    assert counts["certainly valid"] >= 40, counts


# One rule at a time ----------------------------------------------------------------------------

def patient(**extra) -> dict:
    resource = {"resourceType": "Patient", "id": "child", "active": True,
                "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}],
                "name": [{"use": "official", "family": "Testchild", "given": ["Alex", "Jo"]}],
                "gender": "female", "birthDate": "2012-04-03", "multipleBirthInteger": 2,
                "extension": [{"url": EXT_URL, "valueString": "Fictional note"}]}
    resource.update(extra)
    return resource


def observation(**extra) -> dict:
    resource = {"resourceType": "Observation", "status": "final", "code": {"text": "Fictional"},
                "effectiveDateTime": "2019-06-05T13:00:00+01:00",
                "valueQuantity": {"value": 1.5, "unit": "kg"}}
    resource.update(extra)
    return resource


def message(*resources: dict, **extra) -> dict:
    header = {"resourceType": "MessageHeader", "id": "hdr",
              "eventCoding": {"system": "https://example.org/event", "code": "test"},
              "source": {"endpoint": "urn:x-safeguarding:agency:school:999101"}}
    bundle = {"resourceType": "Bundle", "type": "message", "timestamp": "2019-06-10T12:00:00+00:00",
              "entry": [{"fullUrl": f"urn:uuid:00000000-0000-4000-8000-00000000000{i}", "resource": r}
                        for i, r in enumerate((header, *resources))]}
    bundle.update(extra)
    return bundle


def assert_fast(resource) -> None:
    """Certainly valid, and the reference agrees (so the unit tests below are honest)."""
    validate_resource(resource)
    assert certainly_valid(resource)


def assert_declined(resource, *, reference: bool | None = None) -> None:
    """Not certainly valid; ``reference`` says what the reference decides, when the test knows."""
    assert not certainly_valid(resource)
    if reference is not None:
        assert _reference_accepts(resource) is reference


def test_the_unit_test_resources_are_certainly_valid():
    assert_fast(patient())
    assert_fast(observation())
    assert_fast(message(patient(), observation()))


@pytest.mark.parametrize("key", ["foo", "_foo", "birthDate__ext", "resource_type", "_id"])
def test_unknown_key(key):
    assert_declined(patient(**{key: "x"}))
    nested = patient()
    nested["name"][0][key] = "x"
    assert_declined(nested)


def test_resource_type_inside_an_element_is_refused():
    resource = patient()
    resource["name"][0]["resourceType"] = "HumanName"  # the reference tolerates it
    assert_declined(resource, reference=True)


@pytest.mark.parametrize(("build", "path"), [
    (lambda: message(), ("type",)),                                   # required primitive (Bundle.type)
    (lambda: message(), ("entry", 0, "resource", "source")),          # required complex (MessageHeader.source)
    (lambda: message(), ("entry", 0, "resource", "eventCoding")),     # required choice (MessageHeader.event[x])
    (lambda: patient(), ("extension", 0, "url")),                     # Extension.url
    (lambda: observation(), ("code",)),
    (lambda: observation(), ("status",)),
    (lambda: message(patient()), ("entry", 1, "resource", "resourceType")),
])
def test_missing_required_element(build, path):
    resource = build()
    assert_fast(resource)
    del _at(resource, path[:-1])[path[-1]]
    assert_declined(resource, reference=False)


def test_required_primitive_may_be_absent_when_its_extension_explains_why():
    resource = observation()
    del resource["status"]
    resource["_status"] = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                          "valueCode": "unknown"}]}
    assert_fast(resource)  # fhir_core's rule, followed
    resource["_status"] = {"id": "s1"}  # an extension element without an extension does not explain it
    assert_declined(resource, reference=False)


def test_one_of_many():
    assert_declined(patient(deceasedBoolean=False, deceasedDateTime="2020-01-01"), reference=False)
    two_values = patient()
    two_values["extension"][0]["valueBoolean"] = True
    assert_declined(two_values, reference=False)
    assert_fast(patient(deceasedBoolean=False))
    header = message()
    header["entry"][0]["resource"]["eventUri"] = "urn:x"  # MessageHeader.event[x]: one, and only one
    assert_declined(header, reference=False)
    header["entry"][0]["resource"].pop("eventCoding")
    assert_fast(header)


def test_enum_values():
    assert_declined(patient(gender="Male"), reference=True)  # the reference does not enforce enum_values
    assert_declined(message(type="messages"), reference=True)
    assert_fast(patient(gender="unknown"))
    # Task.status lists "draft | requested | received | accepted | +": a list cut short is not enforced.
    task = {"resourceType": "Task", "status": "rejected", "intent": "order"}
    assert_fast(task)


def test_list_or_single():
    assert_declined(patient(name={"family": "Testchild"}), reference=False)
    assert_declined(patient(gender=["female"]), reference=False)
    assert_declined(patient(identifier=[]), reference=True)  # an empty array is not FHIR JSON
    assert_declined(patient(extension=[[{"url": EXT_URL, "valueString": "x"}]]), reference=False)


def test_nulls():
    assert_declined(patient(name=[None]), reference=False)
    assert_declined(patient(gender=None), reference=True)
    given_null = patient()
    given_null["name"][0]["given"] = ["Alex", None]
    assert_declined(given_null)
    assert_declined(patient(extension=None), reference=True)


# (path in the resource, a good value, bad values) for each kind of primitive
PRIMITIVES = [
    ("boolean", patient, ("active",), False, ["true", 1, 0, None, "false"]),
    ("integer", patient, ("multipleBirthInteger",), 3, [True, 1.0, "3", 2 ** 31, -(2 ** 31) - 1]),
    ("decimal", observation, ("valueQuantity", "value"), 10, [True, "1.5", float("nan"), float("inf"), None]),
    ("string", patient, ("name", 0, "family"), "O'Testchild-Smyth", ["", "   ", "a\x00b", "\x1c", 7, "\ud800"]),
    ("code", lambda: patient(maritalStatus={"coding": [{"system": "urn:x", "code": "M"}]}),
     ("maritalStatus", "coding", 0, "code"), "S x", ["", "two  spaces", " M", "M\n", "M ", 5]),
    ("code with enum_values", patient, ("identifier", 0, "use"), "official", ["Official", "official ", "x"]),
    ("id", patient, ("id",), "a-1.B", ["", "a b", "a_b", "x" * 256]),
    ("uri", patient, ("identifier", 0, "system"), "urn:oid:1.2.3", ["", "a b", " urn:x", 1]),
    ("date", patient, ("birthDate",), "2012-04", ["2023-02-29", "2024-13", "20240101", "2012-04-03T10:00:00Z",
                                                  "0000", ""]),
    ("dateTime", observation, ("effectiveDateTime",), "2019-06-05",
     ["2019-06-05T13:00:00", "2019-06-05T24:00:00Z", "2019-02-29", "2019-06-05T13:00Z", "2019-06-30T23:59:60Z"]),
    ("instant", message, ("timestamp",), "2019-06-10T12:00:00.123456789Z",
     ["2019-06-10", "2019-06-10T12:00:00", "2019-06-10T12:00Z", "2019-02-30T12:00:00Z"]),
    ("time", lambda: observation(valueQuantity=None), ("valueTime",), "13:00:00.5",
     ["24:00:00", "13:00", "13:00:00Z", "13:00:60"]),
    ("markdown", lambda: observation(note=[{"text": "**Fictional**"}]), ("note", 0, "text"), "Line 1\nLine 2",
     ["", "  \n ", "a\x07b"]),
    ("positiveInt", lambda: observation(valueQuantity=None, valueSampledData={
        "origin": {"value": 0}, "period": 1, "dimensions": 1}), ("valueSampledData", "dimensions"), 2, [0, -1, True]),
    ("unsignedInt", lambda: message(total=1), ("total",), 0, [-1, 1.0, "1"]),
    ("base64Binary", lambda: patient(photo=[{"contentType": "image/png", "data": "AAAA"}]), ("photo", 0, "data"),
     "aGVsbG8=", ["", "aGVsbG8", "@@@@", "aGVs bG8=", 1]),
    ("url", lambda: patient(photo=[{"url": "https://example.org/a"}]), ("photo", 0, "url"), "https://example.org/b",
     ["", "https://example.org/a b", 5]),
]


@pytest.mark.parametrize(("kind", "build", "path", "good", "bad"), PRIMITIVES, ids=[p[0] for p in PRIMITIVES])
def test_primitive(kind, build, path, good, bad):
    resource = build()
    for key in [k for k, v in list(resource.items()) if v is None]:
        del resource[key]
    parent = _at(resource, path[:-1])
    parent[path[-1]] = good
    assert_fast(resource)
    for value in bad:
        parent[path[-1]] = value
        assert_declined(resource)


def test_primitive_extension():
    with_ext = patient(_birthDate={"extension": [{"url": EXT_URL, "valueString": "approximate"}]})
    assert_fast(with_ext)
    assert_fast(patient(_birthDate={"id": "b1"}))
    assert_declined(patient(_birthDate={}), reference=False)  # FHIRPrimitiveExtension: id or extension
    assert_declined(patient(_birthDate={"extension": [{"valueString": "x"}]}), reference=False)  # no url
    assert_declined(patient(_birthDate={"foo": "x"}), reference=False)
    assert_declined(patient(_birthDate=[{"id": "b1"}]), reference=False)
    given = patient()
    given["name"][0]["_given"] = [{"id": "g1"}, {"extension": [{"url": EXT_URL, "valueBoolean": True}]}]
    assert_fast(given)
    given["name"][0]["_given"] = [None, {"id": "g2"}]  # a placeholder null: FHIR allows it, declined here
    assert_declined(given, reference=True)


def test_fhir_comments():
    assert_fast(patient(fhir_comments="Fictional comment"))
    assert_fast(patient(fhir_comments=["one", "two"]))
    assert_declined(patient(fhir_comments=[]))
    assert_declined(patient(fhir_comments=5), reference=False)


def test_resources_are_checked_as_the_type_they_name():
    organization = {"resourceType": "Organization", "id": "org", "name": "Fictional Primary School"}
    assert_fast(patient(contained=[organization]))
    assert_fast(message(organization))
    assert_declined(patient(contained=[{**organization, "birthDate": "2012-04-03"}]), reference=False)
    assert_declined(message({**organization, "gender": "female"}), reference=False)
    assert_declined(message({**organization, "resourceType": "Patient"}), reference=False)
    assert_declined(message(observation(status="final", active=True)), reference=False)
    for resource_type in ("Unknown", "BundleEntry", "Element", "HumanName", ""):
        assert_declined(message({**organization, "resourceType": resource_type}), reference=False)
        assert_declined(patient(contained=[{**organization, "resourceType": resource_type}]), reference=False)
    for abstract in ("Resource", "DomainResource"):  # the reference takes them; too unusual to be sure
        assert_declined(message({"resourceType": abstract, "id": "r1"}))
    no_type = {key: value for key, value in organization.items() if key != "resourceType"}
    assert_declined(message(no_type))
    assert_declined(message("Organization/org"))


@pytest.mark.parametrize("resource", [
    {"resourceType": "Unknown"}, {"resourceType": "Resource", "id": "x"}, {"resourceType": "HumanName"},
    {"id": "x"}, {"resourceType": 5}, {"resourceType": None}, {}, [], "Patient", None])
def test_top_level_that_is_not_a_known_concrete_resource(resource):
    assert not certainly_valid(resource)


def all_model_classes() -> list[type]:
    """Every model class of the release in use, as fhir_core's type map names them."""
    model_class("Bundle")  # loads the release's types, which fill the map
    names = sorted({key.split(".")[-1].removesuffix("Type") for key, path in FHIR_TYPES_MAPS.items()
                    if path.startswith(fhir_module.RELEASE_PACKAGE + ".")})
    return [model_class(name) for name in names]


def test_every_type_compiles_from_the_library():
    """A table for every type the package has; the only fields without a rule are uuid ones (declined)."""
    without_rule = set()
    classes = all_model_classes()
    assert len(classes) > 600
    for cls in classes:
        table = structure._model_of(cls)
        structure._make_ready(table)
        assert table.fields is not None, cls
        for key, info in cls.model_fields.items():
            if (info.alias or key) not in table.fields:
                without_rule.add(repr(info.annotation))
    assert without_rule == {"typing.Optional[typing.Annotated[uuid.UUID, UuidVersion(uuid_version=4)]]"}


def test_a_class_with_its_own_validator_is_declined():
    class GuardedPatient(model_class("Patient")):
        @field_validator("gender")
        @classmethod
        def no_unknown(cls, value):
            if value == "unknown":
                raise ValueError("fictional local rule")
            return value

    table = structure._model_of(GuardedPatient)
    structure._make_ready(table)
    assert table.fields is None
    assert structure._valid(structure._model_of(model_class("Patient")), patient(gender="unknown"))
    assert not structure._valid(table, patient(gender="unknown"))


def test_tables_are_built_once_under_concurrency(corpus, monkeypatch):
    monkeypatch.setattr(structure, "_MODELS", {})
    monkeypatch.setattr(structure, "_RESOURCES", {})
    compiled, compile_table = [], structure._compile

    def counting(table):
        compiled.append(table.cls)
        compile_table(table)

    monkeypatch.setattr(structure, "_compile", counting)
    results, barrier = [], threading.Barrier(8)

    def work():
        barrier.wait()
        results.append(all(certainly_valid(bundle) for _, bundle in corpus))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 8
    assert len(compiled) == len(set(compiled)) > 20
    assert all(table.fields is not None for table in structure._MODELS.values() if table.ready)


# The primitives against pydantic itself ---------------------------------------------------------

def _primitive_annotations() -> list:
    """Every distinct primitive annotation the package's models use."""
    found = {}
    for cls in all_model_classes():
        for info in cls.model_fields.values():
            annotation = structure._strip_none(info.annotation)
            if typing.get_origin(annotation) is list:
                annotation = structure._strip_none(typing.get_args(annotation)[0])
            if annotation is bool or typing.get_origin(annotation) is typing.Annotated:
                found[repr(annotation)] = annotation
    return [found[key] for key in sorted(found)]


PRIMITIVE_ANNOTATIONS = _primitive_annotations()

def _stamp(moment: dt.datetime, digits: int, zone: str) -> str:
    """``moment`` as FHIR JSON text: seconds, ``digits`` of fraction (0 for none), then ``zone``."""
    fraction = f"{moment.microsecond:06d}{moment.microsecond:06d}"[:digits]
    return moment.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0") + (f".{fraction}" if digits else "") + zone


zones = st.sampled_from(["Z", "+00:00", "-00:00", "+01:00", "-05:30", "+13:59", "+14:00", "-14:00", "+14:01", ""])
candidate_values = st.one_of(
    st.text(max_size=12),
    st.text(alphabet="0123456789-:.TZ+ ", max_size=32),
    st.builds(_stamp, st.datetimes(), st.integers(0, 12), zones),
    st.builds(lambda day, cut: day.isoformat()[:cut], st.dates(), st.sampled_from([4, 7, 10, 8, 9])),
    st.builds(lambda time, cut: time.isoformat()[:cut], st.times(), st.sampled_from([5, 8, 10, 15, 20])),
    st.from_regex(r"[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,12})?)?"
                  r"(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?", fullmatch=True),
    st.from_regex(r"[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9+/=]{0,12}", fullmatch=True),
    st.sampled_from(["urn:oid:1.2.3", "urn:oid:3.1", "a b", " a", "a\tb", "a\x1cb", "\u2028", "true", "1e5",
                     "2016-12-31T23:59:60Z", "23:59:60", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]),
    st.integers(min_value=-(2 ** 40), max_value=2 ** 40), st.floats(allow_nan=True), st.booleans(), st.none(),
)


@pytest.mark.parametrize("annotation", PRIMITIVE_ANNOTATIONS, ids=[repr(a)[:60] for a in PRIMITIVE_ANNOTATIONS])
@settings(max_examples=300, deadline=None)
@given(value=candidate_values)
def test_primitive_rule_implies_pydantic_accepts(annotation, value):
    classified = structure._classify(annotation)
    if classified is None:
        return  # declined type (uuid): nothing to agree with
    check, _ = classified
    if check(value):
        TypeAdapter(annotation).validate_python(value)


def test_python_and_rust_whitespace_differ_only_where_strings_are_refused():
    """Patterns run with Python's ``re`` here and Rust's regex in pydantic; their ``\\s`` must agree on
    every character a string may hold (they differ on U+001C..U+001F, which no string may hold)."""
    rust = TypeAdapter(typing.Annotated[str, StringConstraints(pattern=r"^\s$")])
    differ = []
    for code in range(0x10000):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        try:
            rust.validate_python(char)
            rust_space = True
        except ValueError:
            rust_space = False
        if rust_space != bool(re.fullmatch(r"\s", char)):
            differ.append(char)
    assert differ == ["\x1c", "\x1d", "\x1e", "\x1f"]
    assert all(structure._UNSAFE_CHARS.search(char) for char in differ)


# check_resource -------------------------------------------------------------------------------

def test_check_resource_returns_for_a_valid_bundle_without_the_reference(corpus, monkeypatch):
    def reference(resource):
        raise AssertionError("the reference ran on a certainly valid Bundle")

    monkeypatch.setattr(fhir_module, "validate_resource", reference)
    for _, bundle in corpus[:5]:
        assert check_resource(bundle) is None


def test_check_resource_raises_the_reference_errors():
    bundle = message(patient(birthDate="2023-02-29", gender=5), observation(status=None))
    with pytest.raises(FhirInvalid) as reference:
        validate_resource(bundle)
    with pytest.raises(FhirInvalid) as checked:
        check_resource(bundle)
    assert checked.value.errors == reference.value.errors
    paths = [path for path, _ in checked.value.errors]
    assert "Bundle.entry[1].resource.birthDate" in paths and "Bundle.entry[1].resource.gender" in paths
    assert str(checked.value) == str(reference.value)


def test_check_resource_accepts_what_only_the_reference_accepts():
    bundle = message(patient(gender="Male"))  # out of enum_values: declined, but the reference accepts
    assert not certainly_valid(bundle)
    assert check_resource(bundle) is None


def test_check_resource_keeps_the_reference_exceptions_for_a_missing_resource_type():
    with pytest.raises(KeyError):
        validate_resource({"id": "x"})
    with pytest.raises(KeyError):
        check_resource({"id": "x"})
    with pytest.raises(ValueError):
        check_resource({"resourceType": "Unknown"})


@pytest.mark.parametrize("annotation", PRIMITIVE_ANNOTATIONS, ids=[repr(a)[:60] for a in PRIMITIVE_ANNOTATIONS])
def test_primitive_candidates_reach_both_outcomes(annotation):
    """The differential test above is honest only if its values pass and fail every rule."""
    classified = structure._classify(annotation)
    if classified is None:
        return
    check, _ = classified
    quiet = settings(database=None, max_examples=5000, suppress_health_check=list(HealthCheck))
    assert check(find(candidate_values, check, settings=quiet))
    assert not check(find(candidate_values, lambda value: not check(value), settings=quiet))


def test_remembered_strings_do_not_leak_across_types_or_json_types():
    assert_fast(patient(name=[{"family": "1", "text": "2019-06-10"}]))
    assert_declined(patient(name=[{"family": 1}]), reference=False)  # "1" passed as a string; 1 is no string
    assert_declined(message(timestamp="2019-06-10"), reference=False)  # a string, a date, but no instant
    assert_fast(patient(name=[{"family": "1", "text": "2019-06-10"}]))


def test_a_wrong_json_type_that_crashes_the_library_is_invalid_not_an_exception():
    # fhir.resources raises AttributeError for a url that is a number; the gateway reports it as invalid.
    from gateway.model import FhirInvalid, check_resource

    resource = {"resourceType": "DocumentReference", "status": "current", "content": [{"attachment": {"url": 0}}]}
    with pytest.raises(FhirInvalid) as caught:
        check_resource(resource)
    assert "wrong JSON type" in str(caught.value)


def test_a_wrong_json_type_is_an_error_issue_of_the_standard_check():
    import datetime as dt

    from gateway.validation import validate_bundle

    bundle = {"resourceType": "Bundle", "type": "message", "entry": [
        {"fullUrl": "urn:uuid:0f0b6a55-5b7e-4d38-9d2e-000000000001",
         "resource": {"resourceType": "DocumentReference", "status": "current",
                      "content": [{"attachment": {"url": 0}}]}}]}
    outcome = validate_bundle(bundle, now=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    errors = [i for i in outcome["issue"] if i["severity"] == "error" and "wrong JSON type" in i["details"]["text"]]
    assert errors
