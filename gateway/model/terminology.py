"""The national code lists the gateway owns, defined once as data.

The FHIR CodeSystems and ValueSets under ``docs/fhir/`` are generated from
these tables, and the mappings' ConceptMaps target them.
"""

from __future__ import annotations

from gateway.model import systems as S

# code -> (display, definition)
CONCERN_CATEGORIES: dict[str, tuple[str, str]] = {
    "physical": ("Physical abuse", "Hitting, shaking, throwing, burning or otherwise causing physical harm."),
    "emotional": ("Emotional abuse", "Persistent emotional maltreatment with severe effects on development."),
    "sexual": ("Sexual abuse", "Forcing or enticing a child to take part in sexual activities."),
    "neglect": ("Neglect", "Persistent failure to meet a child's basic physical or psychological needs."),
    "domestic-abuse": ("Domestic abuse", "The child sees, hears or experiences domestic abuse, or its effects."),
    "child-on-child": ("Child-on-child abuse", "Abuse by another child, including sexual violence and harassment."),
    "online": ("Online harm", "Harm through online contact, content, conduct or commerce."),
    "self-harm": ("Self-harm", "The child harms themself."),
    "mental-health": ("Mental health", "A mental-health concern that puts the child at risk."),
    "radicalisation": ("Radicalisation", "Risk of being drawn into terrorism or extremism."),
    "fgm": ("Female genital mutilation", "FGM done or at risk."),
    "cse": ("Child sexual exploitation", "Sexual abuse in exchange for something the child needs or wants."),
    "cce": ("Child criminal exploitation", "Coercion into criminal activity, including county lines."),
    "missing": ("Missing", "Missing from home, care or education."),
    "honour-based": ("Honour-based abuse", "Abuse committed to protect or defend a family's or community's honour."),
    "other": ("Other", "A safeguarding concern that fits no other category."),
}

# Labels that describe the record but are not kinds of harm.
CONCERN_CONTEXT: dict[str, tuple[str, str]] = {
    "disclosure": ("Disclosure", "The child told someone; not a kind of harm by itself."),
    "attendance": ("Attendance", "Attendance; not a safeguarding category on its own."),
    "behaviour": ("Behaviour", "Behaviour; not a safeguarding category on its own."),
    "bullying": ("Bullying", "Bullying; not a safeguarding category on its own."),
    "medical": ("Medical", "Medical; not a safeguarding category on its own."),
}

MESSAGE_EVENTS: dict[str, tuple[str, str]] = {
    S.EVENT_REFERRAL: ("Safeguarding referral", "A referral to children's services about a child."),
    S.EVENT_CONCERN: ("Safeguarding concern record", "A concern recorded by an agency that is not a referral."),
    S.EVENT_ENCOMPASS: ("Operation Encompass notification",
                        "Police tell a child's school of a domestic-abuse incident before the next school day."),
    S.EVENT_OUTCOME: ("Referral outcome", "A local authority's decision on a referral, for the referrer."),
    S.EVENT_ALERT: ("Safeguarding alert",
                    "The gateway tells a child's home local authority (and the school that already knows) that an "
                    "escalation rule fired: a pattern across agencies' messages about the child or household."),
    S.EVENT_OVERDUE: ("Deadline overdue",
                      "The gateway tells an agency, then its escalation contact, that something due from it is late."),
}
