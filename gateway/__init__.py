"""National safeguarding interoperability gateway.

Translates school safeguarding exports and police Public Protection Notices
into one FHIR R4 model, checks them against the national referral standard,
signs and routes them to the right agency, and links what agencies know
about the same child.
"""

__version__ = "0.1.0"
