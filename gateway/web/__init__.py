"""HTTP wiring: blueprints of each sub-package and FHIR-style error pages."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException

FHIR_JSON = "application/fhir+json"
#: What a FHIR endpoint takes as a request body (``charset``, when given, must be UTF-8).
FHIR_REQUEST_TYPES = (FHIR_JSON, "application/json")

# Sub-packages that expose ``blueprint`` (optional while a step is not built).
BLUEPRINT_MODULES = (
    "gateway.validation.views",
    "gateway.transport.views",
    "gateway.delivery.views",
    "gateway.api.views",
    "gateway.linkage.views",
    "gateway.web.console.views",
)


def operation_outcome(severity: str, code: str, text: str, expression: str | None = None) -> dict:
    """Return a one-issue FHIR OperationOutcome as a dict."""
    issue = {"severity": severity, "code": code, "diagnostics": text, "details": {"text": text}}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def fhir_response(body: dict, status: int = 200) -> Response:
    """Return ``body`` as ``application/fhir+json`` with ``status``."""
    return Response(json.dumps(body), status=status, mimetype=FHIR_JSON)


def require_media_type(accepted: Sequence[str], *, assumed: str | None = None) -> Response | None:
    """Return ``None`` when the request body's Content-Type is one of ``accepted``, else a 415 answer.

    Parameters other than ``charset`` are ignored; a ``charset`` must be
    UTF-8. A request without a Content-Type is taken as ``assumed`` (RFC 9110
    allows a recipient to assume ``application/octet-stream``), and refused
    when that is ``None``. The 415 is an OperationOutcome naming the types
    accepted.
    """
    given = request.mimetype or assumed
    charset = request.mimetype_params.get("charset")
    if given in accepted and (charset is None or charset.lower().replace("_", "-") in ("utf-8", "utf8")):
        return None
    sent = request.headers.get("Content-Type") or "no Content-Type"
    return fhir_response(operation_outcome(
        "error", "not-supported", f"the request body is {sent}; {request.method} {request.path} takes "
        f"{' or '.join(accepted)} (charset, when given, utf-8)", "Content-Type"), 415)


def _http_error(exc: HTTPException) -> Response:
    code = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found",
            405: "not-supported", 409: "conflict", 413: "too-costly", 415: "not-supported"}.get(exc.code or 500,
                                                                                              "exception")
    response = fhir_response(operation_outcome("error", code, exc.description or exc.name), exc.code or 500)
    # Keep what the exception says besides its body: a 405's Allow, a 401's WWW-Authenticate.
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def init_app(app: Flask) -> None:
    """Register every available blueprint and the OperationOutcome error handler."""
    for name in BLUEPRINT_MODULES:
        try:
            module = import_module(name)
        except ModuleNotFoundError as exc:
            # Only the blueprint's own package may be missing (a step not built yet);
            # anything it fails to import itself is a real error.
            if not (exc.name == name or name.startswith(exc.name + ".")):
                raise
            continue
        app.register_blueprint(module.blueprint)
    app.register_error_handler(HTTPException, _http_error)
