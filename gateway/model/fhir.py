"""The one module that imports ``fhir.resources``.

FHIR R4 is the release UK Core is built on. ``fhir.resources`` ships R4B (the
closest release to R4; the resources the gateway uses are the same in both),
so everything else imports FHIR through here and a move to another release is
a one-line change.

Two ways to check a resource against the base model:

- :func:`validate_resource` builds the ``fhir.resources`` model: it is the
  reference, returns the model and words every error;
- :func:`check_resource` is for callers that only need a yes/no (the
  validator's base issues, the intake of messages). Building the model costs
  ~3 ms per message Bundle, most of it ``fhir_core``'s Python-level model
  validators, and almost every message is valid; so it first asks
  :func:`gateway.model.structure.certainly_valid`, a structural pre-check
  that says True only when the reference certainly accepts. Only when it is
  not sure does the reference run. Guarantee: ``certainly_valid`` implies
  reference-valid, so the accept/refuse decision is exactly the reference's,
  and every error (``FhirInvalid``, its paths and messages) still comes from
  the reference.
"""

from __future__ import annotations

import logging

from fhir.resources import R4B as _release
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

FHIR_VERSION = "4.0.1"
RELEASE_PACKAGE = _release.__name__

__all__ = ["FHIR_VERSION", "FhirInvalid", "check_resource", "model_class", "validate_resource"]

log = logging.getLogger(__name__)


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
    except (AttributeError, TypeError) as exc:
        # Some of the library's own validators crash on a value of the wrong JSON type (a url that is
        # a number: AttributeError) instead of reporting it; the resource is still not valid.
        raise FhirInvalid(resource_type, [(resource_type, f"a value of the wrong JSON type somewhere in the "
                                           f"resource ({type(exc).__name__}: {exc})")]) from None


def check_resource(resource: dict) -> None:
    """Raise :class:`FhirInvalid` exactly when :func:`validate_resource` would; return None otherwise.

    The common (valid) case skips building the model: see the module docstring.
    Raises ``KeyError``/``ValueError``/``TypeError`` as :func:`validate_resource` does
    for a missing or unknown ``resourceType``.
    """
    # Imported here: structure reads model classes through this module (model_class).
    from gateway.model.structure import certainly_valid

    if certainly_valid(resource):
        return
    validate_resource(resource)  # raises FhirInvalid with the reference's own paths and messages
    log.debug("FHIR pre-check declined a %s the base model accepts", resource.get("resourceType"))
