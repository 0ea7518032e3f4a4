"""One alert per cluster for its whole life: opened, escalated, updated on real growth, closed.

Alert ids derive from cluster ids (``A-<cluster id>``) and every publication carries a version, so
sinks can write idempotently: the same replay gives the same (alert_id, version) pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

from graph.config import DetectionConfig
from graph.identity import Cluster
from graph.scoring import SEVERITY_RANK, ClusterScore, Evidence


@dataclass(frozen=True, slots=True)
class AlertUpdate:
    alert_id: str
    cluster_id: str
    action: str  # opened | escalated | updated | members | closed
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
    requests: int = 0  # API exchanges of the members within the window, as of the score
    tokens_out: int = 0


@dataclass(slots=True)
class _OpenAlert:
    alert_id: str
    severity: str
    version: int
    published_size: int
    members: frozenset[str]
    detected_at: float


class AlertBook:
    def __init__(self, config: DetectionConfig) -> None:
        self.config = config
        self.open: dict[str, _OpenAlert] = {}  # cluster id -> its alert
        self._generation: dict[str, int] = {}  # a cluster re-alerting after a close gets "-2", "-3"

    def on_scored(self, cluster: Cluster, scored: ClusterScore, at: float, wall: float, *,
                  severity: str | None, reason: str) -> AlertUpdate | None:
        current = self.open.get(cluster.cluster_id)
        if current is None:
            if severity is None:
                return None
            generation = self._generation[cluster.cluster_id] = self._generation.get(cluster.cluster_id, 0) + 1
            alert_id = f"A-{cluster.cluster_id}" + (f"-{generation}" if generation > 1 else "")
            current = self.open[cluster.cluster_id] = _OpenAlert(
                alert_id, severity, 0, 0, frozenset(), scored.detected_at)
            action = "opened"
        elif SEVERITY_RANK[severity] > SEVERITY_RANK[current.severity]:
            action = "escalated"  # severity never drops while the alert is open: no flapping pages
        elif cluster.verdict == "confirmed" and len(cluster.members - current.members) > 0:
            action = "updated"
        elif len(cluster.members) >= current.published_size * (1 + self.config.alert_regrowth):
            action = "updated"
        elif cluster.members != current.members:
            action = "members"  # keep the audit store's member list exact between publications
        else:
            return None
        if SEVERITY_RANK[severity] > SEVERITY_RANK[current.severity]:
            current.severity = severity  # type: ignore[assignment]
            current.detected_at = scored.detected_at
        added = tuple(sorted(cluster.members - current.members))
        removed = tuple(sorted(current.members - cluster.members))
        current.version += 1
        notify = action != "members"
        if notify:
            current.published_size = len(cluster.members)
        current.members = cluster.members
        return AlertUpdate(current.alert_id, cluster.cluster_id, action, notify, current.version, current.severity,
                           scored.score, len(cluster.members), current.detected_at, at, wall, reason,
                           scored.features, scored.evidence, added, removed, scored.requests, scored.tokens_out)

    def on_members(self, cluster: Cluster, at: float, wall: float) -> AlertUpdate | None:
        """A membership delta for an open alert between re-scores (audit store only, no page)."""
        current = self.open.get(cluster.cluster_id)
        if current is None or cluster.members == current.members or cluster.score is None:
            return None
        scored: ClusterScore = cluster.score  # type: ignore[assignment]
        added = tuple(sorted(cluster.members - current.members))
        removed = tuple(sorted(current.members - cluster.members))
        current.version += 1
        current.members = cluster.members
        return AlertUpdate(current.alert_id, cluster.cluster_id, "members", False, current.version, current.severity,
                           scored.score, len(cluster.members), current.detected_at, at, wall, "membership changed",
                           scored.features, scored.evidence, added, removed, scored.requests, scored.tokens_out)

    def on_gone(self, cluster_id: str, at: float, wall: float, why: str) -> AlertUpdate | None:
        current = self.open.pop(cluster_id, None)
        if current is None:
            return None
        current.version += 1
        return AlertUpdate(current.alert_id, cluster_id, "closed", True, current.version, current.severity, 0.0, 0,
                           current.detected_at, at, wall, why, {}, (), (), ())
