"""Identifier systems, code systems and extension URLs the gateway defines.

These URIs are the project's own (under a reserved ``.example`` domain until
a national body publishes permanent ones) except for the NHS number, which
uses NHS England's system. ``docs/identifiers.md`` documents each one.
"""

BASE = "https://fhir.safeguarding-gateway.example"

# Identifier systems ---------------------------------------------------------
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
UPN = f"{BASE}/Id/upn"                        # DfE unique pupil number
SCHOOL_URN = f"{BASE}/Id/school-urn"          # DfE establishment URN
DFE_LA = f"{BASE}/Id/dfe-la-number"           # DfE local-authority number
POLICE_FORCE = f"{BASE}/Id/police-force"      # force short code (HAM, DOR, ...)
GATEWAY_ID = f"{BASE}/Id/gateway"
COLLAR_NUMBER = f"{BASE}/Id/police-collar-number"
PPN_NOTICE_ID = f"{BASE}/Id/ppn-notice-id"    # the PPN's NoticeId (UUID)
PPN_REFERENCE = f"{BASE}/Id/ppn-reference"    # the force's reference; NOT unique
CRIME_REFERENCE = f"{BASE}/Id/crime-reference"
MESSAGE_ID = "urn:ietf:rfc:3986"              # Bundle.identifier holds urn:uuid:<id>


def local_id_system(format_id: str, sender_code: str, kind: str = "record") -> str:
    """Return the identifier system for a vendor-local id.

    A vendor-local id (an ``Incident ID``, a concern ``id``, a person ``@id``)
    is unique only within one sender's system, so the system names the format
    and the sender: ``{BASE}/Id/local/schoolsafe-csv/999101/record``.
    """
    return f"{BASE}/Id/local/{format_id}/{sender_code}/{kind}"


# Agency identity (certificates, MessageHeader.source.endpoint) ---------------
AGENCY_URN_PREFIX = "urn:x-safeguarding:agency:"
AGENCY_KINDS = ("school", "police", "la", "gateway")
AGENCY_IDENTIFIER_SYSTEM = {
    "school": SCHOOL_URN,
    "police": POLICE_FORCE,
    "la": DFE_LA,
    "gateway": GATEWAY_ID,
}


def agency_uri(kind: str, code: str) -> str:
    """Return the agency identity URI, e.g. ``urn:x-safeguarding:agency:school:999101``."""
    if kind not in AGENCY_KINDS:
        raise ValueError(f"unknown agency kind {kind!r}; expected one of {', '.join(AGENCY_KINDS)}")
    return f"{AGENCY_URN_PREFIX}{kind}:{code}"


def parse_agency_uri(uri: str) -> tuple[str, str] | None:
    """Return ``(kind, code)`` for an agency URI, or ``None`` when it is not one."""
    if not uri.startswith(AGENCY_URN_PREFIX):
        return None
    kind, _, code = uri[len(AGENCY_URN_PREFIX):].partition(":")
    if kind not in AGENCY_KINDS or not code:
        return None
    return kind, code


# Code systems -----------------------------------------------------------------
CONCERN_CATEGORY = f"{BASE}/CodeSystem/concern-category"
# Labels that are not harms: a disclosure (the child told someone), attendance, behaviour...
CONCERN_CONTEXT = f"{BASE}/CodeSystem/concern-context"
MESSAGE_EVENT = f"{BASE}/CodeSystem/message-event"
RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
PARTICIPANT_ROLE = f"{BASE}/CodeSystem/participant-role"   # victim, suspect, child, other-adult
NOTICE_TYPE = f"{BASE}/CodeSystem/ppn-notice-type"
RISK_KIND = f"{BASE}/CodeSystem/risk-kind"                # dash, school-rating
DASH_LEVEL = f"{BASE}/CodeSystem/dash-level"
DASH_QUESTION = f"{BASE}/CodeSystem/dash-question"
EVIDENCE_TYPE = f"{BASE}/CodeSystem/evidence-type"
PARENTS_INFORMED = f"{BASE}/CodeSystem/parents-informed"
TRANSLATION_ISSUE = f"{BASE}/CodeSystem/translation-issue"
SOURCE_FORMAT = f"{BASE}/CodeSystem/source-format"

# Message events
EVENT_REFERRAL = "safeguarding-referral"
EVENT_CONCERN = "safeguarding-concern"
EVENT_ENCOMPASS = "operation-encompass-notification"
EVENT_OUTCOME = "referral-outcome"
# Built by the gateway itself (step 5): an escalation rule fired about a child, and a deadline passed.
EVENT_ALERT = "safeguarding-alert"
EVENT_OVERDUE = "deadline-overdue"

# Extensions ---------------------------------------------------------------------
def extension_url(name: str) -> str:
    """Return the URL of one of the gateway's StructureDefinition extensions."""
    return f"{BASE}/StructureDefinition/{name}"


EXT_PARENTAL_RESPONSIBILITY = extension_url("parental-responsibility")
EXT_LIVES_WITH_CHILD = extension_url("lives-with-child")
EXT_ALLEGED_HARM = extension_url("alleged-to-have-caused-harm")
EXT_PARTICIPANT_ROLE = extension_url("participant-role")
EXT_CHILDS_VOICE = extension_url("childs-voice")
EXT_CHILD_SPOKEN_TO = extension_url("child-spoken-to")
EXT_PARENTS_INFORMED = extension_url("parents-informed")
EXT_DISCLOSURE = extension_url("disclosure")
EXT_UNMAPPED_CATEGORY = extension_url("unmapped-category")
EXT_IDENTIFIER_INVALID = extension_url("identifier-invalid")
EXT_SOURCE_LOCATION = extension_url("source-location")
EXT_MAPPING_VERSION = extension_url("mapping-version")
EXT_SIGNATURE_PRESENT = extension_url("source-signature-present")
EXT_SENDER_SIGNATURE = extension_url("sender-signature")
EXT_COMPLETENESS = extension_url("completeness-score")
EXT_SUBMITTED = extension_url("submitted-at")
EXT_PRESENT_AT_INCIDENT = extension_url("present-at-incident")
EXT_CONSENT_TO_SHARE = extension_url("consent-to-share")
EXT_EVIDENCE_SECURED = extension_url("evidence-secured")
EXT_TRANSLATION_ISSUE = extension_url("translation-issue")
EXT_YEAR_GROUP = extension_url("year-group")
EXT_SCHOOL = extension_url("school")
EXT_OCCURRED = extension_url("event-occurred")
EXT_REPORTED = extension_url("reported-to-police-at")
EXT_REFERRED_TO = extension_url("referred-to")
EXT_IMMEDIATE_RISK = extension_url("immediate-risk")
EXT_NHS_NUMBER_ABSENT_REASON = extension_url("nhs-number-absent-reason")
EXT_SOURCE_STATUS = extension_url("source-status")
RISK_RATING = f"{BASE}/CodeSystem/school-risk-rating"
EVIDENCE_ITEM = "evidence-item"
# Places the national referral standard defines (gateway/validation/standard.yaml).
EXT_REQUESTED_ACTION = extension_url("requested-action")
EXT_LAWFUL_BASIS = extension_url("lawful-basis-without-consent")
EXT_CHILDS_VOICE_ABSENT_REASON = extension_url("childs-voice-absent-reason")
EXT_PARENTS_NOT_INFORMED_REASON = extension_url("parents-not-informed-reason")
EXT_EXPECTED_DUE_DATE = extension_url("expected-due-date")
CHILDS_VOICE_ABSENT = f"{BASE}/CodeSystem/childs-voice-absent-reason"
