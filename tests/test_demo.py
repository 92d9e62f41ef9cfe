"""`gateway demo --check` replays Family A through real processes and fails when an outcome does not hold."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

from gateway.demo import BCP, DORSET, ENCOMPASS_DUE, HAMPSHIRE, SCHOOL, Arrival, check
from gateway.model import systems as S


def test_demo_check_passes_end_to_end(tmp_path):
    """The README's main command: PKI, directory, gateway over mTLS, worker, LA endpoints, the whole story."""
    result = subprocess.run([sys.executable, "-m", "gateway.cli", "demo", "--check", "--workdir", str(tmp_path / "d")],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Family A: every expected outcome holds." in out
    assert "Bournemouth, Christchurch and Poole children's services, DfE LA 839: 0 messages" in out
    assert out.count("due Mon 01 Oct 2018 08:30") >= 4  # the school's mailbox and the report, for each child
    assert "Submitted 21 days" in out and "NOT VERIFIED" not in out


def _arrival(**changes) -> Arrival:
    base = Arrival(destination=HAMPSHIRE, mode="push", state="acknowledged", event=S.EVENT_REFERRAL, sender=DORSET,
                   message_id="urn:uuid:1", due=None, payload={}, signature="verified: signed by gateway",
                   flags=["Submitted 21 days 13 hours after", "The DASH risk assessment was not completed",
                          "Evidence not secured: CCTV"])
    return dataclasses.replace(base, **changes)


def _story() -> list[Arrival]:
    return [_arrival(), _arrival(message_id="urn:uuid:2"),
            _arrival(destination=SCHOOL, mode="mailbox", event=S.EVENT_ENCOMPASS, message_id="urn:uuid:3",
                     due=ENCOMPASS_DUE, flags=[]),
            _arrival(destination=SCHOOL, mode="mailbox", event=S.EVENT_ENCOMPASS, message_id="urn:uuid:4",
                     due=ENCOMPASS_DUE, flags=[]),
            _arrival(sender=SCHOOL, message_id="urn:uuid:5", flags=[]),
            _arrival(destination=SCHOOL, mode="mailbox", event=S.EVENT_OUTCOME, sender=HAMPSHIRE,
                     message_id="urn:uuid:6", flags=[])]


def _receipts(arrivals):
    return {HAMPSHIRE: {a.message_id: 1 for a in arrivals if a.destination == HAMPSHIRE}}


def test_check_holds_for_the_expected_story():
    story = _story()
    assert check(story, _receipts(story)) == []


def test_check_catches_each_kind_of_failure():
    story = _story()
    assert any("2 PPN referrals" in f for f in check(story[1:], _receipts(story[1:])))
    moved = [dataclasses.replace(story[0], destination=BCP)] + story[1:]
    assert any("BCP" in f for f in check(moved, _receipts(moved)))
    same = [story[0], dataclasses.replace(story[1], message_id="urn:uuid:1")] + story[2:]
    assert any("treated as one message" in f for f in check(same, _receipts(same)))
    late = story[:2] + [dataclasses.replace(story[2], due=None)] + story[3:]
    assert any("due None" in f for f in check(late, _receipts(late)))
    unflagged = [dataclasses.replace(story[0], flags=[])] + story[1:]
    assert any("late submission" in f for f in check(unflagged, _receipts(unflagged)))
    forged = story[:-1] + [dataclasses.replace(story[-1], signature="NOT VERIFIED: payload changed")]
    assert any("do not verify" in f for f in check(forged, _receipts(forged)))
    assert any("applied" in f for f in check(story, {HAMPSHIRE: {}}))
