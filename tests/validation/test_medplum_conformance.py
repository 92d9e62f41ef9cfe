"""The published FHIR package, loaded into an independent validator (Medplum's), agrees with `gateway validate`.

tests/validation/medplum_validate.mjs loads docs/fhir/package.tgz into
@medplum/core (installed by `npm ci`, which `make test` runs) and validates
the golden outputs (also signed and counter-signed), each format's synthetic
data translated and the standard's cases against the profiles. No message
may give an error other than the invariants of the MUST items the gateway
reports, and the warning invariants that fail must be those of the SHOULD
items the gateway reports. The test fails, not skips, without node or the
npm packages.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.config import REPO_DIR
from gateway.validation import gap_items, validate_bundle
from gateway.validation.publish import PACKAGE, constraint_keys

from .referral_builders import NOW
from .standard_cases import STANDARD, golden_messages, standard_cases, synth_messages

SCRIPT = REPO_DIR / "tests" / "validation" / "medplum_validate.mjs"


def _countersigned(deployment) -> list[tuple[str, dict]]:
    """Golden messages signed by their school and counter-signed (the sender's signature in sender-signature)."""
    from gateway.signing.signatures import Signer, countersign_message, sign_message

    school = Signer.from_files(Path(f"{deployment.school}.crt"), Path(f"{deployment.school}.key"))
    other = Signer.from_files(Path(f"{deployment.police}.crt"), Path(f"{deployment.police}.key"))
    now = dt.datetime.now(dt.timezone.utc)
    out = []
    for name, bundle in golden_messages():
        if name.startswith("schoolsafe-csv/sample/"):
            signed = countersign_message(sign_message(bundle, school, now=now), other, now=now)
            out.append((f"countersigned {name}", signed))
    return out


@pytest.fixture(scope="module")
def medplum(tmp_path_factory, deployment):
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the conformance test needs node 20+ and `npm ci` (make test runs it)")
    if not (REPO_DIR / "node_modules" / "@medplum" / "core").is_dir():
        pytest.fail("@medplum/core is not installed: run `npm ci` in the repository (make test does)")
    cases = (list(standard_cases()) + list(golden_messages()) + list(synth_messages(count=100))
             + _countersigned(deployment))
    path = tmp_path_factory.mktemp("medplum") / "bundles.json"
    path.write_text(json.dumps([b for _, b in cases]), encoding="utf-8")
    done = subprocess.run([node, str(SCRIPT), str(REPO_DIR / PACKAGE), str(path)], capture_output=True, text=True,
                          cwd=REPO_DIR, timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == len(cases)
    return [(name, bundle, result) for (name, bundle), result in zip(cases, results)]


def test_medplum_agrees_with_the_gateway_on_every_message(medplum):
    keys = constraint_keys(STANDARD)
    disagreements = []
    for name, bundle, result in medplum:
        items = set(gap_items(validate_bundle(bundle, now=NOW, base=False)))
        must = {keys[i.id] for i in STANDARD.level("MUST") if i.id in items}
        should = {keys[i.id] for i in STANDARD.level("SHOULD") if i.id in items}
        other_errors = [e for e in result["errors"] if e["key"] not in must]
        if other_errors or {e["key"] for e in result["errors"]} != must or set(result["warnings"]) != should:
            disagreements.append(f"{name}: Medplum errors {result['errors']}, warnings {result['warnings']}; "
                                 f"the gateway: MUST {sorted(must)}, SHOULD {sorted(should)}")
    assert not disagreements, "\n".join(disagreements)


def test_goldens_have_no_error_and_some_warnings(medplum):
    goldens = [(name, result) for name, _, result in medplum if "/" in name and "/synth/" not in name]
    assert goldens and all(not r["errors"] for _, r in goldens)
    assert any(r["warnings"] for _, r in goldens)


def test_countersigned_messages_carry_the_sender_signature_as_published(medplum):
    from gateway.model.systems import EXT_SENDER_SIGNATURE

    countersigned = [(bundle, result) for name, bundle, result in medplum if name.startswith("countersigned")]
    assert countersigned
    for bundle, result in countersigned:
        assert bundle["signature"]["extension"][0]["url"] == EXT_SENDER_SIGNATURE
        assert not result["errors"]
