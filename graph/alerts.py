"""One alert per cluster for its whole life: opened, escalated, updated on real growth, closed.

Alert ids derive from cluster ids (``A-<cluster id>``, ``-2`` on a cluster that alerts again after a
close) and every publication carries a version, so sinks can write idempotently: the same replay
gives the same (alert_id, version) pairs. Member lists are exact: the kernel reports each tick's
member deltas and every version carries what changed since the previous one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from graph.config import DetectionConfig
from graph.scoring import Evidence
from graph.vocab import SEVERITY_RANK, AlertAction, Verdict


@dataclass(frozen=True, slots=True)
class AlertUpdate:
    alert_id: str
    cluster_id: str
    action: str  # graph.vocab.AlertAction
    notify: bool  # False for "members": a membership delta for the audit store, no page, no topic
    version: int
    severity: str
    score: float
    member_count: int
    detected_at: float  # event time of the event that made the cluster alert-worthy
    alerted_at: float  # event time of the detection tick that published this version
    created_at: float  # wall time the alert was (re)published
    reason: str
    features: dict[str, float]
    evidence: tuple[Evidence, ...]
    members_added: tuple[str, ...]
    members_removed: tuple[str, ...]
    requests: int = 0  # API exchanges of the members within the window, as of this version's tick
    tokens_out: int = 0
    evidence_json: str = "[]"
    summary: str = ""  # one sentence: why these accounts are one operation (graph.scoring.explain)


@dataclass(slots=True)
class _OpenAlert:
    alert_id: str
    severity: str
    version: int
    published_size: int
    members: set[str]
    detected_at: float
    score: float = 0.0
    features: dict[str, float] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()
    evidence_json: str = "[]"
    requests: int = 0
    tokens_out: int = 0
    added: set[str] = field(default_factory=set)  # since the last version
    removed: set[str] = field(default_factory=set)
    published_damage: tuple[int, int] = (0, 0)  # (exchanges, tokens) of the last notifying version
    summary: str = ""


def damage_moved(published: tuple[int, int], now: tuple[int, int], share: float) -> bool:
    """Has either damage figure moved by more than ``share`` of what was published (any move at 0)?

    >>> damage_moved((100, 1000), (109, 1050), 0.1), damage_moved((100, 1000), (111, 1000), 0.1)
    (False, True)
    >>> damage_moved((100, 1000), (100, 1001), 0.0), damage_moved((0, 0), (0, 0), 0.0)
    (True, False)
    """
    return any(b != a and abs(b - a) > share * a for a, b in zip(published, now, strict=True))


class AlertBook:
    def __init__(self, config: DetectionConfig) -> None:
        self.config = config
        self.open: dict[str, _OpenAlert] = {}  # cluster id -> its alert
        self.generations: dict[str, int] = {}

    def on_deltas(self, cluster_id: str, added: Iterable[str], removed: Iterable[str]) -> None:
        """A tick's member changes of a cluster (kept for its alert's next version)."""
        current = self.open.get(cluster_id)
        if current is None:
            return
        for a in added:
            if a not in current.members:
                current.members.add(a)
                if a in current.removed:
                    current.removed.discard(a)
                else:
                    current.added.add(a)
        for a in removed:
            if a in current.members:
                current.members.discard(a)
                if a in current.added:
                    current.added.discard(a)
                else:
                    current.removed.add(a)

    def on_scored(self, cluster_id: str, members: Iterable[str] | None, size: int, verdict: str | None,
                  severity: str | None, score: float, features: dict[str, float], evidence: tuple[Evidence, ...],
                  detected_at: float, requests: int, tokens_out: int, at: float, wall: float, reason: str,
                  evidence_json: str = "[]", damage_regrowth: float | None = None,
                  summary: str = "", settling: bool = False) -> AlertUpdate | None:
        """A re-score. ``members`` (all of them) is needed only when this opens an alert.
        ``damage_regrowth``: how far the damage may have moved since the last publication before this
        re-score publishes it (default ``config.damage_regrowth``; 0 at the end of input).
        ``settling``: the input is over or idle, so a size that differs from the last publication's is
        published too (the topic's last version states the cluster as the audit store has it)."""
        current = self.open.get(cluster_id)
        if current is None:
            if severity is None:
                return None
            generation = self.generations[cluster_id] = self.generations.get(cluster_id, 0) + 1
            alert_id = f"A-{cluster_id}" + (f"-{generation}" if generation > 1 else "")
            everyone = set(members or ())
            current = self.open[cluster_id] = _OpenAlert(alert_id, severity, 0, 0, everyone, detected_at,
                                                         added=set(everyone))
            action = AlertAction.OPENED
        elif SEVERITY_RANK[severity] > SEVERITY_RANK[current.severity]:
            action = AlertAction.ESCALATED  # severity never drops while the alert is open: no flapping pages
        elif verdict == Verdict.CONFIRMED and current.added:
            action = AlertAction.UPDATED
        elif size >= current.published_size * (1 + self.config.alert_regrowth):
            action = AlertAction.UPDATED
        elif damage_moved(current.published_damage, (requests, tokens_out),
                          self.config.damage_regrowth if damage_regrowth is None else damage_regrowth):
            action, reason = AlertAction.UPDATED, "damage moved"
        elif settling and size != current.published_size:
            action, reason = AlertAction.UPDATED, "settled"
        elif current.added or current.removed:
            action = AlertAction.MEMBERS  # keep the audit store's member list exact between publications
        else:
            current.score, current.features, current.evidence = score, features, evidence
            current.evidence_json, current.requests, current.tokens_out = evidence_json, requests, tokens_out
            current.summary = summary
            return None
        if SEVERITY_RANK[severity] > SEVERITY_RANK[current.severity]:
            current.severity = severity  # type: ignore[assignment]
            current.detected_at = detected_at
        current.score, current.features, current.evidence = score, features, evidence
        current.evidence_json, current.requests, current.tokens_out = evidence_json, requests, tokens_out
        current.summary = summary
        notify = action != AlertAction.MEMBERS
        if notify:
            current.published_size = size
            current.published_damage = (requests, tokens_out)
        return self._version(cluster_id, current, action, notify, size, at, wall, reason)

    def on_members(self, cluster_id: str, size: int, at: float, wall: float,
                   damage: tuple[int, int] | None = None) -> AlertUpdate | None:
        """A membership delta for an open alert between re-scores (audit store only, no page), with
        the damage as of this tick."""
        current = self.open.get(cluster_id)
        if current is None or not (current.added or current.removed):
            return None
        if damage is not None:
            current.requests, current.tokens_out = damage
        return self._version(cluster_id, current, AlertAction.MEMBERS, False, size, at, wall, "membership changed")

    def _version(self, cluster_id: str, current: _OpenAlert, action: str, notify: bool, size: int, at: float,
                 wall: float, reason: str) -> AlertUpdate:
        added, removed = tuple(sorted(current.added)), tuple(sorted(current.removed))
        current.added, current.removed = set(), set()
        current.version += 1
        return AlertUpdate(current.alert_id, cluster_id, action, notify, current.version, current.severity,
                           current.score, size, current.detected_at, at, wall, reason, current.features,
                           current.evidence, added, removed, current.requests, current.tokens_out, current.evidence_json,
                           current.summary)

    def on_gone(self, cluster_id: str, at: float, wall: float, why: str) -> AlertUpdate | None:
        current = self.open.pop(cluster_id, None)
        if current is None:
            return None
        current.version += 1
        return AlertUpdate(current.alert_id, cluster_id, AlertAction.CLOSED, True, current.version, current.severity,
                           0.0, 0, current.detected_at, at, wall, why, {}, (), (), (), 0, 0)
