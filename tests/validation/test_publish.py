"""The generated documentation and FHIR artefacts are up to date and loadable."""

from __future__ import annotations

import json

import pytest

from gateway.config import REPO_DIR
from gateway.model import systems as S
from gateway.model import validate_resource
from gateway.model.terminology import CONCERN_CATEGORIES
from gateway.validation import extensions as X
from gateway.validation import load_standard
from gateway.validation import publish

GENERATED = publish.render(mappings_dir=REPO_DIR / "mappings")


def test_generated_doc_and_artefacts_are_up_to_date():
    stale = publish.outdated(REPO_DIR, GENERATED)
    assert not stale, (
        f"generated files are out of date: {', '.join(stale)}. Run `.venv/bin/{publish.COMMAND}` "
        "and commit docs/referral-standard.md and docs/fhir/")


def test_check_mode_reports_and_write_mode_fixes(tmp_path, capsys):
    (tmp_path / "mappings").symlink_to(REPO_DIR / "mappings")
    assert publish.main(["--check", "--root", str(tmp_path)]) == 1
    assert publish.COMMAND in capsys.readouterr().err
    assert publish.main(["--root", str(tmp_path)]) == 0
    assert publish.main(["--check", "--root", str(tmp_path)]) == 0
    stale = tmp_path / publish.FHIR_DIR / "StructureDefinition-gone.json"
    stale.write_text("{}")
    (tmp_path / publish.DOC).write_text("edited by hand\n")
    assert publish.outdated(tmp_path) == sorted([publish.DOC, f"{publish.FHIR_DIR}/StructureDefinition-gone.json"])
    publish.main(["--root", str(tmp_path)])
    assert not stale.exists()


@pytest.mark.parametrize("path", sorted(p for p in GENERATED if p.endswith(".json") and "/fhir/" in p))
def test_exported_resource_loads_as_fhir(path):
    validate_resource(json.loads(GENERATED[path]))


def test_every_mapping_conceptmap_is_exported():
    for source in (REPO_DIR / "mappings").glob("*/*.conceptmap.json"):
        cm = json.loads(source.read_text(encoding="utf-8"))
        assert json.loads(GENERATED[f"docs/fhir/ConceptMap-{cm['id']}.json"]) == cm


def test_concern_category_code_system_and_value_set():
    cs = json.loads(GENERATED["docs/fhir/CodeSystem-concern-category.json"])
    assert cs["url"] == S.CONCERN_CATEGORY
    assert [c["code"] for c in cs["concept"]] == list(CONCERN_CATEGORIES)
    vs = json.loads(GENERATED["docs/fhir/ValueSet-concern-category.json"])
    assert vs["compose"]["include"] == [{"system": S.CONCERN_CATEGORY}]
    for name in ("CodeSystem-concern-context.json", "CodeSystem-message-event.json"):
        assert f"docs/fhir/{name}" in GENERATED


def test_every_extension_has_a_structure_definition():
    for ext in X.EXTENSIONS:
        sd = json.loads(GENERATED[f"docs/fhir/StructureDefinition-{ext.name}.json"])
        assert sd["url"] == ext.url and sd["type"] == "Extension"


def test_message_profile_carries_every_item_as_a_constraint():
    standard = load_standard()
    sd = json.loads(GENERATED["docs/fhir/StructureDefinition-safeguarding-message.json"])
    # The builder labels each Bundle with this profile.
    assert sd["url"] == f"{S.BASE}/StructureDefinition/safeguarding-message"
    constraints = sd["differential"]["element"][0]["constraint"]
    by_item = {c["human"].split()[1].rstrip(":"): c for c in constraints}
    for item in standard.level("MUST") + standard.level("SHOULD"):
        assert by_item[item.id]["severity"] == ("error" if item.level == "MUST" else "warning")
        assert by_item[item.id]["expression"] == standard.constraint(item)
    # The snapshot carries the same constraints after the base ones.
    assert sd["snapshot"]["element"][0]["constraint"][-len(constraints):] == constraints


def test_item_code_system_covers_everything_an_issue_can_name():
    standard = load_standard()
    cs = json.loads(GENERATED["docs/fhir/CodeSystem-referral-standard-item.json"])
    codes = {c["code"] for c in cs["concept"]}
    assert codes == ({i.id for i in standard.items} | {r.id for r in standard.identifiers}
                     | {f.id for f in standard.flags} | {"fhir-base"})


def test_doc_has_a_row_per_item():
    doc = GENERATED[publish.DOC]
    for item in load_standard().items:
        row = next(line for line in doc.splitlines() if f"(`{item.id}`) | {item.level} |" in line)
        assert item.title in row
    assert "extension('requested-action')" in doc


def test_package_holds_every_resource_with_its_index():
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(GENERATED[publish.PACKAGE]), mode="r:gz") as tar:
        names = set(tar.getnames())
        index = json.load(tar.extractfile("package/.index.json"))
        manifest = json.load(tar.extractfile("package/package.json"))
    resources = {p.split("/")[-1] for p in GENERATED if p.startswith("docs/fhir/") and p.endswith(".json")}
    assert names == {f"package/{n}" for n in resources} | {"package/package.json", "package/.index.json"}
    assert {row["filename"] for row in index["files"]} == resources
    assert manifest["name"] == publish.PACKAGE_NAME and manifest["fhirVersions"] == ["4.0.1"]
    assert publish.package(load_standard(), publish.fhir_artefacts()) == GENERATED[publish.PACKAGE]


def test_message_definitions_for_every_event_and_the_capability_statement_names_only_those():
    from gateway.api.metadata import capability_statement
    from gateway.model.terminology import MESSAGE_EVENTS

    events = {v for k, v in vars(S).items() if k.startswith("EVENT_")}
    assert events <= set(MESSAGE_EVENTS), "describe each message event of gateway.model.systems in terminology"
    urls = {json.loads(text)["url"] for path, text in GENERATED.items()
            if path.startswith("docs/fhir/MessageDefinition-")}
    assert urls == {publish.message_definition_url(code) for code in events}
    named = {m["definition"] for m in capability_statement("2026-01-01")["messaging"][0]["supportedMessage"]}
    assert named <= urls


def test_every_profile_has_a_snapshot_and_no_element_r4_lacks():
    from gateway.validation.snapshots import base_definitions

    for path, text in GENERATED.items():
        if path.startswith("docs/fhir/StructureDefinition-"):
            sd = json.loads(text)
            ids = {e["id"] for e in sd["snapshot"]["element"]}
            assert {e["id"] for e in sd["differential"]["element"]} <= ids, path
    # R4's Bundle has no extension element; the message profile must not constrain one.
    bundle = json.loads(GENERATED["docs/fhir/StructureDefinition-safeguarding-message.json"])
    assert not [e for e in bundle["differential"]["element"] if e["path"].startswith("Bundle.extension")]
    assert "Bundle.extension" not in {e["id"] for e in base_definitions()["Bundle"]["snapshot"]["element"]}
    header = json.loads(GENERATED["docs/fhir/StructureDefinition-safeguarding-message-header.json"])
    assert "MessageHeader.event[x]:eventCoding" in {e["id"] for e in header["differential"]["element"]}


def test_every_coding_in_the_goldens_is_published():
    published = {}
    for path, text in GENERATED.items():
        if path.startswith("docs/fhir/CodeSystem-"):
            cs = json.loads(text)
            published[cs["url"]] = {c["code"] if cs["caseSensitive"] else c["code"].lower() for c in cs["concept"]}
    missing = set()

    def walk(node):
        if isinstance(node, dict):
            system, code = node.get("system"), node.get("code")
            if isinstance(system, str) and system.startswith(S.BASE + "/CodeSystem/") and isinstance(code, str):
                codes = published.get(system)
                if codes is None or (code not in codes and code.lower() not in codes):
                    missing.add((system, code))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for expected in (REPO_DIR / "mappings").glob("*/cases/*/expected.json"):
        walk(json.loads(expected.read_text(encoding="utf-8")))
    assert not missing, f"codes used by the goldens but not published: {sorted(missing)}"


def test_the_standard_package_command_checks_and_writes(tmp_path):
    from click.testing import CliRunner

    from gateway.validation.cli import standard_group

    (tmp_path / "mappings").symlink_to(REPO_DIR / "mappings")
    runner = CliRunner()
    stale = runner.invoke(standard_group, ["package", "--check", "--root", str(tmp_path)])
    assert stale.exit_code == 1 and "out of date: docs/fhir/package.tgz" in stale.output
    written = runner.invoke(standard_group, ["package", "--root", str(tmp_path)])
    assert written.exit_code == 0, written.output
    assert (tmp_path / publish.PACKAGE).read_bytes() == GENERATED[publish.PACKAGE]
    assert runner.invoke(standard_group, ["package", "--check", "--root", str(tmp_path)]).exit_code == 0
