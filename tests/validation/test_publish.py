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


@pytest.mark.parametrize("path", sorted(p for p in GENERATED if p.endswith(".json")))
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
        assert by_item[item.id]["expression"] == item.invariant


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
