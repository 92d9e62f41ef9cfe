"""The messages the standard is tested on, for tests that check every rule on all of them.

``standard_cases()``: the complete school and police messages, and each with one item of the
standard taken out (the removers of test_standard_items). ``golden_messages()``: what each
mapping's golden cases translate to now (with the timestamps the stored goldens leave out).
"""

from __future__ import annotations

from collections.abc import Iterator

from gateway.adapters.goldens import translate_case
from gateway.adapters.mapping import Mapping
from gateway.config import REPO_DIR

from .referral_builders import clone, complete_bundle
from .test_standard_items import KIND_APPLIES, REMOVERS, STANDARD


def standard_cases() -> Iterator[tuple[str, dict]]:
    """Yield ``(name, Bundle)`` for the complete messages and each item removed from them."""
    complete = {kind: complete_bundle(kind) for kind in sorted(KIND_APPLIES)}
    for kind, bundle in complete.items():
        yield f"complete-{kind}", clone(bundle)
    for item in STANDARD.level("MUST") + STANDARD.level("SHOULD"):
        remover = REMOVERS[item.id]
        for kind in remover.kinds:
            if item.applies in KIND_APPLIES[kind]:
                bundle = clone(complete[kind])
                remover.remove(bundle)
                yield f"{item.id}-removed-{kind}", bundle


def golden_messages() -> Iterator[tuple[str, dict]]:
    """Yield ``(case/n, Bundle)`` for every message the mappings' golden cases translate to."""
    for case in sorted(REPO_DIR.glob("mappings/*/cases/*")):
        inputs = sorted(case.glob("input.*"))
        mapping = Mapping.load(case.parent.parent / "mapping.yaml")
        for n, bundle in enumerate(translate_case(mapping, inputs[0])["messages"]):
            yield f"{case.parent.parent.name}/{case.name}/{n}", bundle
