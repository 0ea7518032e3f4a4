"""The flagged-accounts feed: one record per account whose standing changed, for services that act on
flagged accounts (suspend, step up, rate-limit) — the compacted topic ``fraud-flagged-accounts``,
key = ``account_id``, so the latest record per key is the account's state and a consumer that reads
the topic from its start knows every flagged account.

An account is *flagged* while it is a member of an open **actionable** alert (severity medium or
high). A record (``flagged: true``) when an account enters such an alert, or when the alert becomes
actionable or changes severity (every member again, with the new severity); ``flagged: false`` when it
leaves one: it left the operation (split away, expired from the window), or the alert closed
(expired, merged into another, marked benign). Derived from every alert version in order — the
membership deltas the audit store receives too, not only the published versions — in the tick that
changed them.

    >>> from graph.alerts import AlertUpdate
    >>> def v(action, version, severity, added=(), removed=(), reason="r"):
    ...     return AlertUpdate("A-C1", "C1", action, True, version, severity, 0.5, 3, 0.0, 60.0 * version, 0.0,
    ...                        reason, {}, (), tuple(added), tuple(removed))
    >>> feed = FlaggedAccounts()
    >>> feed.apply(v("opened", 1, "low", ["a", "b"]))      # low: a lead, nobody to act on
    []
    >>> [(r.account_id, r.flagged, r.severity) for r in feed.apply(v("escalated", 2, "medium", ["c"]))]
    [('a', True, 'medium'), ('b', True, 'medium'), ('c', True, 'medium')]
    >>> [(r.account_id, r.flagged) for r in feed.apply(v("members", 3, "medium", ["d"], ["a"]))]
    [('d', True), ('a', False)]
    >>> sorted(feed.flagged())
    ['b', 'c', 'd']
    >>> [(r.account_id, r.flagged, r.reason) for r in feed.apply(v("closed", 4, "medium", reason="benign"))]
    [('b', False, 'benign'), ('c', False, 'benign'), ('d', False, 'benign')]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from graph.alerts import AlertUpdate
from graph.vocab import AlertAction, Severity
from streams.runtime.keys import hmac_hex

ACTIONABLE = frozenset({Severity.MEDIUM.value, Severity.HIGH.value})


@dataclass(frozen=True, slots=True)
class FlagRecord:
    account_id: str
    alert_id: str
    cluster_id: str
    severity: str
    flagged: bool
    version: int  # the alert version that changed the account's standing
    reason: str
    at: float  # event time of that version's tick

    def key(self) -> bytes:
        return self.account_id.encode()

    def fields(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "alert_id": self.alert_id, "cluster_id": self.cluster_id,
                "severity": self.severity, "flagged": self.flagged, "version": self.version, "reason": self.reason,
                "event_time": datetime.fromtimestamp(self.at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")}


@dataclass(slots=True)
class _Alert:
    cluster_id: str
    severity: str
    members: set[str]


class FlaggedAccounts:
    """Which accounts open actionable alerts hold, kept from the alert versions in order."""

    def __init__(self) -> None:
        self.alerts: dict[str, _Alert] = {}  # every open alert (a low one may become actionable)
        self.by_account: dict[str, str] = {}  # flagged account -> the alert that flags it

    def flagged(self) -> set[str]:
        return set(self.by_account)

    def apply(self, u: AlertUpdate) -> list[FlagRecord]:
        out: list[FlagRecord] = []

        def record(account: str, flagged: bool, severity: str, reason: str) -> None:
            if flagged:
                self.by_account[account] = u.alert_id
            elif self.by_account.get(account) == u.alert_id:
                del self.by_account[account]
            else:
                return  # flagged by another alert now (it moved), or never flagged
            out.append(FlagRecord(account, u.alert_id, u.cluster_id, severity, flagged, u.version, reason,
                                  u.alerted_at))

        state = self.alerts.get(u.alert_id)
        if u.action == AlertAction.CLOSED:
            if state is not None:
                del self.alerts[u.alert_id]
                if state.severity in ACTIONABLE:
                    for account in sorted(state.members):
                        record(account, False, state.severity, u.reason)
            return out
        if state is None:
            state = self.alerts[u.alert_id] = _Alert(u.cluster_id, u.severity, set())
            before = None
        else:
            before = state.severity
        state.members.update(u.members_added)
        state.members.difference_update(u.members_removed)
        state.severity = u.severity
        if u.severity not in ACTIONABLE:
            return out
        if before != u.severity:  # newly actionable, or another severity: every member states it
            for account in sorted(state.members):
                record(account, True, u.severity, u.action)
        else:
            for account in u.members_added:
                record(account, True, u.severity, "joined the operation")
        for account in u.members_removed:
            record(account, False, u.severity, "left the operation")
        return out

    # -- checkpoints --------------------------------------------------------------------------------
    def to_json(self) -> list[Any]:
        return [[alert_id, a.cluster_id, a.severity, sorted(a.members)] for alert_id, a in sorted(self.alerts.items())]

    @classmethod
    def from_json(cls, data: list[Any]) -> FlaggedAccounts:
        feed = cls()
        for alert_id, cluster_id, severity, members in data:
            feed.alerts[str(alert_id)] = _Alert(str(cluster_id), str(severity), {str(m) for m in members})
        for alert_id, a in sorted(feed.alerts.items()):
            if a.severity in ACTIONABLE:
                for account in a.members:
                    feed.by_account[account] = alert_id
        return feed


def encode(record: FlagRecord, key: bytes | None = None) -> bytes:
    """The record's value: JSON, signed (``signature``, HMAC-SHA256 as verdicts are) with ``key``."""
    fields = record.fields()
    if key is not None:
        fields["signature"] = hmac_hex(key, orjson.dumps(fields, option=orjson.OPT_SORT_KEYS))
    return orjson.dumps(fields)
