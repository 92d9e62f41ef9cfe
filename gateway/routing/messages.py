"""Messages the gateway builds itself: Operation Encompass notifications,
referral outcomes and acknowledgements (FHIR response messages).

Each builder returns a FHIR R4 message Bundle (a dict) that validates with
:func:`gateway.model.validate_resource`. Ids are deterministic (UUIDv5,
:func:`gateway.model.deterministic_id`):

* a notification's ids come from the notice's message id and the
  destination: routing the same notice again gives the same notification,
  which a school recognises as one it already has;
* an outcome's from the referral's message id, the deciding agency, the
  decision and the reason: the same decision posted twice is one message;
* an acknowledgement's also from ``now``: two failures at different times
  are two responses.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from gateway import __version__
from gateway.model import deterministic_id, english
from gateway.model import systems as S
from gateway.model.bundle import EVENT_DISPLAY
from gateway.model.responses import response_message
from gateway.routing import bundles as B
from gateway.routing.codes import (
    ACK_CODES,
    DEFAULT_GATEWAY_AGENCY,
    EXT_DUE_BY,
    REFERRAL_DECISION,
    REFERRAL_DECISIONS,
)
from gateway.routing.interfaces import Agency
from gateway.routing.schoolday import LOCAL_TIMEZONE

GATEWAY_NAME = "Safeguarding gateway"


def _instant(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("times must be aware datetimes")
    return value.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def _event(code: str) -> dict:
    return {"system": S.MESSAGE_EVENT, "code": code, "display": EVENT_DISPLAY[code]}


def _agency_organization(rid: str, agency_uri: str, name: str | None = None) -> dict:
    parsed = S.parse_agency_uri(agency_uri)
    if parsed is None:
        raise ValueError(f"{agency_uri!r} is not an agency identity (urn:x-safeguarding:agency:<kind>:<code>)")
    kind, code = parsed
    return {"resourceType": "Organization", "id": rid,
            "identifier": [{"system": S.AGENCY_IDENTIFIER_SYSTEM[kind], "value": code}],
            "name": name or f"{kind} {code}"}


def _copy_organization(rid: str, organization: dict | None, fallback_uri: str | None) -> dict | None:
    if organization is not None:
        copied = {k: v for k, v in organization.items() if k in ("identifier", "type", "name", "telecom")}
        return {"resourceType": "Organization", "id": rid, **copied}
    return _agency_organization(rid, fallback_uri) if fallback_uri else None


def _copy_child(rid: str, patient: dict) -> dict:
    """The child, as little as lets the receiver match them: national ids, name, gender, birth date."""
    identifiers = [i for i in patient.get("identifier") or () if i.get("system") in (S.NHS_NUMBER, S.UPN)]
    out = {"resourceType": "Patient", "id": rid}
    for key, value in (("identifier", identifiers), ("name", patient.get("name")),
                       ("gender", patient.get("gender")), ("birthDate", patient.get("birthDate"))):
        if value:
            out[key] = value
    return out


def _entries(*resources: dict | None) -> list[dict]:
    return [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources if r is not None]


def _ref(resource: dict) -> dict:
    return {"reference": f"urn:uuid:{resource['id']}"}


def _message(bundle_id: str, now: dt.datetime, header: dict, *resources: dict | None) -> dict:
    return {"resourceType": "Bundle", "id": bundle_id,
            "identifier": {"system": S.MESSAGE_ID, "value": f"urn:uuid:{bundle_id}"},
            "type": "message", "timestamp": _instant(now),
            "entry": _entries(header, *resources)}


def _original(bundle: dict) -> tuple[dict, str, str]:
    header = B.message_header(bundle)
    mid = B.message_id(bundle)
    if header is None or mid is None or not isinstance(header.get("id"), str):
        raise ValueError("the original is not a message Bundle with an id and a MessageHeader id")
    sender = B.source_endpoint(header)
    if sender is None:
        raise ValueError(f"message {mid} has no MessageHeader.source.endpoint: no sender to answer")
    return header, mid, sender


def _request_reference(bundle: dict, mid: str) -> dict:
    """A logical Reference to the original's ServiceRequest (by identifier), else to the message."""
    request = B.focus_request(bundle)
    if request is not None:
        idents = [i for i in request.get("identifier") or () if isinstance(i, dict) and i.get("value")]
        identifier = idents[0] if idents else {"system": S.MESSAGE_ID, "value": f"urn:uuid:{request.get('id')}"}
        return {"type": "ServiceRequest", "identifier": {"system": identifier.get("system"),
                                                          "value": identifier["value"]},
                "display": "the referral"}
    return {"type": "Bundle", "identifier": {"system": S.MESSAGE_ID, "value": mid}, "display": "the original message"}


def _gateway_header(rid, event: str, destination: Agency, recipient_org: dict, gateway_org: dict,
                    gateway_agency: str, focus: list[dict]) -> dict:
    """The MessageHeader of a message the gateway itself sends to ``destination`` (one shape for all of them)."""
    return {
        "resourceType": "MessageHeader", "id": rid("message-header"),
        "eventCoding": _event(event),
        "destination": [{"name": destination.name, "endpoint": destination.uri, "receiver": _ref(recipient_org)}],
        "sender": _ref(gateway_org),
        "source": {"name": GATEWAY_NAME, "endpoint": gateway_agency, "software": "safeguarding-gateway",
                   "version": __version__},
        "focus": [_ref(resource) for resource in focus],
    }


def build_encompass_notification(notice: dict, destination: Agency, *, due: dt.datetime, now: dt.datetime,
                                 gateway_agency: str = DEFAULT_GATEWAY_AGENCY,
                                 timezone: str = LOCAL_TIMEZONE) -> dict:
    """Return the Operation Encompass notification of a police notice for ``destination``.

    The message (event ``operation-encompass-notification``) comes from the
    gateway on the force's behalf. Its focus is a ``Communication``: subject
    the child (national ids, name, birth date only), sender the force,
    recipient the school (or LA), ``about`` the notice (its message id and
    its ServiceRequest's identifiers), ``sent`` = ``now``, the ``due-by``
    extension = ``due``, and a short text saying what happened and when, for the school's key adult: times in
    words, in ``timezone`` (the gateway's).
    The incident's place and the adults' details are not passed on.
    Raises :class:`ValueError` when the notice has no child, id or sender.
    """
    header, mid, force = _original(notice)
    patient = B.child(notice)
    if patient is None:
        raise ValueError(f"message {mid} names no child")
    request = B.focus_request(notice) or {}

    def rid(role: str) -> str:
        return deterministic_id("operation-encompass", mid, destination.uri, role)

    gateway_org = _agency_organization(rid("gateway"), gateway_agency, GATEWAY_NAME)
    force_org = _copy_organization(rid("force"), B.resolve(notice, header.get("sender")), force)
    recipient_org = _agency_organization(rid("recipient"), destination.uri, destination.name)
    child = _copy_child(rid("child"), patient)

    occurred = B.extension_value(request, S.EXT_OCCURRED)
    present = B.extension_value(request, S.EXT_PRESENT_AT_INCIDENT)
    name = ((patient.get("name") or [{}])[0]).get("text") or "the child"
    force_name = force_org.get("name") or force
    zone = ZoneInfo(timezone)
    text = f"Operation Encompass: {force_name} attended a domestic abuse incident"
    if isinstance(occurred, str) and occurred:
        text += " " + (english.fhir_when(occurred, zone) or f"(occurred {occurred})")
    text += f" involving {name}'s household."
    if present is True:
        text += " The child was present."
    elif present is False:
        text += " The child was not recorded as present."
    local_due = due.astimezone(zone)
    text += (f" Please read this by {english.clock(local_due)} on {english.day(local_due)}, and make sure the "
             "school's key adult can support the child from the start of the school day.")

    about = [{"type": "Bundle", "identifier": {"system": S.MESSAGE_ID, "value": mid}, "display": "the police notice"}]
    for identifier in request.get("identifier") or ():
        if isinstance(identifier, dict) and identifier.get("system") == S.PPN_NOTICE_ID:
            about.append({"type": "ServiceRequest", "identifier": identifier, "display": "the police notice"})
    communication = {
        "resourceType": "Communication", "id": rid("communication"),
        "extension": [{"url": EXT_DUE_BY, "valueDateTime": due.isoformat()}],
        "status": "completed",
        "category": [{"coding": [_event(S.EVENT_ENCOMPASS)]}],
        "priority": "urgent",
        "subject": _ref(child),
        "about": about,
        "sent": _instant(now),
        "recipient": [_ref(recipient_org)],
        "sender": _ref(force_org),
        "payload": [{"contentString": text}],
    }
    message_header = _gateway_header(rid, S.EVENT_ENCOMPASS, destination, recipient_org, gateway_org, gateway_agency,
                                     [communication])
    return _message(rid("bundle"), now, message_header, gateway_org, force_org, recipient_org, child, communication)


def build_outcome_message(original_bundle: dict, decision: str, reason: str, decided_by_agency: str,
                          now: dt.datetime, *, decided_by_name: str | None = None) -> dict:
    """Return the referral-outcome message telling the referrer what the LA decided.

    ``decision`` is one of ``accepted-for-assessment``, ``no-further-action``,
    ``signposted-early-help``, ``declined`` (:data:`~gateway.routing.codes.REFERRAL_DECISIONS`);
    ``reason`` is required. The message goes from ``decided_by_agency`` to the
    original's sender (``MessageHeader.source.endpoint``); its focus is a
    ``Task``: ``businessStatus`` = the decision, ``statusReason`` = the
    reason, ``status`` accepted/completed/rejected, ``focus`` = the referral's
    ServiceRequest by identifier, ``for`` = the child, ``requester`` = the
    referrer's organisation, ``owner`` = the deciding LA, and an ``input``
    naming the original message id. Raises :class:`ValueError` for an unknown
    decision, an empty reason or an original without ids or sender.
    """
    if decision not in REFERRAL_DECISIONS:
        raise ValueError(f"decision {decision!r} is not one of {', '.join(REFERRAL_DECISIONS)}")
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("a decision needs a reason the referrer can read")
    header, mid, referrer = _original(original_bundle)
    display, task_status = REFERRAL_DECISIONS[decision]

    def rid(role: str) -> str:
        return deterministic_id("referral-outcome", mid, decided_by_agency, decision, reason, role)

    la_org = _agency_organization(rid("decided-by"), decided_by_agency, decided_by_name)
    referrer_org = _copy_organization(rid("referrer"), B.resolve(original_bundle, header.get("sender")), referrer)
    patient = B.child(original_bundle)
    child = _copy_child(rid("child"), patient) if patient is not None else None
    task = {
        "resourceType": "Task", "id": rid("task"),
        "status": task_status, "intent": "order",
        "businessStatus": {"coding": [{"system": REFERRAL_DECISION, "code": decision, "display": display}],
                           "text": display},
        "statusReason": {"text": reason.strip()},
        "code": {"coding": [_event(S.EVENT_OUTCOME)]},
        "focus": _request_reference(original_bundle, mid),
        "authoredOn": _instant(now), "lastModified": _instant(now),
        "requester": _ref(referrer_org), "owner": _ref(la_org),
        "input": [{"type": {"text": "referral message"},
                   "valueIdentifier": {"system": S.MESSAGE_ID, "value": mid}}],
    }
    if child is not None:
        task["for"] = _ref(child)
    message_header = {
        "resourceType": "MessageHeader", "id": rid("message-header"),
        "eventCoding": _event(S.EVENT_OUTCOME),
        "destination": [{"name": referrer_org.get("name") or referrer, "endpoint": referrer,
                         "receiver": _ref(referrer_org)}],
        "sender": _ref(la_org),
        "source": {"name": la_org["name"], "endpoint": decided_by_agency},
        "focus": [_ref(task)],
    }
    return _message(rid("bundle"), now, message_header, la_org, referrer_org, child, task)


def build_acknowledgement(original_bundle: dict, code: str, details: str | None, from_agency: str,
                          now: dt.datetime) -> dict:
    """Return the FHIR response message acknowledging ``original_bundle``.

    ``MessageHeader.response.identifier`` is the original's MessageHeader id
    and ``response.code`` is ``code`` (``ok``, ``transient-error``,
    ``fatal-error``); ``details``, when given, is an OperationOutcome
    (``response.details``) whose issue says it. The event is the original's;
    it goes from ``from_agency`` to the original's sender. Built by the one
    response builder, :func:`gateway.model.responses.response_message`, with
    ids that follow from what it answers. Raises :class:`ValueError` for
    another code or an original without ids, sender or event.
    """
    if code not in ACK_CODES:
        raise ValueError(f"response code {code!r} is not one of {', '.join(ACK_CODES)}")
    header, mid, sender = _original(original_bundle)
    if not isinstance(header.get("eventCoding"), dict):
        raise ValueError(f"message {mid} has no event (MessageHeader.eventCoding): a response must repeat it")

    def rid(role: str) -> str:
        return deterministic_id("acknowledgement", mid, from_agency, code, details, _instant(now), role)

    from_org = _agency_organization(rid("from"), from_agency,
                                    GATEWAY_NAME if from_agency == DEFAULT_GATEWAY_AGENCY else None)
    return response_message(answers=header["id"], code=code, source=from_agency, destination=sender, now=now,
                            text=details, event=header["eventCoding"], message_uuid=rid("bundle"),
                            sender=from_org, source_name=from_org["name"])


def _message_reference(message_id: str, display: str) -> dict:
    return {"type": "Bundle", "identifier": {"system": S.MESSAGE_ID, "value": message_id}, "display": display}


def build_alert_message(child: dict, destination: Agency, *, rule_id: str, title: str, reason: str,
                        triggers: list[tuple[str, str]], now: dt.datetime,
                        gateway_agency: str = DEFAULT_GATEWAY_AGENCY, share_triggers: bool = True) -> dict:
    """Return the alert telling ``destination`` that an escalation rule fired about a child.

    The message (event ``safeguarding-alert``) comes from the gateway. It
    carries a ``Flag`` on the child (code: the rule's title; active from
    ``now``) and a ``DetectedIssue`` whose ``detail`` is ``reason`` and whose
    ``implicated`` are the triggering messages (``triggers``: message id and
    a one-line description each), unless ``share_triggers`` is false (a
    school hears that there is a concern, not the other agencies' messages).
    ``child`` is the child's Patient (only national ids, name, gender and
    birth date are copied). Ids are deterministic from the rule, the child's
    triggering messages and the destination: the same firing is one message.
    """

    def rid(role: str) -> str:
        return deterministic_id("safeguarding-alert", rule_id, destination.uri, *sorted(m for m, _ in triggers), role)

    gateway_org = _agency_organization(rid("gateway"), gateway_agency, GATEWAY_NAME)
    recipient_org = _agency_organization(rid("recipient"), destination.uri, destination.name)
    patient = _copy_child(rid("child"), child)
    flag = {
        "resourceType": "Flag", "id": rid("flag"), "status": "active",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category",
                                  "code": "safety", "display": "Safety"}]}],
        "code": {"coding": [{"system": f"{S.BASE}/CodeSystem/escalation-rule", "code": rule_id, "display": title}],
                 "text": title},
        "subject": _ref(patient), "period": {"start": _instant(now)}, "author": _ref(gateway_org),
    }
    issue = {
        "resourceType": "DetectedIssue", "id": rid("issue"), "status": "final", "severity": "high",
        "code": flag["code"], "patient": _ref(patient), "identifiedDateTime": _instant(now),
        "author": _ref(gateway_org), "detail": reason,
    }
    if share_triggers:
        issue["implicated"] = [_message_reference(mid, text[:200] or "a message") for mid, text in triggers]
    message_header = _gateway_header(rid, S.EVENT_ALERT, destination, recipient_org, gateway_org, gateway_agency,
                                     [flag, issue])
    return _message(rid("bundle"), now, message_header, gateway_org, recipient_org, patient, flag, issue)


def build_overdue_message(destination: Agency, *, deadline_id: str, about_message_id: str, text: str,
                          escalation: bool, now: dt.datetime,
                          gateway_agency: str = DEFAULT_GATEWAY_AGENCY) -> dict:
    """Return the reminder that something due from an agency is late (event ``deadline-overdue``).

    A ``Communication`` (priority ``urgent``, ``asap`` when it goes to the
    escalation contact) about the late message, with ``text`` as its
    payload. Ids are deterministic from the deadline and whether it is the
    escalation: each reminder is sent once.
    """
    stage = "escalation" if escalation else "alert"

    def rid(role: str) -> str:
        return deterministic_id("deadline-overdue", deadline_id, stage, destination.uri, role)

    gateway_org = _agency_organization(rid("gateway"), gateway_agency, GATEWAY_NAME)
    recipient_org = _agency_organization(rid("recipient"), destination.uri, destination.name)
    communication = {
        "resourceType": "Communication", "id": rid("communication"), "status": "completed",
        "category": [{"coding": [_event(S.EVENT_OVERDUE)]}],
        "priority": "asap" if escalation else "urgent",
        "about": [_message_reference(about_message_id, "the message whose deadline passed")],
        "sent": _instant(now), "recipient": [_ref(recipient_org)], "sender": _ref(gateway_org),
        "payload": [{"contentString": text}],
    }
    message_header = _gateway_header(rid, S.EVENT_OVERDUE, destination, recipient_org, gateway_org, gateway_agency,
                                     [communication])
    return _message(rid("bundle"), now, message_header, gateway_org, recipient_org, communication)
