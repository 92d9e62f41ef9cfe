"""Where the referral standard puts the items the model had no place for yet.

These URLs follow :mod:`gateway.model.systems` (the same base and the same
``extension_url`` rule) but live here because the referral standard defines
them; the model's builder and the mappings can fill them as sources start to
carry the information. ``docs/referral-standard.md`` and the
StructureDefinitions under ``docs/fhir/`` are generated from
:data:`EXTENSIONS`, which describes every extension the gateway uses (these
and the model's).
"""

from __future__ import annotations

import dataclasses

from gateway.model import systems as S

# New extensions -----------------------------------------------------------------
# What the referrer asks children's services to do (assessment, strategy discussion, early help...).
EXT_REQUESTED_ACTION = S.EXT_REQUESTED_ACTION
# The lawful basis for sharing without consent (e.g. "UK GDPR 6(1)(e); DPA 2018 Sch 8 para 18").
EXT_LAWFUL_BASIS = S.EXT_LAWFUL_BASIS
# Why the child's words are not recorded: a code from CHILDS_VOICE_ABSENT (too young, not spoken to...).
EXT_CHILDS_VOICE_ABSENT_REASON = S.EXT_CHILDS_VOICE_ABSENT_REASON
# Why the parents were not told of the referral when parents-informed is "no".
EXT_PARENTS_NOT_INFORMED_REASON = S.EXT_PARENTS_NOT_INFORMED_REASON
# An unborn child: the expected due date stands in for the date of birth.
EXT_EXPECTED_DUE_DATE = S.EXT_EXPECTED_DUE_DATE

# Code systems the standard defines ---------------------------------------------------
# One code per item of the minimum dataset; an OperationOutcome issue names its item with it.
STANDARD_ITEM = f"{S.BASE}/CodeSystem/referral-standard-item"
CHILDS_VOICE_ABSENT = S.CHILDS_VOICE_ABSENT
CHILDS_VOICE_ABSENT_CODES: dict[str, tuple[str, str]] = {
    "too-young": ("Too young", "The child is too young to give an account."),
    "not-spoken-to": ("Not spoken to", "Nobody has spoken to the child about the concern yet."),
    "non-verbal": ("Non-verbal", "The child does not communicate verbally; how they communicated is in the narrative."),
    "declined": ("Declined", "The child did not want to talk about it."),
    "unsafe": ("Unsafe", "Speaking to the child now would put them at risk."),
}
PARENTS_INFORMED_CODES: dict[str, tuple[str, str]] = {
    "yes": ("Yes", "The parents or carers know of the referral."),
    "no": ("No", "The parents or carers have not been told; the reason goes in parents-not-informed-reason."),
    "not-safe": ("Not safe", "Not told because informing them would put the child at risk."),
}


@dataclasses.dataclass(frozen=True)
class Extension:
    """One extension the gateway uses: where it may appear and what it holds."""

    url: str
    context: tuple[str, ...]
    value: tuple[str, ...]
    title: str
    definition: str
    repeats: bool = False

    @property
    def max(self) -> str:
        """How many times the extension may appear on one element: ``"*"`` or ``"1"``."""
        return "*" if self.repeats else "1"

    @property
    def name(self) -> str:
        """The last part of the URL, e.g. ``child-spoken-to``."""
        return self.url.rsplit("/", 1)[-1]


def _e(url: str, context: str, value: str, title: str, definition: str, repeats: bool = False) -> Extension:
    return Extension(url, tuple(context.split()), tuple(value.split()), title, definition, repeats)


# Every extension the gateway puts in messages, the model's and the standard's.
EXTENSIONS: tuple[Extension, ...] = (
    _e(S.EXT_PARENTAL_RESPONSIBILITY, "RelatedPerson", "boolean", "Parental responsibility",
       "Whether this person holds parental responsibility for the child (Children Act 1989 s3)."),
    _e(S.EXT_LIVES_WITH_CHILD, "RelatedPerson", "boolean", "Lives with the child",
       "Whether this person is a member of the child's household."),
    _e(S.EXT_ALLEGED_HARM, "RelatedPerson", "boolean", "Alleged to have caused harm",
       "Whether this person is alleged to have caused harm to the child."),
    _e(S.EXT_PARTICIPANT_ROLE, "RelatedPerson", "Coding", "Participant role",
       "The person's role in a police notice: Victim, Suspect, Child, OtherAdult."),
    _e(S.EXT_CHILDS_VOICE, "ServiceRequest", "string", "Child's voice",
       "What the child said, in their own words."),
    _e(EXT_CHILDS_VOICE_ABSENT_REASON, "ServiceRequest", "code", "Why the child's voice is absent",
       f"Why the child's words are not recorded; a code from {CHILDS_VOICE_ABSENT}."),
    _e(S.EXT_CHILD_SPOKEN_TO, "ServiceRequest", "boolean", "Child spoken to",
       "Whether staff spoke to the child about the concern."),
    _e(S.EXT_PARENTS_INFORMED, "ServiceRequest", "Coding", "Parents informed",
       f"Whether the parents or carers know of the referral; a code from {S.PARENTS_INFORMED}."),
    _e(EXT_PARENTS_NOT_INFORMED_REASON, "ServiceRequest", "string", "Why parents were not informed",
       "Why the parents or carers were not told of the referral."),
    _e(S.EXT_DISCLOSURE, "ServiceRequest", "boolean", "Disclosure",
       "The child told someone; a context of the concern, not a kind of harm."),
    _e(S.EXT_UNMAPPED_CATEGORY, "CodeableConcept", "boolean", "Unmapped category",
       "The sender's category label has no national code; kept verbatim in text."),
    _e(S.EXT_IDENTIFIER_INVALID, "Identifier", "string", "Identifier invalid",
       "The identifier failed its check (the text says why); it is kept but never used for linking."),
    _e(S.EXT_SOURCE_LOCATION, "Provenance", "string", "Source location",
       "The row, JSON pointer or XPath of the record in the source file."),
    _e(S.EXT_MAPPING_VERSION, "Provenance", "string", "Mapping version",
       "The source format and the version of the mapping that translated the record."),
    _e(S.EXT_SIGNATURE_PRESENT, "Provenance", "boolean", "Source signature present",
       "Whether the source record carried a signature of its own."),
    _e(S.EXT_SENDER_SIGNATURE, "Bundle.signature", "Signature", "Sender signature",
       "The sending agency's signature over the message, kept inside the gateway's counter-signature "
       "(Bundle.signature) when the gateway counter-signs a signed message."),
    _e(S.EXT_COMPLETENESS, "OperationOutcome", "integer", "Completeness score",
       "The share (0-100) of the referral standard's applicable SHOULD items that the message holds."),
    _e(S.EXT_SUBMITTED, "ServiceRequest", "dateTime date", "Submitted at",
       "When the sending agency submitted the record (a police notice's SubmittedAt)."),
    _e(S.EXT_PRESENT_AT_INCIDENT, "ServiceRequest", "boolean", "Present at incident",
       "Whether the child was present, or in the household, at the time of the incident."),
    _e(S.EXT_CONSENT_TO_SHARE, "ServiceRequest", "code", "Consent to share",
       "Whether consent to share was given: Yes, No or NotAsked (as the source says)."),
    _e(EXT_LAWFUL_BASIS, "ServiceRequest", "string", "Lawful basis for sharing without consent",
       "The lawful basis on which the information is shared without consent."),
    _e(S.EXT_EVIDENCE_SECURED, "Observation", "boolean", "Evidence secured",
       "Whether an evidence item was secured (also carried as the 'secured' component)."),
    _e(S.EXT_TRANSLATION_ISSUE, "Provenance", "string", "Translation issue",
       "Something the translator noticed and kept with the message (an unmapped code, an assumed time zone).",
       repeats=True),
    _e(S.EXT_YEAR_GROUP, "Patient", "string", "Year group", "The child's school year group."),
    _e(S.EXT_SCHOOL, "Patient", "Reference", "School", "The Organization of the school the child attends."),
    _e(S.EXT_OCCURRED, "ServiceRequest", "dateTime date", "Occurred at",
       "When the incident or concern happened (a date alone when the time is unknown)."),
    _e(S.EXT_REPORTED, "ServiceRequest", "dateTime date", "Reported to police at", "When police were called."),
    _e(S.EXT_REFERRED_TO, "ServiceRequest", "string", "Referred to",
       "The service the sender says it referred to (MASH, Early Help...)."),
    _e(S.EXT_IMMEDIATE_RISK, "ServiceRequest", "boolean", "Immediate risk",
       "Whether the referrer believes the child is at immediate risk of significant harm."),
    _e(S.EXT_NHS_NUMBER_ABSENT_REASON, "Patient", "string", "Reason NHS number absent",
       "Why the child's NHS number is not given (not known to the sender, not yet traced...)."),
    _e(S.EXT_SOURCE_STATUS, "ServiceRequest", "string", "Source status",
       "The record's status in the sending system (Open, Referred, Closed...)."),
    _e(EXT_REQUESTED_ACTION, "ServiceRequest", "string", "Requested action",
       "What the referrer asks children's services to do (an assessment, a strategy discussion, early help...)."),
    _e(EXT_EXPECTED_DUE_DATE, "Patient", "date", "Expected due date",
       "For an unborn child: the expected date of birth, standing in for birthDate."),
)

BY_URL: dict[str, Extension] = {e.url: e for e in EXTENSIONS}
