"""Stable cluster ids across recomputes, and the lineage that explains each cluster.

When a region is re-clustered, each new group is matched to the old clusters it overlaps. Pairs are
taken greedily by overlap (ties: older id first), so a group keeps the id of the cluster it mostly
is. What happened is recorded as lineage events with their event time:

* ``born``   — a group that overlaps no tracked cluster
* ``grew`` / ``shrank`` — same id, size changed
* ``merged`` — the surviving id absorbed another cluster (``other`` = the absorbed id), and the
  absorbed one gets ``merged_into``
* ``split``  — a new id for a piece of an old cluster (``other`` = the parent)
* ``expired`` — an old cluster none of whose members are in any group any more
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from graph.components import Group


@dataclass(frozen=True, slots=True)
class LineageEvent:
    cluster_id: str
    kind: str
    at: float
    size: int
    other: str | None = None


@dataclass(slots=True)
class Cluster:
    cluster_id: str
    members: frozenset[str]
    born_at: float
    updated_at: float
    scored_size: int = 0  # size at the last score; re-scored when it moves enough
    scored_at: float = float("-inf")
    score: object = None  # graph.scoring.ClusterScore, set by the engine
    from_split: bool = False  # a Leiden piece of a larger component: never absorbed as a block
    verdict: str | None = None
    verdict_size: int = 0
    verdict_entities: frozenset[str] = field(default_factory=frozenset)


class ClusterRegistry:
    def __init__(self) -> None:
        self.clusters: dict[str, Cluster] = {}
        self.cluster_of: dict[str, str] = {}
        self.merged_into: dict[str, str] = {}  # absorbed id -> survivor, to follow old ids
        self.confirmed: set[str] = set()
        self._next = 1

    def resolve(self, cluster_id: str) -> Cluster | None:
        """The live cluster an id refers to, following merges."""
        for _ in range(1000):
            if cluster_id in self.clusters:
                return self.clusters[cluster_id]
            if cluster_id not in self.merged_into:
                return None
            cluster_id = self.merged_into[cluster_id]
        return None

    def _new_id(self) -> str:
        cluster_id = f"C{self._next:07d}"
        self._next += 1
        return cluster_id

    def touched_by(self, accounts: Iterable[str]) -> set[str]:
        cluster_of = self.cluster_of
        return {cluster_of[a] for a in accounts if a in cluster_of}

    def reconcile(self, old_ids: set[str], groups: list[tuple[frozenset[str], Group]], at: float,
                  trimmed: Mapping[str, frozenset[str]] | None = None
                  ) -> tuple[list[LineageEvent], list[Cluster], list[str]]:
        """Replace the old clusters by the new groups. Returns (lineage, changed clusters, gone ids).

        Old clusters absorbed whole (``Group.blocks``) are counted by size, not walked member by
        member, so growth of a large cluster costs what its new accounts cost. ``trimmed`` blocks
        lost some members this tick (graph/splits.py): those are blocks of their remaining members.
        """
        cluster_of = self.cluster_of
        trimmed = trimmed or {}

        def block_members(block: str) -> frozenset[str]:
            return trimmed.get(block) or self.clusters[block].members

        overlaps: list[Counter[str]] = []
        for _members, group in groups:
            counter = Counter(cluster_of[a] for a in group.loose if a in cluster_of)
            for block in group.blocks:
                counter[block] += len(block_members(block))
            overlaps.append(counter)
        pairs = sorted(
            ((count, old, i) for i, counter in enumerate(overlaps) for old, count in counter.items()),
            key=lambda p: (-p[0], p[1], p[2]),
        )
        group_id: dict[int, str] = {}
        taken: set[str] = set()
        for _count, old, i in pairs:
            if i not in group_id and old not in taken:
                group_id[i] = old
                taken.add(old)

        # Forget the old assignment of every account that may move: loose accounts and the members
        # of re-walked old clusters. Blocks that keep their id keep their members' entries.
        kept_blocks = {group_id[i] for i, (_m, g) in enumerate(groups) if i in group_id and group_id[i] in g.blocks}
        for old in old_ids - kept_blocks:
            for account in self.clusters[old].members:
                if cluster_of.get(account) == old:
                    del cluster_of[account]
        for old in kept_blocks & trimmed.keys():  # members a trimmed block lost
            remaining = trimmed[old]
            if remaining is not self.clusters[old].members:
                for account in self.clusters[old].members - remaining:
                    if cluster_of.get(account) == old:
                        del cluster_of[account]

        lineage: list[LineageEvent] = []
        changed: list[Cluster] = []
        new_ids: set[str] = set()
        for i, (members, group) in enumerate(groups):
            parent = min(overlaps[i].items(), key=lambda kv: (-kv[1], kv[0]))[0] if overlaps[i] else None
            if i in group_id:
                cluster = self.clusters[group_id[i]]
                before = len(cluster.members)
                if members is not cluster.members and members != cluster.members:
                    cluster.members = members
                    cluster.updated_at = at
                    changed.append(cluster)
                    if len(members) != before:
                        lineage.append(LineageEvent(cluster.cluster_id, "grew" if len(members) > before else "shrank",
                                                    at, len(members)))
                for other in sorted(overlaps[i]):
                    if other != cluster.cluster_id and other not in taken:
                        lineage.append(LineageEvent(cluster.cluster_id, "merged", at, len(members), other))
            else:
                cluster = Cluster(self._new_id(), members, at, at)
                self.clusters[cluster.cluster_id] = cluster
                changed.append(cluster)
                if parent is None:
                    lineage.append(LineageEvent(cluster.cluster_id, "born", at, len(members)))
                else:
                    lineage.append(LineageEvent(cluster.cluster_id, "split", at, len(members), parent))
            cluster.from_split = group.from_split
            new_ids.add(cluster.cluster_id)
            cid = cluster.cluster_id
            if cid in group.blocks and cid in kept_blocks:
                for account in group.loose:
                    cluster_of[account] = cid
                for block in group.blocks:
                    if block != cid:
                        for account in block_members(block) if block in self.clusters else ():
                            cluster_of[account] = cid
            else:
                for account in members:
                    cluster_of[account] = cid

        gone: list[str] = []
        for old in sorted(old_ids - new_ids):
            holders = [(c[old], group_id[i]) for i, c in enumerate(overlaps) if old in c and i in group_id]
            absorbed_by = min(holders, key=lambda h: (-h[0], h[1]))[1] if holders else None
            if absorbed_by is not None:
                self.merged_into[old] = absorbed_by
                lineage.append(LineageEvent(old, "merged_into", at, 0, absorbed_by))
            else:
                lineage.append(LineageEvent(old, "expired", at, 0))
            del self.clusters[old]
            self.confirmed.discard(old)
            gone.append(old)
        return lineage, changed, gone
