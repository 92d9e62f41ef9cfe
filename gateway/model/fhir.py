"""The one module that imports ``fhir.resources``.

FHIR R4 is the release UK Core is built on. ``fhir.resources`` ships R4B (the
closest release to R4; the resources the gateway uses are the same in both),
so everything else imports FHIR through here and a move to another release is
a one-line change.
"""

from __future__ import annotations

from fhir.resources import R4B as _release
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

FHIR_VERSION = "4.0.1"
RELEASE_PACKAGE = _release.__name__

__all__ = ["FHIR_VERSION", "FhirInvalid", "model_class", "validate_resource"]


class FhirInvalid(ValueError):
    """A resource does not conform to the FHIR R4 base model.

    ``errors`` is a list of ``(path, message)`` with paths in FHIRPath-like
    dotted form (``Bundle.entry[2].resource.birthDate``).
    """

    def __init__(self, resource_type: str, errors: list[tuple[str, str]]):
        self.resource_type, self.errors = resource_type, errors
        shown = "; ".join(f"{p}: {m}" for p, m in errors[:5])
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"{resource_type} is not valid FHIR R4: {shown}{more}")


def model_class(resource_type: str):
    """Return the ``fhir.resources`` class for ``resource_type``; raises KeyError if unknown."""
    return get_fhir_model_class(resource_type)


def _fhirpath(resource_type: str, loc: tuple) -> str:
    out = resource_type
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("__root__",):
            continue
        else:
            out += f".{part}"
    return out


def validate_resource(resource: dict):
    """Validate a resource dict against the FHIR base model and return the model.

    Raises :class:`FhirInvalid` listing every problem found; raises
    ``KeyError`` if ``resourceType`` is missing or unknown.
    """
    resource_type = resource["resourceType"]
    cls = model_class(resource_type)
    try:
        return cls.model_validate(resource)
    except ValidationError as exc:
        errors = [(_fhirpath(resource_type, tuple(e.get("loc", ()))), e.get("msg", "invalid")) for e in exc.errors()]
        raise FhirInvalid(resource_type, errors) from None
