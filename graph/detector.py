"""Stage B — the global detector: the kernel's graph (binding, cores, weak edges, operations,
identity) plus the policy that decides when to score, how verdicts change severity, and what is
published. It consumes the partitions' change batches one tick at a time, so it runs the same way
behind one partition (``replay``, one worker) or many.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from graph import _kernel
from graph.alerts import AlertBook, AlertUpdate, damage_moved
from graph.config import DetectionConfig
from graph.identity import ClusterRecord, LineageEvent
from graph.names import Names
from graph.scoring import ClusterScore, score_cluster
from graph.vocab import LineageKind, Severity, Verdict, cluster_id
from graph.window import PartitionWindow, Rejected


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """A cluster as it stands after a re-score: what the audit store keeps as 'current state'."""

    cluster_id: str
    members: Names  # sorted, packed (graph/names.py)
    born_at: float
    updated_at: float
    scored_at: float  # the tick (event time) this state is as of
    verdict: str | None
    scored: ClusterScore


@dataclass(slots=True)
class EngineOutput:
    alerts: list[AlertUpdate] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    lineage: list[LineageEvent] = field(default_factory=list)
    clusters: list[ClusterSnapshot] = field(default_factory=list)
    gone: list[tuple[str, float]] = field(default_factory=list)  # (cluster id, event time of the tick it went)
    ticks: int = 0
    watermark: float = float("-inf")

    def __bool__(self) -> bool:
        return bool(self.alerts or self.lineage or self.clusters or self.gone)

    def extend(self, other: EngineOutput) -> None:
        self.alerts += other.alerts
        self.rejected += other.rejected
        self.lineage += other.lineage
        self.clusters += other.clusters
        self.gone += other.gone
        self.ticks += other.ticks
        self.watermark = max(self.watermark, other.watermark)


class Detector:
    def __init__(self, config: DetectionConfig, clock: Callable[[], float] = time.time,
                 window: PartitionWindow | None = None, graph: _kernel.Graph | None = None) -> None:
        """With ``window`` (the one partition of a single process) the graph shares its names;
        ``graph``: a graph restored from a checkpoint (``graph/snapshot.py``) instead of a new one."""
        self.config = config
        self.clock = clock
        self.graph = graph if graph is not None else _kernel.Graph(config.kernel(), window.kernel if window is not None else None)
        self.clusters: dict[str, ClusterRecord] = {}
        self.merged_into: dict[str, str] = {}  # absorbed id -> survivor, to follow old ids
        self.alerts = AlertBook(config)
        self.tick_timings: list[float] | None = None  # set to [] to record each working tick's seconds
        # Called at the tick an alert gains members, with the graph, the cluster and the new members
        # (sorted): the audit store records the links behind them as they are at that tick, so its
        # rows do not depend on how the input was cut into batches. None: nobody records them.
        self.capture_links: Callable[[_kernel.Graph, str, list[str]], None] | None = None
        self._wall = 0.0

    # -- one tick -------------------------------------------------------------------------------
    def apply(self, batches: Sequence[_kernel.Batch]) -> EngineOutput:
        started = time.perf_counter() if self.tick_timings is not None else 0.0
        out = EngineOutput(ticks=1)
        tick = self.graph.apply(list(batches))
        lineage, changed, touched, gone = tick.lineage, tick.changed, tick.touched, tick.gone
        at = float(tick.tick_end)
        out.watermark = tick.watermark
        if not (lineage or changed or touched or gone):
            if self.alerts.open:  # no cluster moved, but usage may have: damage is kept current
                self.refresh_damage(at, out, self.config.damage_regrowth, self.graph.damage_changed(), quiet=True)
            return out
        self._wall = self.clock()
        for number, kind, size, other in lineage:
            event = LineageEvent(cluster_id(number), kind, at, size, cluster_id(other) if other is not None else None)
            out.lineage.append(event)
            if kind in (LineageKind.BORN, LineageKind.SPLIT):
                self.clusters[event.cluster_id] = ClusterRecord(number, event.cluster_id, at, at, size)
            elif kind == LineageKind.MERGED_INTO and event.other is not None:
                self.merged_into[event.cluster_id] = event.other
        self._inherit_verdicts(out.lineage)
        for number in gone:
            cid = cluster_id(number)
            self.clusters.pop(cid, None)
            closing = self.alerts.on_gone(cid, at, self._wall, self._why_gone(cid, out.lineage))
            if closing:
                out.alerts.append(closing)
            out.gone.append((cid, at))
        graph = self.graph
        for number in changed:
            record = self.clusters[cluster_id(number)]
            record.size = graph.size(number) or 0
            record.updated_at = at
            if record.cluster_id in self.alerts.open:
                self.alerts.on_deltas(record.cluster_id, *graph.deltas(number))
        self._rescore(changed, touched, at, out)
        if self.alerts.open:
            self.refresh_damage(at, out, self.config.damage_regrowth, self.graph.damage_changed())
        if self.capture_links is not None:
            for update in out.alerts:
                if update.members_added:
                    self.capture_links(graph, update.cluster_id, sorted(update.members_added))
        if self.tick_timings is not None and tick.worked:
            self.tick_timings.append(time.perf_counter() - started)
        return out

    def _why_gone(self, cid: str, lineage: list[LineageEvent]) -> str:
        for event in lineage:
            if event.cluster_id == cid and event.kind == LineageKind.MERGED_INTO:
                return f"merged into {event.other}"
        return "expired"

    def _inherit_verdicts(self, lineage: list[LineageEvent]) -> None:
        # A confirmed ring stays confirmed when it swallows another cluster or splits.
        for event in lineage:
            if event.kind in (LineageKind.MERGED, LineageKind.SPLIT) and event.other is not None:
                other = self.resolve_record(event.other)
                source_confirmed = self._confirmed(event.other)
                record = self.clusters.get(event.cluster_id)
                if record is not None and record.verdict is None and (source_confirmed or (
                        other is not None and other.verdict == Verdict.CONFIRMED)):
                    record.verdict = Verdict.CONFIRMED

    def _confirmed(self, cid: str) -> bool:
        record = self.clusters.get(cid)
        return record is not None and record.verdict == Verdict.CONFIRMED

    # -- when to score (policy) -----------------------------------------------------------------
    def _rescore(self, changed: list[int], touched: list[int], at: float, out: EngineOutput) -> None:
        """Score what changed enough; pass membership deltas of alerted clusters to the audit store."""
        changed_set = set(changed)
        candidates = [self.clusters[cluster_id(n)] for n in changed]
        for number in touched:
            if number in changed_set:
                continue
            record = self.clusters.get(cluster_id(number))
            if record is not None and at - record.scored_at >= self._rescore_interval(record):
                candidates.append(record)  # same members, new evidence (new IPs, API traffic)
        for record in candidates:
            if record.size < self.config.low_min_size and record.cluster_id not in self.alerts.open:
                continue  # too small to alert: tracked for lineage, not scored
            if self._needs_score(record, at):
                self._score(record, at, out)
            elif record.number in changed_set:
                update = self.alerts.on_members(record.cluster_id, record.size, at, self._wall,
                                                self.graph.damage(record.number))
                if update:
                    out.alerts.append(update)

    def _needs_score(self, record: ClusterRecord, at: float) -> bool:
        size, last = record.size, record.scored_size
        if last == 0 or record.verdict == Verdict.CONFIRMED or at - record.scored_at >= self._rescore_interval(record):
            return True
        config = self.config
        for threshold in (config.low_min_size, config.medium_min_size, config.high_min_size):
            if (size >= threshold) != (last >= threshold):
                return True
        return abs(size - last) >= max(config.rescore_min_change, config.rescore_growth * last)

    def _rescore_interval(self, record: ClusterRecord) -> float:
        # Large clusters change little per new link, and scoring one costs its size. A cluster that
        # scored near zero (a crowd on one hub) is re-scored only when its membership moves.
        score = record.score.score if record.score is not None else 1.0
        open_alert = self.alerts.open.get(record.cluster_id)
        if score < 0.1 and open_alert is None:
            return float("inf")
        settled = 4.0 if open_alert is not None and open_alert.severity == Severity.HIGH else 1.0
        return self.config.rescore_seconds * settled * max(1.0, record.size / 200)

    def settle(self, out: EngineOutput) -> None:
        """The input is over (or idle): every open alert's last version states its damage as of the
        last tick."""
        now = self.graph.now
        if now is not None and self.alerts.open:
            self.refresh_damage(float(now), out, 0.0, None, quiet=True)

    def refresh_damage(self, at: float, out: EngineOutput, share: float, moved: list[int] | None,
                       quiet: bool = False) -> None:
        """Re-score (and so re-publish) every open alert whose damage, kept current by the kernel at
        every tick, moved by more than ``share`` since its last publication: what the alerts topic, the
        audit store's views and ``investigate`` report is never further than that from the truth as
        of the latest tick, and at the end of input (``share`` 0) equal to it — with the size too, which
        a membership version between publications keeps in the audit store only. ``moved``: the
        clusters whose damage moved this tick (None: look at every open alert)."""
        settling = share == 0.0
        candidates = list(self.alerts.open) if moved is None else [cluster_id(n) for n in moved]
        for cid in candidates:
            alert = self.alerts.open.get(cid)
            record = self.clusters.get(cid)
            if alert is None or record is None or (record.scored_at == at and share > 0):
                continue
            damage = self.graph.damage(record.number)
            stale = damage is not None and damage_moved(alert.published_damage, damage, share)
            if stale or (settling and record.size != alert.published_size):
                if quiet:
                    self._wall, quiet = self.clock(), False  # the wall time of a tick that publishes
                # a high alert whose members did not move since its last score (``updated_at``: the last
                # tick that changed them) cannot escalate: its last score goes out with the new damage
                steady = (alert.severity == Severity.HIGH and record.verdict is None
                          and record.updated_at <= record.scored_at)
                self._score(record, at, out, damage_regrowth=share, settling=settling,
                            damage=damage if steady else None)

    def _score(self, record: ClusterRecord, at: float, out: EngineOutput, damage_regrowth: float | None = None,
               settling: bool = False, damage: tuple[int, int] | None = None) -> None:
        """Score the cluster and publish what follows. ``damage``: publish the last score with this damage
        instead, without re-measuring the cluster (its structure is re-scored when its members move or
        its re-score interval passes)."""
        if damage is not None and record.score is not None:
            scored = record.score = replace(record.score, requests=damage[0], tokens_out=damage[1])
        else:
            measured = score_cluster(self.graph, record.number, self.config)
            if measured is None:
                return
            scored = record.score = measured
            record.scored_size = record.size
            record.scored_at = at
        severity, reason = scored.severity, "structure score"
        if record.verdict == Verdict.BENIGN and not self._materially_new(record):
            severity, reason = None, "benign verdict"
        elif record.verdict == Verdict.CONFIRMED:
            severity, reason = Severity.HIGH, "linked to a confirmed ring"
        members = Names(*self.graph.members_packed(record.number))
        out.clusters.append(ClusterSnapshot(record.cluster_id, members, record.born_at, record.updated_at, at,
                                            record.verdict, scored))
        if severity is None and record.verdict == Verdict.BENIGN:
            closing = self.alerts.on_gone(record.cluster_id, at, self._wall, "benign verdict")
            if closing:
                out.alerts.append(closing)
            return
        update = self.alerts.on_scored(record.cluster_id, members, record.size, record.verdict, severity,
                                       scored.score, scored.features, scored.evidence, scored.detected_at,
                                       scored.requests, scored.tokens_out, at, self._wall, reason, scored.evidence_json,
                                       damage_regrowth, scored.summary, settling)
        if update:
            out.alerts.append(update)

    def _materially_new(self, record: ClusterRecord) -> bool:
        """After a benign verdict: the group grew by half, or five new devices/cards bind it."""
        if record.size >= 1.5 * record.verdict_size:
            return True
        return len(set(self.graph.strong_entities(record.number)) - record.verdict_entities) >= 5

    # -- verdicts ---------------------------------------------------------------------------------
    def resolve_record(self, cid: str) -> ClusterRecord | None:
        """The live cluster an id refers to, following merges."""
        for _ in range(1000):
            record = self.clusters.get(cid)
            if record is not None:
                return record
            if cid not in self.merged_into:
                return None
            cid = self.merged_into[cid]
        return None

    def apply_verdict(self, cid: str, verdict: str) -> EngineOutput:
        """``benign``: mute this cluster until something materially new; ``confirmed``: any
        account that joins it raises a high alert at the next tick."""
        if verdict not in (Verdict.BENIGN, Verdict.CONFIRMED):
            raise ValueError(f"verdict must be 'benign' or 'confirmed', not {verdict!r}")
        out = EngineOutput()
        record = self.resolve_record(cid)
        if record is None:
            return out
        record.verdict = verdict
        record.verdict_size = record.size
        record.verdict_entities = frozenset(self.graph.strong_entities(record.number))
        if verdict == Verdict.BENIGN:
            self._wall = self.clock()
            closing = self.alerts.on_gone(record.cluster_id, record.updated_at, self._wall, "benign verdict")
            if closing:
                out.alerts.append(closing)
        return out

    def policy_state(self) -> dict[str, Any]:
        """What the policy keeps beside the kernel's graph (for a checkpoint)."""
        return {"clusters": self.clusters, "merged_into": self.merged_into, "open_alerts": self.alerts.open,
                "alert_generations": self.alerts.generations, "wall": self._wall}

    def restore_policy_state(self, state: dict[str, Any]) -> None:
        self.clusters = state["clusters"]
        self.merged_into = state["merged_into"]
        self.alerts.open = state["open_alerts"]
        self.alerts.generations = state["alert_generations"]
        self._wall = state["wall"]

    def stats(self) -> dict[str, int]:
        stats = {k: int(v) for k, v in self.graph.stats().items()}
        for severity in Severity:
            stats[f"open_alerts_{severity}"] = sum(1 for a in self.alerts.open.values() if a.severity == severity)
        return stats
