"""``gateway demo``: replay the fictional Family A scenario (docs/scenario-family-a.md).

At this step the demo translates the scenario's inputs (bundled in
``gateway/demo/family_a/``) into FHIR message Bundles and prints, input by
input, what it made, what it skipped and what it flagged. ``--check`` exits
non-zero when an expected outcome does not hold.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import click

from gateway.adapters import get_adapter
from gateway.adapters.cli import _default_validator
from gateway.adapters.translate import translate_stream
from gateway.model import systems as S

DATA = Path(__file__).parent / "family_a"

# (format, file, who sends it)
INPUTS = (
    ("ppn-xml", "dorset-police-ppn.xml", "Dorset Police (DOR)"),
    ("schoolsafe-csv", "riverside-infant-school.csv", "Riverside Infant School (URN 999101)"),
)


def _resources(bundle: dict, rtype: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def describe(bundle: dict) -> str:
    """Return a short human account of one message Bundle."""
    header = _resources(bundle, "MessageHeader")[0]
    patient = _resources(bundle, "Patient")[0]
    request = _resources(bundle, "ServiceRequest")[0]
    name = (patient.get("name") or [{}])[0].get("text", "(no name)")
    cats = [c.get("coding", [{}])[0].get("code") or c.get("text") for c in request.get("category", [])]
    occurred = next((e.get("valueDateTime") or e.get("valueDate") for e in request.get("extension", [])
                     if e["url"] == S.EXT_OCCURRED), "?")
    warnings = [i for o in _resources(bundle, "OperationOutcome") for i in o.get("issue", [])
                if i.get("severity") == "warning"]
    lines = [f"  {header['eventCoding']['code']} about {name} (born {patient.get('birthDate', '?')}): "
             f"{', '.join(c for c in cats if c)}; happened {occurred}, recorded {request.get('authoredOn', '?')}"]
    for issue in warnings:
        lines.append(f"      warning: {issue.get('details', {}).get('text') or issue.get('diagnostics')}")
    return "\n".join(lines)


def run_demo(now: dt.datetime | None = None, echo=click.echo) -> dict:
    """Translate the scenario's inputs; return ``{file: (summary, bundles)}``."""
    now = now or dt.datetime.now(dt.timezone.utc)
    validate = _default_validator()
    results = {}
    for fmt, name, sender in INPUTS:
        out, errors = io.StringIO(), io.StringIO()
        with open(DATA / name, "rb") as stream:
            summary = translate_stream(get_adapter(fmt), stream, name, out, errors, now=now,
                                       validator=lambda b: validate(b, now))
        bundles = [json.loads(line) for line in out.getvalue().splitlines()]
        echo(f"\n{sender}: {name} ({fmt})")
        echo("  " + summary.text().replace("\n", "\n  "))
        for bundle in bundles:
            echo(describe(bundle))
        for line in errors.getvalue().splitlines():
            entry = json.loads(line)
            echo(f"  {entry['outcome']}: {entry['location']}: {entry['reason']}")
        results[name] = (summary, bundles)
    return results


def check(results: dict) -> list[str]:
    """Return the scenario expectations (so far) that do not hold."""
    failures = []
    ppn_summary, ppns = results["dorset-police-ppn.xml"]
    if len(ppns) != 2:
        failures.append(f"expected 2 PPN referrals (one per child), got {len(ppns)}")
    if len({b["id"] for b in ppns}) != len(ppns):
        failures.append("the two PPNs sharing a reference were treated as one message")
    school_summary, school = results["riverside-infant-school.csv"]
    if len(school) != 1 or school_summary.skipped != 2:
        failures.append(f"expected 1 school referral and 2 non-referrals skipped, got {len(school)} and "
                        f"{school_summary.skipped}")
    for summary, _ in results.values():
        if not summary.balanced:
            failures.append(f"{summary.file}: counts do not add up")
    return failures


@click.command("demo")
@click.option("--check", "check_only", is_flag=True, help="Exit non-zero if an expected outcome does not hold.")
def demo_command(check_only: bool) -> None:
    """Replay the Family A scenario through the gateway and show what each agency would get."""
    results = run_demo()
    failures = check(results)
    click.echo("")
    if failures:
        for failure in failures:
            click.echo(f"NOT AS EXPECTED: {failure}", err=True)
        if check_only:
            raise SystemExit(1)
    else:
        click.echo("Family A: every expected outcome holds.")
