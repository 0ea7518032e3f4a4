"""Score alerts against simulator labels: what the demo prints and the quality benchmark tabulates."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ACTIONABLE = ("medium", "high")


def read_labels(path: Path) -> dict[str, tuple[str, str]]:
    with open(path, newline="") as handle:
        return {row["account_id"]: (row["ring_id"], row["kind"]) for row in csv.DictReader(handle)}


@dataclass
class Quality:
    flagged: int = 0
    true_positives: int = 0
    false_positives: int = 0
    ring_accounts: int = 0  # in rings of at least min_ring
    ring_caught: int = 0
    alerts: int = 0
    benign_alerts: int = 0  # actionable alerts whose members are mostly benign
    high_on_benign: int = 0  # high alerts with any benign majority
    per_ring: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # ring -> (kind, size, caught)
    per_kind: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind -> (accounts, caught)
    benign_flagged_by_kind: dict[str, int] = field(default_factory=dict)
    purity: list[float] = field(default_factory=list)  # per actionable alert with fraud members: dominant op's share
    separated: dict[str, bool] = field(default_factory=dict)  # ring (>= min_ring) -> has its own alert

    @property
    def min_purity(self) -> float:
        return min(self.purity, default=1.0)

    @property
    def ops_separated(self) -> tuple[int, int]:
        return sum(self.separated.values()), len(self.separated)

    @property
    def precision(self) -> float:
        return self.true_positives / self.flagged if self.flagged else 1.0

    @property
    def recall(self) -> float:
        return self.ring_caught / self.ring_accounts if self.ring_accounts else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def evaluate(alerts: dict[str, tuple[str, set[str]]], labels: dict[str, tuple[str, str]],
             min_ring: int = 100) -> Quality:
    """``alerts``: alert id -> (severity, member accounts). Account-level scores over actionable alerts."""
    q = Quality()
    flagged: set[str] = set()
    own_alert: set[str] = set()  # rings that dominate an alert with >= 90% of its fraud members
    for severity, members in alerts.values():
        if severity not in ACTIONABLE:
            continue
        q.alerts += 1
        ops = Counter(labels[a][0] for a in members if labels.get(a, ("", ""))[0])
        if ops:
            top, n = min(ops.items(), key=lambda kv: (-kv[1], kv[0]))
            share = n / sum(ops.values())
            q.purity.append(share)
            if share >= 0.9:
                own_alert.add(top)
        benign = sum(1 for a in members if not labels.get(a, ("", ""))[0])
        if benign * 2 > len(members):
            q.benign_alerts += 1
            if severity == "high":
                q.high_on_benign += 1
        flagged |= members
    q.flagged = len(flagged)
    q.true_positives = sum(1 for a in flagged if labels.get(a, ("", ""))[0])
    q.false_positives = q.flagged - q.true_positives
    for account in flagged:
        ring, kind = labels.get(account, ("", "unknown"))
        if not ring:
            q.benign_flagged_by_kind[kind] = q.benign_flagged_by_kind.get(kind, 0) + 1
    rings: dict[str, list[str]] = defaultdict(list)
    kinds: dict[str, str] = {}
    for account, (ring, kind) in labels.items():
        if ring:
            rings[ring].append(account)
            kinds[ring] = kind
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for ring, accounts in sorted(rings.items()):
        caught = sum(1 for a in accounts if a in flagged)
        q.per_ring[ring] = (kinds[ring], len(accounts), caught)
        if len(accounts) >= min_ring:
            q.separated[ring] = ring in own_alert
            q.ring_accounts += len(accounts)
            q.ring_caught += caught
            per_kind[kinds[ring]][0] += len(accounts)
            per_kind[kinds[ring]][1] += caught
    q.per_kind = {k: (v[0], v[1]) for k, v in sorted(per_kind.items())}
    return q
