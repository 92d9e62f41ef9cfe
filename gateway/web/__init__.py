"""HTTP wiring: blueprints of each sub-package and FHIR-style error pages."""

from __future__ import annotations

from importlib import import_module

from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException

FHIR_JSON = "application/fhir+json"

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


def _http_error(exc: HTTPException) -> Response:
    code = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found",
            405: "not-supported", 409: "conflict", 413: "too-costly"}.get(exc.code or 500, "exception")
    return fhir_response(operation_outcome("error", code, exc.description or exc.name), exc.code or 500)


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
