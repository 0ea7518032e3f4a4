"""Public cluster ids and what the policy remembers per cluster.

The kernel keeps operations and their identity (each new operation is matched greedily to the old
clusters it overlaps, largest overlap first, ties to the older id) and reports lineage:

* ``born``   — a cluster that overlaps no tracked cluster
* ``grew`` / ``shrank`` — same id, size changed
* ``merged`` — the surviving id absorbed another cluster (``other`` = the absorbed id), and the
  absorbed one gets ``merged_into``
* ``split``  — a new id for a piece of an old cluster (``other`` = the parent)
* ``expired`` — an old cluster none of whose members are in a tracked cluster any more
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graph.scoring import ClusterScore  # at run time too: a checkpoint decodes records by their types


@dataclass(frozen=True, slots=True)
class LineageEvent:
    cluster_id: str
    kind: str
    at: float
    size: int
    other: str | None = None


@dataclass(slots=True)
class ClusterRecord:
    number: int
    cluster_id: str
    born_at: float
    updated_at: float
    size: int
    scored_size: int = 0  # size at the last score; re-scored when it moves enough
    scored_at: float = float("-inf")
    score: ClusterScore | None = None
    verdict: str | None = None
    verdict_size: int = 0
    verdict_entities: frozenset[str] = field(default_factory=frozenset)
