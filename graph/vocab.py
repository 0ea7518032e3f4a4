"""The core's typed vocabularies and ids: one place for the words compared across modules."""

from __future__ import annotations

from enum import StrEnum


class EntityKind(StrEnum):
    DEVICE = "device"
    PAYMENT = "payment"
    IP = "ip"
    TEMPLATE = "template"  # a prompt template fingerprint
    LOCKSTEP = "lockstep"  # a template's lockstep cohort (derived, never in the input)
    OWNED_TEMPLATE = "owned_template"  # a template its users own as a group (derived, never in the input)


STRONG_KINDS = frozenset({EntityKind.DEVICE, EntityKind.PAYMENT})


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


SEVERITY_RANK: dict[str | None, int] = {None: 0, Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3}
ACTIONABLE = frozenset({Severity.MEDIUM, Severity.HIGH})


class AlertAction(StrEnum):
    OPENED = "opened"
    ESCALATED = "escalated"
    UPDATED = "updated"
    MEMBERS = "members"  # a membership delta for the audit store: no page, not on the alerts topic
    CLOSED = "closed"


class LineageKind(StrEnum):
    BORN = "born"
    GREW = "grew"
    SHRANK = "shrank"
    MERGED = "merged"
    MERGED_INTO = "merged_into"
    SPLIT = "split"
    EXPIRED = "expired"


class Verdict(StrEnum):
    BENIGN = "benign"
    CONFIRMED = "confirmed"


def cluster_id(number: int) -> str:
    """
    >>> cluster_id(12)
    'C0000012'
    """
    return f"C{number:07d}"
