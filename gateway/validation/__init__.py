"""The national referral standard: the minimum dataset, its checks and its publication.

The standard is defined once, as data, in ``standard.yaml``. From it the
gateway validates messages (:func:`validate_bundle`), generates
``docs/referral-standard.md`` and exports FHIR conformance resources under
``docs/fhir/`` (``python -m gateway.validation.publish``).
"""

from gateway.validation.standard import Item, Standard, load_standard
from gateway.validation.validator import NotABundle, completeness, gap_items, has_errors, summary, validate_bundle

__all__ = ["Item", "NotABundle", "Standard", "completeness", "gap_items", "has_errors", "load_standard", "summary",
           "validate_bundle"]
