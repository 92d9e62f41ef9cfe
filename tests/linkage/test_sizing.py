"""The live thresholds follow the people the index holds (both engines)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import pytest
from sqlalchemy import func, select

from gateway.linkage import sizing
from gateway.linkage.index import PersonIndex
from gateway.linkage.matching import MatchModel, normalise
from gateway.linkage.models import PersonRow

NOW = dt.datetime(2019, 6, 7, 9, 30, tzinfo=dt.timezone.utc)


def _add(store, model, given):
    record = normalise(given=given, family="Quayle", birth_date="2012-05-01", postcode="RG28 7QQ")
    with store.transaction() as unit:
        PersonIndex(unit.session.connection(), model).add(
            {"resource": "import", "role": "child", "source": "test", **dataclasses.asdict(record)}, record,
            kind="child", now=NOW)


def test_the_index_counts_its_people_and_keeps_the_count(store, monkeypatch):
    model = MatchModel.load()
    for given in ("Ada", "Bea", "Cal"):
        _add(store, model, given)       # each look-up read the count (0 people at the first) and kept it
    sizing.forget(store.engine)
    with store.engine.connect() as connection:
        assert sizing.people_in_index(connection) == 3
    _add(store, model, "Dov")
    with store.engine.connect() as connection:
        assert sizing.people_in_index(connection) == 3            # kept for REFRESH_SECONDS
        monkeypatch.setattr(sizing, "REFRESH_SECONDS", 0.0)
        assert sizing.people_in_index(connection) == 4
    # Two found to be one: one person fewer (the other's row stays, leading to the one kept).
    people = PersonRow.__table__
    with store.transaction() as unit:
        first, second = unit.session.connection().execute(select(people.c.id).order_by(people.c.id).limit(2)).scalars()
        PersonIndex(unit.session.connection(), model)._merge(first, second, NOW)
    with store.engine.connect() as connection:
        assert sizing.people_in_index(connection) == 3
        assert connection.execute(select(func.count()).select_from(people)).scalar_one() == 4


def test_the_live_index_decides_with_the_thresholds_of_its_size(store):
    shipped = MatchModel.load()
    # The shipped thresholds as if they had been chosen among one person: four people raise them by 2.
    model = MatchModel(dict(shipped.data, thresholds=dict(shipped.data["thresholds"], reference_people=1)))
    for given in ("Ada", "Bea", "Cal", "Dov"):
        _add(store, model, given)
    sizing.forget(store.engine)
    with store.engine.connect() as connection:
        index = PersonIndex(connection, model)
        assert index.model.link_threshold == pytest.approx(shipped.link_threshold + math.log2(4))
        assert index.model.possible_threshold == pytest.approx(shipped.possible_threshold + math.log2(4) / 2)
        assert index.base_model is model
