"""The detection engine: the one object the Faust worker, ``replay`` and the benchmarks drive.

    engine = DetectionEngine(DetectionConfig(), clock=time.time)
    out = engine.process(events)   # any batch; returns alerts, lineage and re-scored clusters
    out = engine.flush()           # end of input (or idle stream): release held events, final tick

Event time drives everything (windows, ticks, expiry, lineage times); ``clock`` only stamps
``created_at`` on alerts. The same events in any arrival order within the allowed lateness, with any
duplicates, give the same output.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from graph.alerts import AlertBook, AlertUpdate
from graph.binding import BindingState
from graph.components import Group, cluster_region
from graph.config import DetectionConfig
from graph.events import IP, AccountEvent, kind_of
from graph.identity import Cluster, ClusterRegistry, LineageEvent
from graph.ordering import Admission, ClockGuard, Deduplicator, ReorderBuffer
from graph.scoring import ClusterScore, score_cluster
from graph.splits import split_pieces, touch_points
from graph.window import LinkWindow


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """A cluster as it stands after a re-score: what the audit store keeps as 'current state'."""

    cluster_id: str
    members: tuple[str, ...]
    born_at: float
    updated_at: float
    scored_at: float  # the tick (event time) this state is as of
    verdict: str | None
    scored: ClusterScore


class Rejection(StrEnum):
    """Why the engine refused a decoded event (the adapter dead-letters it with the reason)."""

    CLOCK_SKEW = "clock_skew"
    ID_CONFLICT = "id_conflict"


@dataclass(frozen=True, slots=True)
class Rejected:
    event: AccountEvent
    kind: Rejection
    reason: str


@dataclass(slots=True)
class EngineOutput:
    alerts: list[AlertUpdate] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    lineage: list[LineageEvent] = field(default_factory=list)
    clusters: list[ClusterSnapshot] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
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


class IntactClusters:
    """Tracked clusters the walk may take over whole: nothing was removed from them this tick, or the
    split check (graph/splits.py) proved what is left of them still connected (``trimmed``: their
    remaining members)."""

    def __init__(self, registry: ClusterRegistry, rewalk: set[str], trimmed: dict[str, frozenset[str]]) -> None:
        self.clusters = registry.clusters
        self.rewalk = rewalk
        self.trimmed = trimmed

    def __contains__(self, cluster_id: object) -> bool:
        if not isinstance(cluster_id, str):
            return False
        if cluster_id in self.trimmed:
            return True
        cluster = self.clusters.get(cluster_id)
        return cluster is not None and not cluster.from_split and cluster_id not in self.rewalk

    def __getitem__(self, cluster_id: str) -> frozenset[str]:
        trimmed = self.trimmed.get(cluster_id)
        return trimmed if trimmed is not None else self.clusters[cluster_id].members


class DetectionEngine:
    def __init__(self, config: DetectionConfig | None = None, clock: Callable[[], float] = time.time) -> None:
        self.config = config or DetectionConfig()
        self.clock = clock
        self.window = LinkWindow(self.config.expiry_bucket_seconds)
        self.binding = BindingState(self.window, self.config)
        self.registry = ClusterRegistry()
        self.alerts = AlertBook(self.config)
        self.dedupe = Deduplicator(self.config.window_seconds + self.config.allowed_lateness_seconds)
        self.reorder = ReorderBuffer(self.config.allowed_lateness_seconds)
        self.guard = ClockGuard(self.config.max_clock_skew_seconds, self.config.skew_sample)
        self._next_tick: float | None = None
        self.tick_timings: list[float] | None = None  # set to [] to record each working tick's seconds
        self.counters = {"events": 0, "duplicates": 0, "late": 0, "too_old": 0, "expired_links": 0,
                         "clock_skew": 0, "id_conflict": 0}
        self._wall = 0.0

    # -- input ------------------------------------------------------------------------------
    def process(self, events: Iterable[AccountEvent], wall: float | None = None) -> EngineOutput:
        """Apply a batch. ``wall`` (the worker's wall clock, epoch seconds) also bounds event time;
        ``replay`` passes none. Rejected events come back in ``EngineOutput.rejected``."""
        out = EngineOutput()
        self._wall = self.clock()
        admit = self.dedupe.admit
        check = self.guard.check
        reorder = self.reorder
        counters = self.counters
        for event in events:
            admission = admit(event, reorder.watermark)
            if admission is not Admission.NEW:
                if admission is Admission.DUPLICATE:
                    counters["duplicates"] += 1
                else:
                    self._reject(out, event, Rejection.ID_CONFLICT,
                                 f"event_id {event.event_id[:80]!r} was seen before with different content")
                continue
            ready, rejected = check(event, reorder.watermark, wall)
            for skewed, reason in rejected:
                self._reject(out, skewed, Rejection.CLOCK_SKEW, reason)
            for accepted in ready:
                counters["events"] += 1
                for released in reorder.push(accepted):
                    self._apply(released, out)
        # Every event before a boundary the watermark has passed is applied: detect now rather than
        # when the next event is released (same result, earlier).
        if self._next_tick is not None and reorder.watermark >= self._next_tick:
            self._advance_ticks(reorder.watermark, out)
        counters["late"] = reorder.late_events
        out.watermark = reorder.watermark
        return out

    def _reject(self, out: EngineOutput, event: AccountEvent, kind: Rejection, reason: str) -> None:
        self.counters[kind.value] += 1
        out.rejected.append(Rejected(event, kind, reason))

    def flush(self, wall: float | None = None) -> EngineOutput:
        """Release every held event and run the tick that covers them (end of input, idle input)."""
        out = EngineOutput()
        self._wall = self.clock()
        ready, rejected = self.guard.drain(self.reorder.watermark, wall)
        for skewed, reason in rejected:
            self._reject(out, skewed, Rejection.CLOCK_SKEW, reason)
        for accepted in ready:
            self.counters["events"] += 1
            for released in self.reorder.push(accepted):
                self._apply(released, out)
        for released in self.reorder.flush():
            self._apply(released, out)
        if self._next_tick is not None:
            self._tick(self._next_tick, out)
            self._next_tick += self.config.tick_seconds
        self.counters["late"] = self.reorder.late_events
        out.watermark = self.reorder.watermark
        return out

    def _apply(self, event: AccountEvent, out: EngineOutput) -> None:
        config = self.config
        ts = event.ts
        if self._next_tick is None:
            self._next_tick = (ts // config.tick_seconds + 1) * config.tick_seconds
        elif ts >= self._next_tick:
            self._advance_ticks(ts, out)
        elif ts <= self._next_tick - config.tick_seconds - config.window_seconds:
            self.counters["too_old"] += 1  # already outside the window it would join
            return
        window = self.window
        account = event.account_id
        for entity in event.entity_keys():
            window.touch(account, entity, ts)
        api = event.type == "api_usage"
        window.note_account(account, ts, signup=event.type == "signup", email_domain=event.email_domain,
                            datacenter=event.asn is not None and event.asn in config.datacenter_asns,
                            requests=(event.requests or 1) if api else 0,
                            tokens_out=(event.tokens_out or 0) if api else 0)

    def _advance_ticks(self, ts: float, out: EngineOutput) -> None:
        tick = self.config.tick_seconds
        assert self._next_tick is not None
        if ts - self._next_tick > self.config.window_seconds:
            # A gap longer than the window: everything expires; one tick does what all would.
            self._next_tick = (ts // tick) * tick
        while ts >= self._next_tick:
            self._tick(self._next_tick, out)
            self._next_tick += tick

    # -- detection --------------------------------------------------------------------------
    def _tick(self, at: float, out: EngineOutput) -> None:
        config = self.config
        out.ticks += 1
        self.counters["expired_links"] += self.window.expire(at - config.window_seconds)
        self.dedupe.forget_before(at - config.window_seconds - config.allowed_lateness_seconds)
        changed_links, private_flips = self.window.drain_changes()
        if not changed_links and not private_flips:
            return
        started = time.perf_counter() if self.tick_timings is not None else 0.0
        flipped = self.binding.update(changed_links, private_flips)
        old_ids, groups, trimmed = self._recluster(changed_links, flipped)
        lineage, changed, gone = self.registry.reconcile(old_ids, groups, at, trimmed)
        out.lineage += lineage
        self._inherit_verdicts(lineage)
        for cluster_id in gone:
            closing = self.alerts.on_gone(cluster_id, at, self._wall, self._why_gone(cluster_id, lineage))
            if closing:
                out.alerts.append(closing)
        out.gone += gone
        touched = self.registry.touched_by({a for a, _e in changed_links})
        self._rescore(changed, touched - set(gone), at, out)
        if self.tick_timings is not None:
            self.tick_timings.append(time.perf_counter() - started)

    def _recluster(self, changed_links: list[tuple[str, str]], flipped: set[str]
                   ) -> tuple[set[str], list[tuple[frozenset[str], Group]], dict[str, frozenset[str]]]:
        """Walk the dirty region; return the old cluster ids it covers, the new groups, and the clusters
        taken over as blocks of their remaining members (see ``_check_splits``)."""
        # Only accounts whose binding links changed seed the walk: a new link to an entity that
        # binds nothing moves no component.
        bound = self.binding.binding
        members_of = self.window.members
        seeds: set[str] = set()
        shrunk: set[str] = set()  # accounts that lost a binding link: their clusters are re-walked
        for account, entity in changed_links:
            if entity in bound or entity in flipped:
                seeds.add(account)
                if account not in members_of.get(entity, ()):
                    shrunk.add(account)
        for entity in flipped:
            accounts = members_of.get(entity, ())
            seeds.update(accounts)
            if entity not in bound:
                shrunk.update(accounts)
        registry = self.registry
        old_ids = registry.touched_by(seeds)
        rewalk = registry.touched_by(shrunk)
        trimmed, detached = self._check_splits(rewalk, changed_links, flipped, seeds)
        for cluster_id in old_ids:
            cluster = registry.clusters[cluster_id]
            if cluster.from_split or (cluster_id in rewalk and cluster_id not in trimmed):
                seeds.update(cluster.members)
        blocks = IntactClusters(registry, rewalk, trimmed)
        groups = cluster_region(seeds, self.binding, self.config, blocks, registry.cluster_of, detached)
        for _members, group in groups:  # clusters the walk reached that no seed was in
            old_ids.update(group.blocks)
            old_ids.update(registry.touched_by(group.loose))
        return old_ids, groups, trimmed

    def _check_splits(self, rewalk: set[str], changed_links: list[tuple[str, str]], flipped: set[str],
                      seeds: set[str]) -> tuple[dict[str, frozenset[str]], set[str]]:
        """For each cluster that lost links: the pieces that broke off become seeds (walked), and what is
        left, when still connected, a trimmed block (not walked). Returns (trimmed blocks, accounts
        detached from them)."""
        registry = self.registry
        cluster_of = registry.cluster_of
        members_of = self.window.members
        now = self.binding.members_now
        bound = self.binding.binding
        removed: dict[str, list[tuple[str, str]]] = {}
        for account, entity in changed_links:
            cluster_id = cluster_of.get(account)
            if cluster_id in rewalk and (entity in bound or entity in flipped) \
                    and account not in members_of.get(entity, ()):
                removed.setdefault(cluster_id, []).append((account, entity))
        flipped_off: dict[str, set[str]] = {}  # cluster -> its entities that stopped binding
        left: dict[str, set[str]] = {}  # cluster -> its accounts that are members no more
        for entity in sorted(e for e in flipped if e not in bound):
            for account in members_of.get(entity, ()):
                cluster_id = cluster_of.get(account)
                if cluster_id in rewalk:
                    flipped_off.setdefault(cluster_id, set()).add(entity)
                    if account not in now:
                        left.setdefault(cluster_id, set()).add(account)
        for cluster_id, links in removed.items():
            left.setdefault(cluster_id, set()).update(a for a, _e in links if a not in now)
        trimmed: dict[str, frozenset[str]] = {}
        detached: set[str] = set()
        for cluster_id in sorted(rewalk):
            cluster = registry.clusters[cluster_id]
            if cluster.from_split:
                continue
            members = cluster.members
            departed = left.get(cluster_id, set())
            touch = touch_points(members, self.binding, removed.get(cluster_id, ()),
                                 sorted(flipped_off.get(cluster_id, ())), sorted(departed))
            result = split_pieces(touch, members, self.binding)
            if not result.rest_connected:
                continue  # everything left was explored: walk it all (as before)
            gone = set(departed)
            for piece in result.pieces:
                gone |= piece
                seeds.update(piece)
            trimmed[cluster_id] = members - gone if gone else members
            detached |= gone
            # The walk must reach the rest even when nothing new links to it: seed it at a touch point.
            seeds.add(min(a for a in touch if a not in gone and a in now))
        return trimmed, detached

    def _rescore(self, changed: list[Cluster], touched: set[str], at: float, out: EngineOutput) -> None:
        """Score what changed enough; pass membership deltas of alerted clusters to the audit store."""
        changed_ids = {c.cluster_id for c in changed}
        candidates = list(changed)
        for cluster_id in sorted(touched - changed_ids):
            cluster = self.registry.clusters[cluster_id]
            if at - cluster.scored_at >= self._rescore_interval(cluster):
                candidates.append(cluster)  # same members, new evidence (new IPs, API traffic)
        for cluster in candidates:
            if len(cluster.members) < self.config.low_min_size and cluster.cluster_id not in self.alerts.open:
                continue  # too small to alert: tracked for lineage, not scored
            if self._needs_score(cluster, at):
                self._score(cluster, at, out)
            elif cluster.cluster_id in changed_ids:
                update = self.alerts.on_members(cluster, at, self._wall)
                if update:
                    out.alerts.append(update)

    def _why_gone(self, cluster_id: str, lineage: list[LineageEvent]) -> str:
        for event in lineage:
            if event.cluster_id == cluster_id and event.kind == "merged_into":
                return f"merged into {event.other}"
        return "cluster expired"

    def _inherit_verdicts(self, lineage: list[LineageEvent]) -> None:
        # A confirmed ring stays confirmed when it swallows another cluster or splits.
        confirmed = self.registry.confirmed
        for event in lineage:
            if event.kind in ("merged", "split") and event.other in confirmed:
                cluster = self.registry.clusters.get(event.cluster_id)
                if cluster is not None and cluster.verdict is None:
                    cluster.verdict = "confirmed"
                    confirmed.add(cluster.cluster_id)

    def _needs_score(self, cluster: Cluster, at: float) -> bool:
        size, last = len(cluster.members), cluster.scored_size
        if last == 0 or cluster.verdict == "confirmed" or at - cluster.scored_at >= self._rescore_interval(cluster):
            return True
        config = self.config
        for threshold in (config.low_min_size, config.medium_min_size, config.high_min_size):
            if (size >= threshold) != (last >= threshold):
                return True
        return abs(size - last) >= max(1.0, config.rescore_growth * last)

    def _rescore_interval(self, cluster: Cluster) -> float:
        # Large clusters change little per new link, and scoring one costs its size. A cluster that
        # scored near zero (a crowd on one hub) is re-scored only when its membership moves.
        score = cluster.score.score if cluster.score is not None else 1.0  # type: ignore[attr-defined]
        if score < 0.1 and cluster.cluster_id not in self.alerts.open:
            return float("inf")
        open_alert = self.alerts.open.get(cluster.cluster_id)
        settled = 4.0 if open_alert is not None and open_alert.severity == "high" else 1.0  # nothing to escalate to
        return self.config.rescore_seconds * settled * max(1.0, len(cluster.members) / 200)

    def _score(self, cluster: Cluster, at: float, out: EngineOutput) -> None:
        scored = score_cluster(cluster.members, self.binding, self.config, at)
        cluster.scored_size = len(cluster.members)
        cluster.scored_at = at
        cluster.score = scored
        severity, reason = scored.severity, "structure score"
        if cluster.verdict == "benign" and not self._materially_new(cluster):
            severity, reason = None, "benign verdict"
        elif cluster.verdict == "confirmed":
            severity, reason = "high", "linked to a confirmed ring"
        out.clusters.append(ClusterSnapshot(cluster.cluster_id, tuple(sorted(cluster.members)), cluster.born_at,
                                            cluster.updated_at, at, cluster.verdict, scored))
        if severity is None and cluster.verdict == "benign":
            closing = self.alerts.on_gone(cluster.cluster_id, at, self._wall, "benign verdict")
            if closing:
                out.alerts.append(closing)
            return
        update = self.alerts.on_scored(cluster, scored, at, self._wall, severity=severity, reason=reason)
        if update:
            out.alerts.append(update)

    def _materially_new(self, cluster: Cluster) -> bool:
        """After a benign verdict: the group grew by half, or five new devices/cards bind it."""
        if len(cluster.members) >= 1.5 * cluster.verdict_size:
            return True
        return len(self._strong_binding_entities(cluster) - cluster.verdict_entities) >= 5

    def _strong_binding_entities(self, cluster: Cluster) -> frozenset[str]:
        return frozenset(e for a in cluster.members for e in self.binding.binding_entities_of(a)
                         if kind_of(e) != IP)

    # -- verdicts ---------------------------------------------------------------------------
    def apply_verdict(self, cluster_id: str, verdict: str) -> EngineOutput:
        """``benign``: mute this cluster until something materially new; ``confirmed``: any
        account that joins it raises a high alert at the next tick."""
        if verdict not in ("benign", "confirmed"):
            raise ValueError(f"verdict must be 'benign' or 'confirmed', not {verdict!r}")
        out = EngineOutput()
        cluster = self.registry.resolve(cluster_id)
        if cluster is None:
            return out
        cluster.verdict = verdict
        cluster.verdict_size = len(cluster.members)
        cluster.verdict_entities = self._strong_binding_entities(cluster)
        if verdict == "confirmed":
            self.registry.confirmed.add(cluster.cluster_id)
        else:
            self.registry.confirmed.discard(cluster.cluster_id)
            self._wall = self.clock()
            closing = self.alerts.on_gone(cluster.cluster_id, cluster.updated_at, self._wall, "benign verdict")
            if closing:
                out.alerts.append(closing)
        return out

    # -- inspection -------------------------------------------------------------------------
    def partition(self) -> list[tuple[str, ...]]:
        """The tracked clusters' member sets, canonical order (for tests and replay checks)."""
        return sorted(tuple(sorted(c.members)) for c in self.registry.clusters.values())

    def full_recompute_partition(self) -> list[tuple[str, ...]]:
        """What a from-scratch evaluation of the current window gives (the fallback; tests compare)."""
        fresh = BindingState(self.window, self.config)
        fresh.recompute_all()
        groups = cluster_region(set(self.window.links_of), fresh, self.config)
        return sorted(tuple(sorted(members)) for members, _group in groups)

    def stats(self) -> dict[str, int]:
        stats = self.window.stats()
        stats["clusters"] = len(self.registry.clusters)
        stats["binding_entities"] = len(self.binding.binding)
        stats["held_events"] = len(self.reorder) + len(self.guard)
        stats["remembered_event_ids"] = len(self.dedupe)
        for severity in ("low", "medium", "high"):
            stats[f"open_alerts_{severity}"] = sum(1 for a in self.alerts.open.values() if a.severity == severity)
        return stats
