"""People's decisions on the person index (confirm, reject, unlink) are audited in their transaction, both engines."""

from __future__ import annotations

import pytest

from gateway.audit.chain import stored_records
from gateway.linkage.index import PersonIndex, ReviewError
from tests.linkage.test_index import LA, NOW, _possible, model  # noqa: F401  (the index tests' set-up)


def _decisions(store) -> list:
    with store.engine.connect() as connection:
        return [r for r in stored_records(connection) if r.subtype == "link-confirmation"]


def test_a_confirmation_is_audited(store, model):  # noqa: F811
    _, lee, linked = _possible(store, model)
    with store.transaction() as unit:
        person = PersonIndex(unit.session.connection(), model).confirm(linked.match_id, by=f"{LA} (A. Worker)",
                                                                      reason="Same child", now=NOW)
    (record,) = _decisions(store)
    assert (record.action, record.agent, record.detail) == ("U", f"{LA} (A. Worker)", {"decision": "confirmed"})
    assert record.entities == [["match", str(linked.match_id)], ["record", str(lee)], ["person", person]]


def test_a_rejection_and_an_unlink_are_audited_and_a_refused_one_is_not(store, model):  # noqa: F811
    _, lee, linked = _possible(store, model)
    with store.transaction() as unit:
        index = PersonIndex(unit.session.connection(), model)
        with pytest.raises(ReviewError):
            index.reject(linked.match_id, by=LA, reason=" ", now=NOW)
        index.reject(linked.match_id, by=LA, reason="Twins", now=NOW)
        new = index.unlink(lee, by=LA, reason="Linked by mistake", now=NOW)
    rejected, unlinked = _decisions(store)
    assert rejected.detail == {"decision": "rejected"} and rejected.entities[:2] == [
        ["match", str(linked.match_id)], ["record", str(lee)]]
    assert unlinked.detail == {"decision": "unlinked"} and unlinked.entities[-1] == ["person", new]
