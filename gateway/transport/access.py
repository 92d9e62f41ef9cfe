"""Who may send what to whom: the one table the intake enforces and ``docs/access-control.md`` shows.

:data:`MESSAGE_RULES` is the message-kind part of the access-control matrix,
as data: for each message kind (a ``MessageHeader.eventCoding`` code, or a
response), the agency kinds that may send it and to whom. The intake
(:class:`gateway.transport.intake.MessageIntake`) enforces it in two steps:

* :func:`check_message_kind` (no database): the sender's kind may send this
  kind of message at all; a message kind not in the table is refused;
* :func:`check_destination` (inside the accepting transaction, before the
  routing step): an LA's referral outcome answers a referral that was
  delivered to it and goes back to that referral's sender; a response
  answers a message delivered to the responder and goes back to that
  message's sender.

Each refusal is a :class:`~gateway.transport.intake.Refused` (403
``forbidden``, an OperationOutcome naming the rule). ``python -m
gateway.transport.access`` rewrites the table in ``docs/access-control.md``
from :data:`MESSAGE_RULES` (``--check`` says whether it is up to date).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from sqlalchemy import select

from gateway.model import systems as S
from gateway.model.terminology import MESSAGE_EVENTS
from gateway.signing.messages import resolve_reference

#: The message kind of a response (``MessageHeader.response`` present), whatever its event.
RESPONSE = "response"

# To whom a message kind may go (:attr:`MessageRule.destination`).
ROUTED = "routed"          # routing decides from the content; MessageHeader.destination plays no part
KEPT = "kept"              # nobody: kept and linked
REFERRER = "referrer"      # the sender of a referral that was delivered to this sender
ORIGINAL_SENDER = "original-sender"  # the sender of a message that was delivered to this sender
ADDRESSED = "addressed"    # MessageHeader.destination, any agency in the directory

DESTINATION_TEXT = {
    ROUTED: "routing decides (the child's home LA; Operation Encompass for a police domestic-abuse notice)",
    KEPT: "nobody: kept and linked into the child's chronology",
    REFERRER: "only the agency that sent the referral it answers, and only about a referral delivered to this LA",
    ORIGINAL_SENDER: "only the sender of a message that was delivered to this agency",
    ADDRESSED: "the agencies in MessageHeader.destination",
}


@dataclasses.dataclass(frozen=True)
class MessageRule:
    """One message kind: who may send it (agency kinds, each only as itself) and to whom."""

    kind: str                  # a message event code (gateway.model.systems EVENT_*), or RESPONSE
    senders: tuple[str, ...]   # agency kinds (gateway.model.systems AGENCY_KINDS)
    destination: str           # ROUTED, KEPT, REFERRER, ORIGINAL_SENDER or ADDRESSED
    note: str = ""

    @property
    def label(self) -> str:
        if self.kind == RESPONSE:
            return "Response (acknowledgement)"
        return MESSAGE_EVENTS[self.kind][0] if self.kind in MESSAGE_EVENTS else self.kind


#: The matrix: every message kind the intake accepts, and from whom. Anything else is refused.
MESSAGE_RULES: tuple[MessageRule, ...] = (
    MessageRule(S.EVENT_REFERRAL, ("school", "police"), ROUTED,
                "a school's referral; a police force's notice (PPN)"),
    MessageRule(S.EVENT_CONCERN, ("school",), KEPT),
    MessageRule(S.EVENT_OUTCOME, ("la",), REFERRER,
                "Task.input valueIdentifier (urn:ietf:rfc:3986) names the referral's message id"),
    MessageRule(S.EVENT_ENCOMPASS, ("gateway",), ADDRESSED, "built by the gateway from a police notice"),
    MessageRule(S.EVENT_ALERT, ("gateway",), ADDRESSED, "built by the gateway when an escalation rule fires"),
    MessageRule(S.EVENT_OVERDUE, ("gateway",), ADDRESSED, "built by the gateway when a deadline passes"),
    MessageRule(RESPONSE, S.AGENCY_KINDS, ORIGINAL_SENDER,
                "MessageHeader.response.identifier is the MessageHeader.id of the message delivered"),
)

RULES_BY_KIND = {rule.kind: rule for rule in MESSAGE_RULES}
AGENCY_KIND_TEXT = {"school": "school", "police": "police force", "la": "local authority (children's services)",
                    "gateway": "the gateway (operators)"}
_AN_AGENCY_OF_KIND = {"school": "a school", "police": "a police force",
                      "la": "a local authority (children's services)", "gateway": "the gateway"}
_REFERRAL_RULES = ("school-referral-to-home-la", "police-notice-to-home-la", "referral-to-home-la")


def message_kind(header: dict) -> str | None:
    """Return the message kind of a MessageHeader: :data:`RESPONSE`, its event code, or ``None`` (no event)."""
    if isinstance(header.get("response"), dict):
        return RESPONSE
    coding = header.get("eventCoding")
    code = coding.get("code") if isinstance(coding, dict) else None
    return code if isinstance(code, str) else None


def check_message_kind(header: dict, agency: str) -> MessageRule:
    """Return the rule that lets ``agency`` send a message with this MessageHeader.

    Raises :class:`~gateway.transport.intake.Refused`: 400 when the header
    has no event, 403 when no agency may send this kind of message or this
    agency's kind may not.
    """
    from gateway.transport.intake import Refused

    kind = message_kind(header)
    if kind is None:
        raise Refused(400, "required", "MessageHeader.eventCoding.code (the kind of message) is required",
                      "MessageHeader.eventCoding")
    rule = RULES_BY_KIND.get(kind)
    if rule is None:
        known = ", ".join(r.kind for r in MESSAGE_RULES if r.kind != RESPONSE)
        raise Refused(403, "forbidden", f"no agency may send a {kind!r} message through the gateway; the message "
                      f"kinds are {known}, and responses", "MessageHeader.eventCoding")
    agency_kind = S.parse_agency_uri(agency)[0]
    if agency_kind not in rule.senders:
        who = " or ".join(_AN_AGENCY_OF_KIND[k] for k in rule.senders)
        only = "only the gateway builds these" if rule.senders == ("gateway",) else f"only {who} may send one"
        what = rule.label if rule.label.startswith("Operation") else rule.label[0].lower() + rule.label[1:]
        sender = _AN_AGENCY_OF_KIND[agency_kind]
        article = "an" if what[0].lower() in "aeiou" else "a"
        raise Refused(403, "forbidden", f"{sender[0].upper()}{sender[1:]} ({agency}) may not send {article} {what} "
                      f"message: {only} (docs/access-control.md)", "MessageHeader.eventCoding")
    return rule


def check_destination(session, bundle: dict, header: dict, rule: MessageRule, agency: str,
                      gateway_agency: str) -> None:
    """Refuse a message addressed to someone ``agency`` may not send it to (see :data:`MESSAGE_RULES`).

    ``session`` is the accepting transaction's SQLAlchemy session (the
    delivery and accepted-message tables are read in it). Returns ``None``;
    raises :class:`~gateway.transport.intake.Refused` (403, 400 when the
    message does not say what it answers).
    """
    if rule.destination == REFERRER:
        _check_outcome(session, bundle, header, agency)
    elif rule.destination == ORIGINAL_SENDER:
        _check_response(session, header, agency, gateway_agency)


def _destinations(header: dict) -> list[str]:
    return [d.get("endpoint") for d in header.get("destination") or () if isinstance(d, dict)]


def _check_addressed_to(header: dict, wanted: str, what: str) -> None:
    from gateway.transport.intake import Refused

    destinations = _destinations(header)
    if destinations != [wanted]:
        named = ", ".join(str(d) for d in destinations) or "nobody"
        raise Refused(403, "forbidden", f"MessageHeader.destination names {named}; {what} may go only to {wanted}",
                      "MessageHeader.destination")


def _answered_referral(bundle: dict, header: dict) -> str | None:
    """The message id the outcome's Task.input names (urn:ietf:rfc:3986), or ``None``."""
    tasks = [resolve_reference(bundle, f["reference"]) for f in header.get("focus") or ()
             if isinstance(f, dict) and isinstance(f.get("reference"), str)]
    tasks = [t for t in tasks if isinstance(t, dict) and t.get("resourceType") == "Task"]
    for task in tasks:
        for item in task.get("input") or ():
            value = item.get("valueIdentifier") if isinstance(item, dict) else None
            if isinstance(value, dict) and value.get("system") == S.MESSAGE_ID and isinstance(value.get("value"), str):
                return value["value"]
    return None


def _check_outcome(session, bundle: dict, header: dict, agency: str) -> None:
    from gateway.delivery.models import KIND_MESSAGE, DeliveryRow
    from gateway.store.models import AcceptedMessageRow
    from gateway.transport.intake import Refused

    referral = _answered_referral(bundle, header)
    if referral is None:
        raise Refused(400, "required", "a referral outcome's Task (MessageHeader.focus) must name the referral it "
                      "answers: Task.input.valueIdentifier with system urn:ietf:rfc:3986 and the referral's "
                      "message id", "Task.input")
    found = session.execute(
        select(AcceptedMessageRow.sender_agency)
        .join(DeliveryRow, DeliveryRow.message_id == AcceptedMessageRow.message_id)
        .where(DeliveryRow.message_id == referral, DeliveryRow.destination == agency,
               DeliveryRow.kind == KIND_MESSAGE, DeliveryRow.payload_message_id == referral,
               DeliveryRow.rule.in_(_REFERRAL_RULES))
        .limit(1)).first()
    if found is None:
        raise Refused(403, "forbidden", f"referral {referral} was not delivered to {agency}: an LA may only decide "
                      "on referrals it received", "Task.input")
    _check_addressed_to(header, found.sender_agency, f"the outcome of referral {referral}")


def _check_response(session, header: dict, agency: str, gateway_agency: str) -> None:
    from gateway.delivery.models import KIND_MESSAGE, DeliveryRow
    from gateway.store.models import AcceptedMessageRow
    from gateway.transport.intake import Refused

    answers = header["response"].get("identifier")
    if not isinstance(answers, str) or not answers:
        raise Refused(400, "required", "MessageHeader.response.identifier (the MessageHeader.id of the message "
                      "answered) is required", "MessageHeader.response.identifier")
    # MessageHeader.id is unique only per sender: every message with that id delivered to this agency counts.
    delivered = session.execute(
        select(DeliveryRow.kind, DeliveryRow.message_id, DeliveryRow.payload_message_id,
               AcceptedMessageRow.sender_agency)
        .join(AcceptedMessageRow, AcceptedMessageRow.message_id == DeliveryRow.message_id)
        .where(DeliveryRow.destination == agency, DeliveryRow.payload_header_id == answers)).all()
    if not delivered:
        raise Refused(403, "forbidden", f"no message with MessageHeader.id {answers} was delivered to {agency}: an "
                      "agency may only answer messages it received", "MessageHeader.response.identifier")
    # A message delivered as received answers to its sender; one the gateway built, to the gateway.
    senders = {row.sender_agency if row.kind == KIND_MESSAGE and row.payload_message_id == row.message_id
               else gateway_agency for row in delivered}
    destinations = _destinations(header)
    if len(destinations) != 1 or destinations[0] not in senders:
        named = ", ".join(str(d) for d in destinations) or "nobody"
        raise Refused(403, "forbidden", f"MessageHeader.destination names {named}; a response may go only to the "
                      f"sender of the message it answers ({', '.join(sorted(senders))})",
                      "MessageHeader.destination")


# The table in docs/access-control.md ------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "access-control.md"
BEGIN = "<!-- message-matrix: generated by `python -m gateway.transport.access` from MESSAGE_RULES -->"
END = "<!-- end of message-matrix -->"


def render_matrix() -> str:
    """Return the message-kind matrix as a Markdown table (the generated part of the docs)."""
    kinds = S.AGENCY_KINDS
    lines = ["| message kind | event code | " + " | ".join(AGENCY_KIND_TEXT[k] for k in kinds) + " | to whom |",
             "|---|---|" + "---|" * len(kinds) + "---|"]
    for rule in MESSAGE_RULES:
        cells = ["yes, as itself" if k in rule.senders else "**403**" for k in kinds]
        code = "(any, with `MessageHeader.response`)" if rule.kind == RESPONSE else f"`{rule.kind}`"
        to = DESTINATION_TEXT[rule.destination] + (f"; {rule.note}" if rule.note else "")
        lines.append(f"| {rule.label} | {code} | " + " | ".join(cells) + f" | {to} |")
    lines.append("| anything else | | " + " | ".join(["**403**"] * len(kinds)) + " | |")
    return "\n".join(lines) + "\n"


def render_docs(text: str) -> str:
    """Return ``text`` (the docs page) with its generated table replaced by :func:`render_matrix`.

    Raises :class:`ValueError` when the page lacks the markers.
    """
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{DOCS} lacks the lines {BEGIN!r} and {END!r} around the generated table")
    return text[:start] + BEGIN + "\n\n" + render_matrix() + "\n" + text[end:]


if __name__ == "__main__":
    current = DOCS.read_text(encoding="utf-8")
    wanted = render_docs(current)
    if "--check" in sys.argv:
        print(f"{DOCS.name} is up to date" if current == wanted else
              f"{DOCS.name} is out of date: run python -m gateway.transport.access")
        sys.exit(0 if current == wanted else 1)
    DOCS.write_text(wanted, encoding="utf-8")
    print(f"wrote {DOCS}")
