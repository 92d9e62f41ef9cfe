"""The code systems the gateway's messages use beyond the national code lists, for publication.

The national lists (concern categories, message events...) are in
:mod:`gateway.model.terminology`; these are the codes the model's builder
writes from what the sources send: the PPN schema's enumerations
(``mappings/ppn-xml/ppn.xsd``), the builder's own codes (agency kinds, the
DASH ``completed`` component, evidence items) and the schools' risk
ratings. A test checks that every coding of every golden output is a code
published here or in the national lists, so a source that starts to send a
new code fails the build until it is published.

Each entry: ``(id, system, title, description, case_sensitive, {code: (display, definition)})``.
"""

from __future__ import annotations

from gateway.model import systems as S
from gateway.model.bundle import AGENCY_ORG_TYPE

DASH_QUESTIONS = 27  # the DASH risk identification checklist (SafeLives, 2009) has 27 questions

_AGENCY = {
    "school": ("School", "A school or academy, identified by its DfE URN."),
    "police": ("Police force", "A police force of England and Wales, identified by its force code."),
    "local-authority": ("Local authority", "A local authority's children's services, identified by its DfE number."),
    "gateway": ("Gateway", "The national safeguarding gateway itself."),
}

CODE_SYSTEMS: tuple[tuple[str, str, str, str, bool, dict[str, tuple[str, str]]], ...] = (
    ("agency-kind", f"{S.BASE}/CodeSystem/agency-kind", "Agency kinds",
     "The kind of agency an Organization of a message is (Organization.type).", True,
     {code: _AGENCY[code] for code in AGENCY_ORG_TYPE.values()}),
    ("ppn-notice-type", S.NOTICE_TYPE, "Police Public Protection Notice types",
     "The type of a police Public Protection Notice (the PPN schema's NoticeType).", True, {
         "DomesticAbuse": ("Domestic abuse", "A domestic-abuse incident the child was present at or lives with."),
         "ChildConcern": ("Child concern", "A concern about a child's welfare met by officers."),
         "AdultAtRisk": ("Adult at risk", "An adult at risk; sent on only when it names a child."),
         "MissingPerson": ("Missing person", "A missing-person report."),
     }),
    ("participant-role", S.PARTICIPANT_ROLE, "Participant roles in a police notice",
     "The role of a person named in a police notice (the PPN schema's Person role).", True, {
         "Victim": ("Victim", "The person harmed in the incident."),
         "Suspect": ("Suspect", "The person suspected of causing harm."),
         "Child": ("Child", "A child the notice is about."),
         "OtherAdult": ("Other adult", "Another adult present or in the household."),
     }),
    ("risk-kind", S.RISK_KIND, "Kinds of risk assessment",
     "What a risk Observation of a message records (Observation.code).", True, {
         "dash": ("DASH risk assessment", "The Domestic Abuse, Stalking and Harassment risk checklist."),
         "school-rating": ("School risk rating", "The sending school's own rating of the risk to the child."),
     }),
    ("dash-level", S.DASH_LEVEL, "DASH risk levels",
     "The level a DASH risk assessment gives (the PPN schema's Level); compared without regard to case.", False, {
         "Standard": ("Standard", "Current evidence does not indicate likelihood of causing serious harm."),
         "Medium": ("Medium", "There are identifiable indicators of risk of serious harm."),
         "High": ("High", "There are identifiable indicators of risk of serious harm; it could happen at any time."),
     }),
    ("dash-question", S.DASH_QUESTION, "DASH risk assessment questions",
     "A component of a DASH Observation: whether it was completed, or the number of a checklist question.", True, {
         "completed": ("Completed", "Whether the officer completed the DASH checklist (valueBoolean)."),
         **{str(q): (f"Question {q}", f"Question {q} of the DASH risk identification checklist.")
            for q in range(1, DASH_QUESTIONS + 1)},
     }),
    ("dash-question-answer", f"{S.DASH_QUESTION}-answer", "DASH answers",
     "The answer to one DASH checklist question (the PPN schema's answers).", True, {
         "Yes": ("Yes", "The answer is yes."),
         "No": ("No", "The answer is no."),
         "NotKnown": ("Not known", "The answer is not known."),
     }),
    ("evidence-type", S.EVIDENCE_TYPE, "Evidence",
     "An evidence item of a police notice (Observation.code), its kind (Observation.category, the PPN "
     "schema's evidence types) and whether it was secured (a component).", True, {
         S.EVIDENCE_ITEM: ("Evidence item", "An item of evidence gathered about the incident."),
         "secured": ("Secured", "Whether the evidence item was secured (component valueBoolean)."),
         "CCTV": ("CCTV", "Closed-circuit television footage."),
         "BodyWorn": ("Body-worn video", "Footage from officers' body-worn cameras."),
         "Photographs": ("Photographs", "Photographs taken at the scene or of injuries."),
         "Statement": ("Statement", "A written or recorded statement."),
         "Other": ("Other", "Any other evidence."),
     }),
    ("school-risk-rating", S.RISK_RATING, "School risk ratings",
     "A school's own rating of the risk to the child (RAG).", True, {
         "red": ("Red", "High risk: the school considers the child at significant risk."),
         "amber": ("Amber", "Medium risk."),
         "green": ("Green", "Low risk."),
     }),
)

_DISPLAYS = {url: {code: display for code, (display, _) in concepts.items()}
             for _, url, _, _, _, concepts in CODE_SYSTEMS}


def display(system: str, code: str | None) -> str | None:
    """The display of ``code`` in one of the code systems above (``system`` its URL), else None."""
    return _DISPLAYS.get(system, {}).get(code) if isinstance(system, str) and isinstance(code, str) else None
