"""``POST /fhir/Bundle/$validate``: check a message against FHIR R4 and the referral standard."""

from __future__ import annotations

import datetime as dt
import json

from flask import Blueprint, request

from gateway.validation.validator import NotABundle, validate_bundle
from gateway.web import FHIR_REQUEST_TYPES, fhir_response, operation_outcome, require_media_type

blueprint = Blueprint("validation", __name__)


@blueprint.post("/fhir/Bundle/$validate")
def validate_view():
    """Return the OperationOutcome for the posted Bundle (200), or 400 with an OperationOutcome.

    The outcome says whether the message would be refused (errors) and what
    the sender should add (warnings); a 200 does not mean the Bundle is valid.
    """
    unsupported = require_media_type(FHIR_REQUEST_TYPES)
    if unsupported is not None:
        return unsupported
    raw = request.get_data(cache=False)
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return fhir_response(operation_outcome(
            "error", "invalid", f"The request body is not JSON ({exc}); post a FHIR Bundle as application/fhir+json."),
            400)
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        body = next((p.get("resource") for p in body.get("parameter") or []
                     if isinstance(p, dict) and p.get("name") == "resource"), None)
    try:
        outcome = validate_bundle(body, now=dt.datetime.now(dt.timezone.utc))
    except NotABundle as exc:
        return fhir_response(operation_outcome(
            "error", "invalid", f"{exc}; post a FHIR Bundle of type 'message' (or Parameters with a 'resource').",
            "Bundle"), 400)
    return fhir_response(outcome)
