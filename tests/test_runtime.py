"""gateway.runtime.settle: the start-up heap leaves garbage collection."""

from __future__ import annotations

import gc
import logging

import pytest

from gateway.runtime import settle


@pytest.fixture
def unfrozen():
    """Give the test process its heap back afterwards (settle is meant for a server's own process)."""
    yield
    gc.unfreeze()


def test_settle_runs_the_warm_up_then_freezes_what_is_alive(unfrozen):
    made = []
    alive_before = [object()]
    frozen = settle(lambda: made.append(["loaded by the warm-up"]))
    assert made == [["loaded by the warm-up"]]
    assert frozen > 1000 and gc.get_freeze_count() > 1000
    tracked = {id(o) for o in gc.get_objects()}  # the frozen generation is left out
    assert id(alive_before) not in tracked and id(made[0]) not in tracked
    after = [object()]
    assert id(after) in {id(o) for o in gc.get_objects()}  # what comes later is collected as before


def test_a_failing_warm_up_is_logged_and_the_heap_is_still_frozen(unfrozen, caplog):
    def broken():
        raise OSError("certificates not readable")

    with caplog.at_level(logging.WARNING, logger="gateway.runtime"):
        assert settle(broken) > 0
    assert "warm-up failed" in caplog.text and "certificates not readable" in caplog.text
