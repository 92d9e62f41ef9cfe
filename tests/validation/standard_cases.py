"""The messages the standard is tested on, for tests that check every rule on all of them.

``standard_cases()``: the complete school and police messages, and each with one item of the
standard taken out (the removers of test_standard_items). ``golden_messages()``: what each
mapping's golden cases translate to now (with the timestamps the stored goldens leave out).
``synth_messages()``: what each format's deterministic synthetic data (field quirks included)
translates to, as a vendor would try the standard.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

from gateway.adapters import get_adapter
from gateway.adapters.goldens import GOLDEN_NOW, translate_case
from gateway.adapters.mapping import Mapping
from gateway.adapters.translate import translate_stream
from gateway.config import REPO_DIR

# The formats whose synthetic data the vendor's experiment of issue 13 translated.
SYNTH_FORMATS = ("schoolsafe-csv", "concernhub-json", "ppn-xml")

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


def synth_messages(count: int = 40, seed: int = 13) -> Iterator[tuple[str, dict]]:
    """Yield ``(format/synth/n, Bundle)`` for ``count`` synthetic records of each format, translated."""
    for format_id in SYNTH_FORMATS:
        adapter = get_adapter(format_id)
        data = io.BytesIO()
        adapter.synth(data, count, seed=seed)
        out = io.StringIO()
        translate_stream(adapter, io.BytesIO(data.getvalue()), f"synth.{format_id}", out, io.StringIO(),
                         now=GOLDEN_NOW)
        for n, line in enumerate(out.getvalue().splitlines()):
            yield f"{format_id}/synth/{n}", json.loads(line)
