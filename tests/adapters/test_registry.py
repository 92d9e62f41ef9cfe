"""The adapter registry: built-ins and plug-ins through the ``gateway.adapters`` entry points."""

from __future__ import annotations

import json
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from gateway.adapters import ENTRY_POINT_GROUP, all_adapters, discover, get_adapter
from gateway.adapters.errors import AdapterConflict
from gateway.adapters.goldens import check_rules
from gateway.adapters.mapping import Mapping
from gateway.cli import main

BUILT_IN = {
    "concernhub-json": "School safeguarding record system, JSON concern export (2.x; 1.x accepted)",
    "ppn-xml": "Police Public Protection Notice (PPN) XML v1, one notice or a NoticeBatch",
    "schoolsafe-csv": "School safeguarding record system, CSV incident export (one row per pupil per incident)",
}

PLUGIN_SOURCE = '''
"""A vendor's Python adapter for a tab-separated export: ID, family name, given name, date of birth."""

from gateway.adapters.base import BadRecord, RawRecord


class TsvAdapter:
    format_id = "vendor-tsv"
    description = "Vendor TSV export (plug-in)"
    version = "0.1.0"

    def records(self, stream, filename):
        for n, line in enumerate(stream, start=1):
            cells = line.decode("utf-8").rstrip("\\r\\n").split("\\t")
            if len(cells) != 4:
                yield BadRecord(f"line {n}", f"{len(cells)} cells, not 4", "Export again.", line=n)
                continue
            yield RawRecord(f"line {n}", cells, {}, n)

    def translate(self, record, *, filename, now):
        record_id, family, given, birth_date = record.data
        return [{"format": self.format_id, "mapping_version": self.version, "kind": "referral",
                 "source": {"file": filename, "location": record.location, "line": record.line,
                            "record_id": record_id},
                 "sender": {"kind": "school", "code": "999101", "name": "Plug-in Primary School"},
                 "referrer": {"name": "Sam Tully", "role": "Designated Safeguarding Lead"},
                 "child": {"given": [given], "family": family, "birth_date": birth_date, "gender": "female",
                           "address": {"lines": ["1 Example Road"], "town": "Andover", "postcode": "SP10 1AA"}},
                 "concern": {"local_id": record_id, "summary": "Came in hungry.",
                             "narrative": "Sent by a plug-in adapter: came in hungry, said there was no food.",
                             "occurred": "2019-03-14T09:10:00+00:00", "recorded": "2019-03-14T11:42:00+00:00",
                             "categories": [{"label": "Neglect", "mapped": True, "code": "neglect",
                                             "display": "Neglect"}],
                             "child_voice": "There is no food.", "child_spoken_to": True,
                             "parents_informed": "yes"}}]


def make():
    return TsvAdapter()
'''


def install(root: Path, dist: str, module: str, entry_points: dict[str, str], monkeypatch) -> None:
    """Install a real distribution (a package and its .dist-info) into ``root`` and put it on sys.path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(PLUGIN_SOURCE, encoding="utf-8")
    info = root / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n", encoding="utf-8")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}", encoding="utf-8")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, module, raising=False)


@pytest.fixture
def plugin(tmp_path, monkeypatch) -> Path:
    install(tmp_path / "site", "vendor-tsv-adapter", "vendor_tsv_adapter",
            {"vendor-tsv": "vendor_tsv_adapter:make"}, monkeypatch)
    yield tmp_path
    sys.modules.pop("vendor_tsv_adapter", None)


def test_built_ins_are_found_through_entry_points():
    found = discover()
    assert set(BUILT_IN) <= set(found)
    assert found["schoolsafe-csv"].value == "gateway.adapters.builtin:schoolsafe_csv"
    adapters = {a.format_id: a for a in all_adapters()}
    for format_id, description in BUILT_IN.items():
        assert isinstance(adapters[format_id], Mapping)
        assert adapters[format_id].description == description
        assert adapters[format_id].version == "1.0.0"


def test_formats_lists_id_tab_description(runner):
    result = runner.invoke(main, ["formats"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"{k}\t{v}" for k, v in sorted(BUILT_IN.items())]


def test_plugin_is_listed_and_used(plugin, runner):
    result = runner.invoke(main, ["formats"])
    assert result.exit_code == 0, result.output
    assert "vendor-tsv\tVendor TSV export (plug-in)" in result.output.splitlines()
    assert len(result.output.splitlines()) == len(BUILT_IN) + 1

    source = plugin / "export.tsv"
    source.write_text("T-1\tTESTER\tAda\t2013-05-14\nbroken line\n", encoding="utf-8")
    out, errors, summary = plugin / "out.ndjson", plugin / "errors.ndjson", plugin / "summary.json"
    result = runner.invoke(main, ["translate", "--format", "vendor-tsv", str(source), "-o", str(out),
                                  "--errors", str(errors), "--summary", str(summary)])
    assert result.exit_code == 0, result.output
    counts = json.loads(summary.read_text())
    assert {k: counts[k] for k in ("records", "translated", "skipped", "rejected", "messages")} == {
        "records": 2, "translated": 1, "skipped": 0, "rejected": 1, "messages": 1}
    (bundle,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert check_rules(bundle) == []
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    assert patient["name"][0]["text"] == "Ada TESTER"
    (error,) = [json.loads(line) for line in errors.read_text().splitlines()]
    assert (error["location"], error["reason"]) == ("line 2", "1 cells, not 4")


def test_get_adapter_from_entry_point_objects(plugin):
    eps = [EntryPoint("vendor-tsv", "vendor_tsv_adapter:make", ENTRY_POINT_GROUP)]
    adapter = get_adapter("vendor-tsv", eps)
    assert adapter.format_id == "vendor-tsv" and adapter.version == "0.1.0"
    assert [a.format_id for a in all_adapters(eps)] == ["vendor-tsv"]


def test_two_adapters_claiming_one_name_are_refused(tmp_path, monkeypatch, runner):
    install(tmp_path / "site", "rogue-csv", "rogue_csv_adapter", {"schoolsafe-csv": "rogue_csv_adapter:make"},
            monkeypatch)
    with pytest.raises(AdapterConflict) as caught:
        discover()
    message = str(caught.value)
    assert "two adapters claim the format 'schoolsafe-csv'" in message
    assert "gateway.adapters.builtin:schoolsafe_csv" in message and "rogue_csv_adapter:make" in message
    assert "give the vendor's adapter its own format name" in message

    for args in (["formats"], ["translate", "--format", "ppn-xml", str(Path(__file__))]):
        result = runner.invoke(main, args)
        assert result.exit_code == 1
        assert "two adapters claim the format 'schoolsafe-csv'" in result.output
        assert "Traceback" not in result.output


def test_conflict_with_entry_point_objects():
    eps = [EntryPoint("x-fmt", "a_module:make", ENTRY_POINT_GROUP),
           EntryPoint("x-fmt", "b_module:make", ENTRY_POINT_GROUP)]
    with pytest.raises(AdapterConflict, match="'x-fmt': a_module:make and b_module:make"):
        get_adapter("x-fmt", eps)


def test_the_same_entry_point_seen_twice_is_not_a_conflict():
    ep = EntryPoint("schoolsafe-csv", "gateway.adapters.builtin:schoolsafe_csv", ENTRY_POINT_GROUP)
    assert get_adapter("schoolsafe-csv", [ep, ep]).format_id == "schoolsafe-csv"


def test_unknown_format_names_the_known_ones():
    with pytest.raises(KeyError) as caught:
        get_adapter("nope")
    assert caught.value.args[0] == ("unknown format 'nope'; known formats: concernhub-json, ppn-xml, "
                                    "schoolsafe-csv")


def test_a_plugin_that_is_not_an_adapter_is_refused():
    eps = [EntryPoint("not-an-adapter", "string:ascii_letters", ENTRY_POINT_GROUP)]
    with pytest.raises(TypeError, match="does not provide format_id, description, version"):
        get_adapter("not-an-adapter", eps)


def test_an_entry_point_loading_another_format_is_refused(plugin):
    eps = [EntryPoint("csv-lookalike", "vendor_tsv_adapter:make", ENTRY_POINT_GROUP)]
    with pytest.raises(AdapterConflict, match="'csv-lookalike' loads an adapter for 'vendor-tsv'"):
        get_adapter("csv-lookalike", eps)


def test_plugin_source_is_valid_python():
    compile(textwrap.dedent(PLUGIN_SOURCE), "plugin", "exec")
