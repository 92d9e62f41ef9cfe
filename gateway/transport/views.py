"""HTTP endpoints of the transport: ``POST /fhir/$process-message`` and a connection check.

The calling agency comes only from the verified client certificate, which
:class:`~gateway.transport.middleware.ClientCertificateMiddleware` puts in
the environ; nothing in the request can name it.
"""

from __future__ import annotations

import datetime as dt
import threading

from flask import Blueprint, Flask, Response, current_app, request

from gateway.config import Settings
from gateway.signing import pki
from gateway.signing.signatures import Signer, TrustAnchor
from gateway.store import open_store
from gateway.transport.intake import FHIR_JSON, AcceptStep, MessageIntake, Refused
from gateway.transport.middleware import AGENCY_KEY
from gateway.transport.watch import Reloading
from gateway.web import FHIR_REQUEST_TYPES, require_media_type

blueprint = Blueprint("transport", __name__)

CLOCK_KEY = "GATEWAY_CLOCK"            # app.config: a callable returning an aware datetime (tests inject one)
STEPS_EXTENSION = "gateway.accept_steps"
INTAKE_EXTENSION = "gateway.intake"
_INTAKE_LOCK = threading.Lock()


def _system_clock() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def register_accept_step(app: Flask, step: AcceptStep) -> None:
    """Run ``step`` inside the transaction that accepts each message (see :data:`AcceptStep`)."""
    app.extensions.setdefault(STEPS_EXTENSION, []).append(step)


def intake_for(app: Flask) -> MessageIntake:
    """Return the app's :class:`MessageIntake`, built on first use from its settings.

    Raises :class:`~gateway.signing.pki.PKIError` when the certificates
    directory lacks the gateway's certificate, key, CA or CRL.
    """
    intake = app.extensions.get(INTAKE_EXTENSION)
    if intake is not None:
        return intake
    with _INTAKE_LOCK:  # gthread: two first requests may arrive together
        intake = app.extensions.get(INTAKE_EXTENSION)
        if intake is not None:
            return intake
        settings: Settings = app.config["GATEWAY_SETTINGS"]
        certs = settings.certs_dir
        signer = Reloading([certs / pki.GATEWAY_CERT, certs / pki.GATEWAY_KEY],
                           lambda: Signer.from_files(certs / pki.GATEWAY_CERT, certs / pki.GATEWAY_KEY))
        trust = Reloading([certs / pki.CA_CERT, certs / pki.CRL],
                          lambda: TrustAnchor.from_files(certs / pki.CA_CERT, certs / pki.CRL))
        signer.get()
        trust.get()
        intake = MessageIntake(
            store=open_store(settings.database_url), signer=signer.get, trust=trust.get,
            replay_window=dt.timedelta(seconds=settings.replay_window_seconds),
            steps=lambda: tuple(app.extensions.get(STEPS_EXTENSION, ())),
            validator=_national_standard)
        app.extensions[INTAKE_EXTENSION] = intake
    return intake


def _national_standard(bundle: dict, now: dt.datetime) -> dict:
    """Referrals and concern records meet the national referral standard; other messages
    (outcomes, notifications, responses) must be valid FHIR R4."""
    from gateway.model import FhirInvalid, check_resource
    from gateway.model.systems import EVENT_CONCERN, EVENT_REFERRAL
    from gateway.signing.messages import message_header
    from gateway.validation import validate_bundle

    header = message_header(bundle) or {}
    event = (header.get("eventCoding") or {}).get("code")
    # A response repeats the event of what it answers: an acknowledgement of a referral is not a referral.
    if event in (EVENT_REFERRAL, EVENT_CONCERN) and not isinstance(header.get("response"), dict):
        return validate_bundle(bundle, now=now, base=True)
    try:
        check_resource(bundle)
    except FhirInvalid as exc:
        return {"resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "structure", "expression": [path],
                           "details": {"text": message}} for path, message in exc.errors]}
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "informational",
                       "details": {"text": f"{event} message: valid FHIR R4"}}]}


#: A complete, fictional school referral (as an adapter translates one) for :func:`warm_up`; see :func:`warm_up_record`.
_WARM_UP_RECORD = {
    "format": "warm-up", "mapping_version": "1", "kind": "referral",
    "source": {"file": "warm-up", "location": "record 1"},
    "sender": {"kind": "school", "code": "999101", "name": "Riverside Infant School"},
    "referrer": {"name": "Sam Tully", "role": "Designated Safeguarding Lead", "phone": "01632 960001"},
    "child": {"given": ["Ada"], "family": "Testchild", "birth_date": "2014-03-04", "gender": "female",
              "nhs_number": "9990000018", "upn": "K850210117001",
              "address": {"lines": ["1 Example Road"], "town": "Andover", "postcode": "SP10 1AA"}},
    "people": [{"given": ["Bea"], "family": "Testchild", "relationship": {"code": "MTH", "display": "mother"},
                "parental_responsibility": True, "lives_with_child": True}],
    "concern": {"local_id": 1, "narrative": "Fictional warm-up narrative.",
                "categories": [{"label": "Neglect", "mapped": True, "code": "neglect", "display": "Neglect"}],
                "child_voice": "I am hungry", "child_spoken_to": True, "parents_informed": "yes",
                "action_taken": "DSL spoke to the child.", "requested_action": "Assessment"},
}


def warm_up_record(now: dt.datetime, record_id: str = "00000000-0000-4000-8000-000000000001") -> dict:
    """The warm-up's fictional referral, about events of the day before ``now`` (whenever the server starts)."""
    concern = {**_WARM_UP_RECORD["concern"], "occurred": (now - dt.timedelta(days=1)).isoformat(timespec="seconds"),
               "recorded": (now - dt.timedelta(hours=23)).isoformat(timespec="seconds")}
    return {**_WARM_UP_RECORD, "concern": concern,
            "source": {**_WARM_UP_RECORD["source"], "record_id": record_id}}


def warm_up(app: Flask) -> None:
    """Do once, at start-up, what the first message would load: build the intake (certificates, store
    engine) and check and counter-sign a fictional referral (the FHIR models the checks read, the
    national standard, signing). Nothing is stored or sent. See :func:`gateway.runtime.settle`."""
    from gateway.model import build_bundle
    from gateway.signing.signatures import countersign_message, signed_payload
    from gateway.validation import has_errors

    intake = intake_for(app)
    now = _system_clock()
    bundle = build_bundle(warm_up_record(now), now=now)
    feedback = _national_standard(bundle, now)
    if has_errors(feedback):
        raise RuntimeError(f"the warm-up referral does not meet the national standard: {feedback}")
    countersign_message(bundle, intake.signer(), now=now, payload=signed_payload(bundle))


def close_intake(app: Flask) -> None:
    """Release the intake's database connections (tests, orderly shutdown)."""
    intake = app.extensions.pop(INTAKE_EXTENSION, None)
    if intake is not None:
        intake.store.close()


@blueprint.post("/fhir/$process-message")
def process_message() -> Response:
    """Accept a FHIR message Bundle from the agency of the client certificate."""
    agency = request.environ.get(AGENCY_KEY)
    if agency is None:
        # Refuse before reading the body or touching the store.
        outcome = Refused(401, "login", "no verified agency certificate: connect with mutual TLS using a "
                          "certificate issued by the deployment CA").outcome()
    elif (unsupported := require_media_type(FHIR_REQUEST_TYPES)) is not None:
        return unsupported  # before reading the body
    else:
        clock = current_app.config.get(CLOCK_KEY, _system_clock)
        try:
            intake = intake_for(current_app)
        except (pki.PKIError, OSError) as exc:
            current_app.logger.error("cannot accept messages: %s", exc)
            outcome = Refused(503, "transient", "the gateway cannot sign messages at the moment "
                              "(its certificates are not available); try again later").outcome()
        else:
            from gateway.adapters.limits import LimitExceeded
            from gateway.api.limits import agency_gate, busy_response, limit_response

            with agency_gate(current_app).admitted(agency) as admitted:
                if not admitted:
                    return busy_response(current_app.config["GATEWAY_SETTINGS"], agency)
                try:
                    body = _bounded_body(current_app.config["GATEWAY_SETTINGS"])
                except LimitExceeded as exc:
                    return limit_response(exc)
                outcome = intake.process(body, agency, now=clock())
    return Response(outcome.body, status=outcome.status, mimetype=FHIR_JSON)


def _bounded_body(settings: Settings) -> bytes:
    """The request body within the size and time limits, nested no deeper than the depth limit
    (the intake's parser and checks recurse); raises :class:`~gateway.adapters.limits.LimitExceeded`."""
    from gateway.adapters.limits import Limits, json_nesting_exceeds
    from gateway.api.limits import read_body

    limits = Limits.for_request(settings)
    body = read_body(request.stream, settings.max_request_bytes, limits, "the message")
    if json_nesting_exceeds(body, limits.max_nesting_depth):
        raise limits.depth_exceeded("the message", "Bundle")
    return body


@blueprint.get("/connection-check")
def connection_check() -> Response:
    """Tell a connecting agency which identity its certificate gives it (a setup check)."""
    agency = request.environ.get(AGENCY_KEY)
    if agency is None:
        outcome = Refused(401, "login", "no verified agency certificate").outcome()
        return Response(outcome.body, status=outcome.status, mimetype=FHIR_JSON)
    return current_app.json.response({"agency": agency})
