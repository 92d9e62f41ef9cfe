"""Linkage: the person index, the chronology, escalation rules and deadlines ("one child, one picture")."""
