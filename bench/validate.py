"""Benchmark: the referral standard's profile checks beside FHIR base validation.

Generates N referral Bundles (default 10,000) deterministically from
canonical records of varied completeness (school referrals, police
domestic-abuse and child-concern notices; fictional data only), then times,
on the same Bundles in the same run:

- ``model_validate`` alone (``gateway.model.validate_resource``: the FHIR R4 base model);
- the structural pre-check alone (``gateway.model.structure.certainly_valid``), which lets
  ``check_resource`` skip ``model_validate`` for a Bundle it is sure of, and its speed-up;
- the profile alone (``validate_bundle(..., base=False)``);
- the FHIRPath part of the profile alone: every applicability condition and every
  invariant the gateway evaluates (fhirpathpy, compiled once, on the resources of
  each rule's type), and the same invariants as published, on the whole Bundle;
- both (``validate_bundle(...)``, what ``gateway validate`` runs).

Issue 13's goal: validation with the invariants evaluated stays within 2x of
``validate_bundle`` before them. The bench measures that in the same run: it
takes the gateway and this bench as they were at ``--before`` (default
98a25f3, the last commit before the invariants were evaluated) out of git
into a temporary folder and runs that bench there, on the same count and seed.
``--before ''`` skips it.

The goal (issue 3): the national profile adds no more than half again to
FHIR validation's own cost, i.e. profile time / model_validate time <= 0.50.
The pre-check's target: well under 0.5 ms per Bundle, at least 8x faster than
``model_validate``, declining none of these (valid) Bundles.

    .venv/bin/python bench/validate.py [--count 10000] [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gateway.adapters.synth import fictional as F
from gateway.model import build_bundle, validate_resource
from gateway.model import systems as S
from gateway.model.structure import certainly_valid
from gateway.model.terminology import CONCERN_CATEGORIES
from gateway.validation import completeness, has_errors, load_standard, validate_bundle
from gateway.validation.checks import MessageView
from gateway.validation.rules import all_hold, any_holds, on_bundle

GOAL = 0.50
BEFORE_INVARIANTS = "98a25f3"  # the last commit before validate_bundle evaluated the FHIRPath invariants
INVARIANTS_GOAL = 2.0
PRECHECK_SPEEDUP_GOAL = 8.0
PRECHECK_BUDGET_US = 500
NOW = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


def _maybe(rng: random.Random, p: float, value):
    return value if rng.random() < p else None


def _person(rng: random.Random, completeness_p: float, relationship: tuple[str, str], **extra) -> dict:
    person = {"local_id": f"p{rng.randrange(10**6)}", "given": [rng.choice(F.ADULT_FIRST_NAMES)],
              "family": rng.choice(F.SURNAMES), "relationship": {"code": relationship[0], "display": relationship[1]},
              "parental_responsibility": _maybe(rng, completeness_p, relationship[0] in ("MTH", "FTH")),
              "lives_with_child": _maybe(rng, completeness_p, rng.random() < 0.8),
              "phone": _maybe(rng, completeness_p, F.phone(rng))}
    person.update(extra)
    return person


def referral_record(rng: random.Random, n: int) -> dict:
    """Return canonical record ``n``: a school or police referral whose completeness varies with the draw."""
    p = rng.choice((0.2, 0.5, 0.8, 0.95, 1.0))  # how complete this sender's records tend to be
    kind = rng.choices(("school", "police-da", "police-child"), weights=(50, 30, 20))[0]
    occurred = NOW - dt.timedelta(days=rng.randrange(1, 400), minutes=rng.randrange(24 * 60))
    delay = dt.timedelta(hours=rng.choice((1, 3, 20, 30, 24 * 21)))
    recorded = occurred + delay
    dob = F.date_of_birth(rng, occurred.date())
    urn = F.school_urn(rng)
    child = {"local_id": "c", "given": [rng.choice(F.CHILD_FIRST_NAMES)], "family": rng.choice(F.SURNAMES),
             "birth_date": dob.isoformat(), "gender": rng.choice(("female", "male")),
             "nhs_number": _maybe(rng, p, F.nhs_number(rng, valid=rng.random() > 0.03)),
             "upn": _maybe(rng, p, F.upn(rng, "850", dob.year + 5)),
             "address": {"lines": [f"{rng.randrange(1, 90)} {rng.choice(F.STREETS)}"], "town": rng.choice(F.TOWNS),
                         "postcode": F.postcode(rng) if rng.random() < 0.97 else "SP10 1A"}}
    people = [_person(rng, p, ("MTH", "mother")), _person(rng, p, ("FTH", "father"), alleged_harm=_maybe(rng, p, True))]
    categories = [{"code": code, "display": CONCERN_CATEGORIES[code][0], "label": code, "mapped": True}
                  for code in rng.sample(sorted(CONCERN_CATEGORIES), rng.randrange(1, 3))]
    if rng.random() < 0.05:
        categories.append({"label": "Sexting", "mapped": False})
    concern = {
        "local_id": str(n), "narrative": "Fictional narrative of what was seen and said." * rng.randrange(1, 6),
        "categories": categories, "occurred": _maybe(rng, max(p, 0.6), occurred.isoformat(timespec="seconds")),
        "recorded": recorded.isoformat(timespec="seconds"),
        "child_voice": _maybe(rng, p, "What the child said, in their own words."),
        "child_spoken_to": _maybe(rng, p, True), "parents_informed": _maybe(rng, p, rng.choice(("yes", "not-safe"))),
        "action_taken": _maybe(rng, p, "Spoke to the child; informed the DSL."),
        "immediate_risk": _maybe(rng, p, rng.random() < 0.2), "consent_to_share": _maybe(rng, p, "yes"),
    }
    record = {"format": "bench", "mapping_version": "1", "kind": "referral",
              "source": {"file": "bench", "location": f"#{n}", "record_id": str(n)},
              "child": child, "people": people, "concern": concern}
    if kind == "school":
        child["school"] = {"urn": urn}
        record["sender"] = {"kind": "school", "code": urn, "name": rng.choice(F.SCHOOL_NAMES), "la_number": "850"}
        record["referrer"] = {"name": f"{rng.choice(F.ADULT_FIRST_NAMES)} {rng.choice(F.SURNAMES)}",
                              "role": rng.choice(F.STAFF_ROLES), "email": _maybe(rng, p, "dsl@school.example")}
    else:
        force = rng.choice(("HAM", "DOR", "TVP", "MET"))
        record["sender"] = {"kind": "police", "code": force, "name": force}
        record["referrer"] = {"name": "A. Officer", "role": "PC", "phone": _maybe(rng, p, F.phone(rng)),
                              "identifier": {"system": S.COLLAR_NUMBER, "value": str(rng.randrange(1000, 9999))}}
        if rng.random() < p:
            child["school"] = {"urn": urn, "name": rng.choice(F.SCHOOL_NAMES)}
        concern.update(notice_type="DomesticAbuse" if kind == "police-da" else "ChildConcern",
                       notice_id=f"00000000-0000-4000-8000-{n:012d}", reference=f"{force}/2024/{n:06d}",
                       submitted=concern["recorded"], reported=occurred.isoformat(timespec="seconds"))
        if kind == "police-da" and rng.random() < max(p, 0.5):
            completed = rng.random() < p
            record["risk"] = [{"kind": "dash", "completed": completed,
                               "level": rng.choice(("standard", "medium", "high")) if completed else None,
                               "answers": {str(q): rng.choice(("Yes", "No", "NotKnown")) for q in range(1, 28)}
                               if completed else {}}]
        record["evidence"] = [{"type": rng.choice(("CCTV", "BodyWorn", "Statement")),
                               "secured": _maybe(rng, 0.9, rng.random() < p), "description": "Fictional item"}
                              for _ in range(rng.randrange(0, 3))]
    return record


def _time(label: str, fn, bundles: list[dict]) -> float:
    start, cpu = time.perf_counter(), time.process_time()
    for bundle in bundles:
        fn(bundle)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"  {label:<42} {len(bundles) / elapsed:>9.0f} Bundles/s  ({1e6 * elapsed / len(bundles):7.0f} us each, "
          f"CPU {1e6 * cpu / len(bundles):.0f} us)")
    return elapsed


# Run in the revision's tree: its own bench's Bundles and its own validate_bundle, CPU per Bundle.
_BEFORE_SNIPPET = """
import sys, random, time
sys.path.insert(0, sys.argv[1] + "/bench")
import validate as V
from gateway.model import build_bundle
from gateway.validation import validate_bundle
rng = random.Random(int(sys.argv[3]))
bundles = [build_bundle(V.referral_record(rng, n), now=V.NOW) for n in range(int(sys.argv[2]))]
for b in bundles[:200]:
    validate_bundle(b, now=V.NOW)
cpu = time.process_time()
for b in bundles:
    validate_bundle(b, now=V.NOW)
print(1e6 * (time.process_time() - cpu) / len(bundles))
"""


def before(revision: str, count: int, seed: int) -> float | None:
    """Return ``validate_bundle``'s CPU us per Bundle at git ``revision``, measured now, or ``None``.

    The gateway and the bench of ``revision`` come out of git into a temporary
    folder and run there on that bench's Bundles (the same count and seed).
    ``None``, with a line saying why, when git or that revision is not at hand.
    """
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as folder:
        archive = subprocess.run(["git", "-C", str(repo), "archive", revision, "gateway", "bench"],
                                 capture_output=True)
        if archive.returncode:
            print(f"  (no comparison with {revision}: {archive.stderr.decode().strip()})")
            return None
        subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
        env = {**os.environ, "PYTHONPATH": folder}
        done = subprocess.run([sys.executable, "-c", _BEFORE_SNIPPET, folder, str(count), str(seed)],
                              capture_output=True, text=True, env=env, cwd=folder)
    if done.returncode:
        print(f"  (no comparison with {revision}: {done.stderr.strip()[-300:]})")
        return None
    return float(done.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="how many Bundles (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same Bundles")
    parser.add_argument("--before", default=BEFORE_INVARIANTS, metavar="REV",
                        help=f"compare validate_bundle with this git revision's (default {BEFORE_INVARIANTS}; '' skips)")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    start = time.perf_counter()
    bundles = [build_bundle(referral_record(rng, n), now=NOW) for n in range(args.count)]
    entries = statistics.fmean(len(b["entry"]) for b in bundles)
    print(f"bench/validate.py: {len(bundles)} referral Bundles (seed {args.seed}, {entries:.1f} entries on average), "
          f"built in {time.perf_counter() - start:.1f} s; Python {platform.python_version()}")

    outcomes = [validate_bundle(b, now=NOW, base=False) for b in bundles[:200]]  # warm-up and a sanity look
    scores = [completeness(o) for o in outcomes]
    print(f"  sample of 200: completeness min {min(scores)}, median {statistics.median(scores):.0f}, "
          f"max {max(scores)}; {sum(map(has_errors, outcomes))} with errors")

    base = _time("model_validate alone (FHIR R4 base)", validate_resource, bundles)
    fast = _time("certainly_valid alone (structural pre-check)", certainly_valid, bundles)
    profile = _time("referral profile alone (base=False)", lambda b: validate_bundle(b, now=NOW, base=False), bundles)
    full = _time("validate_bundle (base + profile)", lambda b: validate_bundle(b, now=NOW), bundles)
    cpu = time.process_time()
    for bundle in bundles:
        validate_bundle(bundle, now=NOW)
    full_cpu_us = 1e6 * (time.process_time() - cpu) / len(bundles)

    standard = load_standard()
    fhirpath_items = [i for i in standard.items if i.decided_by_fhirpath]

    def invariants(bundle):
        view = MessageView(bundle, now=NOW)
        for name, applicability in standard.applicability.items():
            all_hold(applicability.when, bundle, view.by_type)
        for item in fhirpath_items:
            any_holds(item.invariant, bundle, view.by_type)

    published = [standard.constraint(i) for i in standard.items if i.invariant]
    evaluated = _time("FHIRPath alone, as the gateway evaluates it", invariants, bundles)
    whole = _time("published invariants on the whole Bundle", lambda b: [on_bundle(c, b) for c in published],
                  bundles[: max(1, len(bundles) // 10)])
    print(f"FHIRPath share of validate_bundle: {100 * evaluated / full:.0f}%; per rule on the resources "
          f"{1e6 * evaluated / len(bundles):.0f} us per Bundle, as published on the whole Bundle "
          f"{1e6 * whole / max(1, len(bundles) // 10):.0f} us per Bundle")
    before_us = before(args.before, args.count, args.seed) if args.before else None
    if before_us:
        ratio = full_cpu_us / before_us
        print(f"validate_bundle CPU per Bundle now / at {args.before} (before the invariants), both measured in "
              f"this run = {full_cpu_us:.0f} / {before_us:.0f} us = {ratio:.2f}x; goal <= {INVARIANTS_GOAL:.0f}x: "
              f"{'meets' if ratio <= INVARIANTS_GOAL else 'MISSES'} the goal")

    ratio = profile / base
    verdict = "meets" if ratio <= GOAL else "MISSES"
    print(f"profile / model_validate = {ratio:.2f} (the profile adds {100 * ratio:.0f}% to FHIR validation's cost); "
          f"goal <= {GOAL:.2f}: {verdict} the goal")
    declined = sum(not certainly_valid(b) for b in bundles)
    speedup = base / fast
    each_us = 1e6 * fast / len(bundles)
    met = speedup >= PRECHECK_SPEEDUP_GOAL and each_us < PRECHECK_BUDGET_US and not declined
    print(f"certainly_valid / model_validate = {fast / base:.3f} ({speedup:.1f}x faster, {each_us:.0f} us per Bundle); "
          f"declined {declined} of {len(bundles)} valid Bundles; goal >= {PRECHECK_SPEEDUP_GOAL:.0f}x, "
          f"< {PRECHECK_BUDGET_US} us, none declined: {'meets' if met else 'MISSES'} the goal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
