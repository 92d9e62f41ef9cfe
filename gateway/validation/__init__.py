"""The national referral standard: the minimum dataset, its checks and its publication.

The standard is defined once, as data, in ``standard.yaml``: its rules are
FHIRPath invariants, which the gateway evaluates when it validates a message
(:func:`validate_bundle`) and publishes unchanged, with the rest of the
standard, as a FHIR package (``gateway standard package``: ``docs/fhir/``,
``docs/referral-standard.md`` and ``docs/standard/``).
"""

from gateway.validation.standard import Item, Standard, load_standard
from gateway.validation.validator import NotABundle, completeness, gap_items, has_errors, summary, validate_bundle

__all__ = ["Item", "NotABundle", "Standard", "completeness", "gap_items", "has_errors", "load_standard", "summary",
           "validate_bundle"]
