"""The CapabilityStatement (``GET /fhir/metadata``) and the OpenAPI document (``GET /openapi.json``).

``python -m gateway.api.metadata`` writes ``docs/openapi.json``; a test fails
when that copy is out of date.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gateway import __version__
from gateway.model import FHIR_VERSION
from gateway.model import systems as S
from gateway.model.terminology import MESSAGE_EVENTS

DOCS_OPENAPI = Path(__file__).resolve().parent.parent.parent / "docs" / "openapi.json"
FHIR_JSON = "application/fhir+json"


def capability_statement(date: str) -> dict:
    """Return the gateway's FHIR CapabilityStatement (``date``: when it is served, ISO 8601)."""
    return {
        "resourceType": "CapabilityStatement",
        "id": "safeguarding-gateway",
        "url": f"{S.BASE}/CapabilityStatement/safeguarding-gateway",
        "version": __version__,
        "name": "SafeguardingGateway",
        "title": "National safeguarding interoperability gateway",
        "status": "active",
        "date": date,
        "kind": "instance",
        "software": {"name": "safeguarding-gateway", "version": __version__},
        "implementation": {"description": "Safeguarding gateway: every request over mutual TLS with a "
                                          "deployment-CA agency certificate"},
        "fhirVersion": FHIR_VERSION,
        "format": [FHIR_JSON, "json"],
        "rest": [{
            "mode": "server",
            "security": {"description": "Mutual TLS only. The calling agency is the SAN URI "
                                        "urn:x-safeguarding:agency:<kind>:<code> of its client certificate."},
            "resource": [{"type": "Bundle",
                          "profile": f"{S.BASE}/StructureDefinition/safeguarding-message",
                          "operation": [{"name": "validate",
                                         "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}]}],
            "operation": [{"name": "process-message",
                           "definition": "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message"}],
        }],
        "messaging": [{
            "documentation": "Messages are signed (Bundle.signature, JWS ES256 over RFC 8785 canonical JSON). "
                             "Agencies without an endpoint read their messages from GET /mailbox.",
            "supportedMessage": [{"mode": mode, "definition": f"{S.BASE}/MessageDefinition/{code}"}
                                 for code in MESSAGE_EVENTS for mode in ("sender", "receiver")],
        }],
    }


def _op(summary: str, *, body: str | None = None, responses: dict | None = None, params: list | None = None,
        tag: str = "messages") -> dict:
    out = {"summary": summary, "tags": [tag], "security": [{"mutualTLS": []}],
           "responses": responses or {"200": {"description": "OK", "content": {FHIR_JSON: {}}}}}
    for code, text in (("401", "No verified agency certificate"), ("403", "Not this agency's")):
        out["responses"].setdefault(code, {"description": text, "content": {FHIR_JSON: {}}})
    if body:
        out["requestBody"] = {"required": True, "content": {body: {}}}
    if params:
        out["parameters"] = params
    return out


def _path_param(name: str, text: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": text, "schema": {"type": "string"}}


def openapi_document() -> dict:
    """Return the OpenAPI 3.1 description of the gateway's HTTP API."""
    outcome = {"description": "An OperationOutcome", "content": {FHIR_JSON: {}}}
    busy = {"description": "This agency already has as many requests in flight as it may "
                           "(GATEWAY_MAX_REQUESTS_PER_AGENCY): an OperationOutcome; try again after Retry-After",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}}, "content": {FHIR_JSON: {}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Safeguarding interoperability gateway", "version": __version__,
                 "description": "Every endpoint is served over mutual TLS; the calling agency is known only "
                                "from its verified client certificate. Errors are FHIR OperationOutcomes."},
        "components": {"securitySchemes": {"mutualTLS": {"type": "mutualTLS",
                                                          "description": "A deployment-CA agency certificate"}}},
        "paths": {
            "/fhir/$process-message": {"post": _op(
                "Send a FHIR message Bundle (signed or not); answers a signed FHIR response message",
                body=FHIR_JSON, responses={"200": {"description": "Accepted (or a replay of an accepted message)",
                                                   "content": {FHIR_JSON: {}}},
                                           "400": outcome, "409": outcome, "413": outcome, "415": outcome,
                                           "429": busy,
                                           "422": {"description": "Refused: the national standard's MUST items, "
                                                                  "a stale timestamp or a bad signature",
                                                   "content": {FHIR_JSON: {}}}})},
            "/ingest/{format}": {"post": _op(
                "Send a vendor export (schoolsafe-csv, concernhub-json, ppn-xml); every referral in it becomes "
                "a message through the same checks as $process-message; with concerns=include the records that "
                "are not referrals are sent too (kept, linked, routed to nobody)",
                body="application/octet-stream",
                params=[_path_param("format", "a format id from `gateway formats`"),
                        {"name": "concerns", "in": "query", "required": False,
                         "description": "include or exclude (default) the concerns that are not referrals",
                         "schema": {"type": "string", "enum": ["include", "exclude"]}}],
                responses={"200": outcome, "400": outcome, "404": outcome, "413": outcome, "415": outcome,
                           "429": busy})},
            "/fhir/Bundle/$validate": {"post": _op("Check a Bundle against the national referral standard",
                                                   body=FHIR_JSON, responses={"200": outcome, "400": outcome,
                                                                              "415": outcome},
                                                   tag="standard")},
            "/fhir/metadata": {"get": _op("The CapabilityStatement", tag="standard")},
            "/mailbox": {"get": _op("This agency's unacknowledged messages", tag="mailbox")},
            "/mailbox/{id}": {"get": _op("One message from the mailbox", tag="mailbox",
                                         params=[_path_param("id", "the delivery id")],
                                         responses={"200": {"description": "The signed message",
                                                            "content": {FHIR_JSON: {}}}, "404": outcome})},
            "/mailbox/{id}/$ack": {"post": _op("Acknowledge a message read from the mailbox", tag="mailbox",
                                               params=[_path_param("id", "the delivery id")],
                                               responses={"200": outcome, "404": outcome})},
            "/messages/{id}/status": {"get": _op("Each destination's delivery state and times (sender only)",
                                                 params=[_path_param("id", "the message id (urn:uuid:…)")],
                                                 responses={"200": {"description": "Delivery status",
                                                                    "content": {"application/json": {}}},
                                                            "404": outcome})},
            "/people/matches": {"get": _op(
                "Possible matches of the calling LA's children awaiting a person's decision, field by field with "
                "their weights (children's services of the child's home LA only)", tag="people",
                responses={"200": {"description": "The matches", "content": {"application/json": {}}}})},
            "/people/matches/{id}/$confirm": {"post": _op(
                "Confirm a possible match: the two are one person (JSON {reason, user})", tag="people",
                body="application/json", params=[_path_param("id", "the possible match id")],
                responses={"200": {"description": "The decided match", "content": {"application/json": {}}},
                           "400": outcome, "404": outcome, "409": outcome})},
            "/people/matches/{id}/$reject": {"post": _op(
                "Reject a possible match: never proposed again (JSON {reason, user})", tag="people",
                body="application/json", params=[_path_param("id", "the possible match id")],
                responses={"200": {"description": "The decided match", "content": {"application/json": {}}},
                           "400": outcome, "404": outcome, "409": outcome})},
            "/people/duplicates": {"get": _op(
                "Possible duplicates about the calling LA's children awaiting a person, both messages side by "
                "side (children's services of the child's home LA only)", tag="people",
                responses={"200": {"description": "The flags", "content": {"application/json": {}}}})},
            "/people/duplicates/{id}/$confirm": {"post": _op(
                "Confirm a possible duplicate: one event sent twice (both stay delivered; JSON {reason, user})",
                tag="people", body="application/json", params=[_path_param("id", "the flag id")],
                responses={"200": {"description": "The decided flag", "content": {"application/json": {}}},
                           "400": outcome, "404": outcome, "409": outcome})},
            "/people/duplicates/{id}/$dismiss": {"post": _op(
                "Dismiss a possible duplicate: two events (JSON {reason, user})", tag="people",
                body="application/json", params=[_path_param("id", "the flag id")],
                responses={"200": {"description": "The decided flag", "content": {"application/json": {}}},
                           "400": outcome, "404": outcome, "409": outcome})},
            "/fhir/Patient/{id}/$chronology": {"get": _op(
                "A child's and household's events from every agency, in order, as a FHIR collection Bundle "
                "(children's services of the child's home LA only; each read is recorded)", tag="people",
                params=[_path_param("id", "the person id")],
                responses={"200": {"description": "The chronology", "content": {FHIR_JSON: {}}}, "404": outcome})},
            "/stats": {"get": _op(
                "Figures per agency: sent, received, deadlines met on time and late, overdue, late submissions, "
                "possible duplicates and matches awaiting review", tag="people",
                responses={"200": {"description": "The figures", "content": {"application/json": {}}}})},
            "/connection-check": {"get": _op("Which agency the gateway sees this certificate as", tag="standard",
                                             responses={"200": {"description": "{\"agency\": <the agency URI>}",
                                                                "content": {"application/json": {}}}})},
            "/openapi.json": {"get": {"summary": "This document", "tags": ["standard"],
                                      "security": [{"mutualTLS": []}],
                                      "responses": {"200": {"description": "OpenAPI 3.1",
                                                            "content": {"application/json": {}}}}}},
        },
    }


def render_openapi() -> str:
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    if "--check" in sys.argv:
        up_to_date = DOCS_OPENAPI.exists() and DOCS_OPENAPI.read_text(encoding="utf-8") == render_openapi()
        print("docs/openapi.json is up to date" if up_to_date else
              "docs/openapi.json is out of date: run python -m gateway.api.metadata")
        sys.exit(0 if up_to_date else 1)
    DOCS_OPENAPI.write_text(render_openapi(), encoding="utf-8")
    print(f"wrote {DOCS_OPENAPI}")
