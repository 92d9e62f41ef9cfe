"""``POST /ingest/<format>``, ``GET /fhir/metadata`` and ``GET /openapi.json``."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, current_app, jsonify, request

from gateway.adapters import get_adapter
from gateway.adapters.base import InputUnreadable
from gateway.adapters.errors import AdapterConflict, MappingError
from gateway.adapters.limits import LimitExceeded, Limits
from gateway.api.ingest import ingest
from gateway.api.limits import agency_gate, busy_response, limit_response, spool_body
from gateway.api.metadata import capability_statement, openapi_document
from gateway.signing import pki
from gateway.transport.middleware import AGENCY_KEY
from gateway.transport.views import CLOCK_KEY, intake_for
from gateway.web import fhir_response, operation_outcome, require_media_type

blueprint = Blueprint("api", __name__)

#: The media type of each built-in reader's input; a plug-in adapter may say its own as ``media_types``.
#: Any export may also be sent as application/octet-stream (what a request without a Content-Type is taken as).
READER_MEDIA_TYPES = {"csv": ("text/csv",), "concernhub-json": ("application/json",),
                      "ppn-xml": ("application/xml", "text/xml")}
OCTET_STREAM = "application/octet-stream"


def ingest_media_types(adapter) -> tuple[str, ...]:
    """Return the Content-Types ``POST /ingest/<format>`` takes for ``adapter``'s exports."""
    own = getattr(adapter, "media_types", None)
    if own is None:
        spec = getattr(adapter, "spec", None)
        reader = spec.get("reader") if isinstance(spec, dict) else None
        own = READER_MEDIA_TYPES.get(reader.get("type"), ()) if isinstance(reader, dict) else ()
    return (*own, OCTET_STREAM)


def _now() -> dt.datetime:
    clock = current_app.config.get(CLOCK_KEY)
    return clock() if clock else dt.datetime.now(dt.timezone.utc)


@blueprint.post("/ingest/<format_id>")
def ingest_export(format_id: str) -> Response:
    """Translate a vendor export and submit each of its referrals as the calling agency."""
    agency = request.environ.get(AGENCY_KEY)
    if agency is None:
        return fhir_response(operation_outcome("error", "login", "no verified agency certificate: connect with "
                                               "mutual TLS using a certificate issued by the deployment CA"), 401)
    try:
        adapter = get_adapter(format_id)
    except KeyError as exc:
        return fhir_response(operation_outcome("error", "not-found", exc.args[0]), 404)
    except (AdapterConflict, MappingError, TypeError) as exc:
        current_app.logger.error("adapter %s unusable: %s", format_id, exc)
        return fhir_response(operation_outcome("error", "exception", f"the {format_id} adapter is unusable; "
                                               "the operators have been told"), 500)
    unsupported = require_media_type(ingest_media_types(adapter), assumed=OCTET_STREAM)
    if unsupported is not None:
        return unsupported
    try:
        intake = intake_for(current_app)
    except (pki.PKIError, OSError) as exc:
        current_app.logger.error("cannot accept messages: %s", exc)
        return fhir_response(operation_outcome("error", "transient", "the gateway cannot sign messages at the "
                                               "moment; try again later"), 503)
    # A school may choose to send the concerns it recorded but did not refer (?concerns=include): they are
    # kept, linked into the child's chronology and weighed by the escalation rules, and sent to nobody.
    concerns = request.args.get("concerns", "exclude")
    if concerns not in ("include", "exclude"):
        return fhir_response(operation_outcome("error", "invalid", f"concerns={concerns!r}: give include or exclude",
                                               "concerns"), 400)
    settings = current_app.config["GATEWAY_SETTINGS"]
    with agency_gate(current_app).admitted(agency) as admitted:
        if not admitted:
            return busy_response(settings, agency)
        limits = Limits.for_request(settings)
        name = f"{format_id} upload"
        try:
            # The whole body first, counted as it arrives (a chunked upload has no Content-Length):
            # an oversized one is refused at the limit, before anything is translated.
            with spool_body(request.stream, settings.max_request_bytes, limits, name) as body:
                result = ingest(adapter, body, name, intake=intake, agency=agency, now=_now(),
                                include_concerns=concerns == "include", limits=limits)
        except LimitExceeded as exc:
            return limit_response(exc)
        except InputUnreadable as exc:
            return fhir_response(operation_outcome("error", "invalid", str(exc)), 400)
    return fhir_response(result.operation_outcome(), result.status)


@blueprint.get("/fhir/metadata")
def metadata() -> Response:
    return fhir_response(capability_statement(_now().date().isoformat()))


@blueprint.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())
