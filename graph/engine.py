"""The detection engine in one process: one partition window (stage A, ``graph/window.py``) feeding
the global detector (stage B, ``graph/detector.py``). ``replay``, a single worker and the benchmarks
drive it; the partitioned worker runs the same two stages apart.

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
from typing import Any

from graph import _kernel
from graph.alerts import AlertBook
from graph.config import DetectionConfig
from graph.detector import ClusterSnapshot, Detector, EngineOutput
from graph.events import AccountEvent, EventColumns
from graph.identity import ClusterRecord
from graph.window import PartitionWindow, Rejected, Rejection

__all__ = ["ClusterSnapshot", "DetectionEngine", "EngineOutput", "Rejected", "Rejection"]


class DetectionEngine:
    def __init__(self, config: DetectionConfig | None = None, clock: Callable[[], float] = time.time) -> None:
        self.config = config or DetectionConfig()
        self.window = PartitionWindow(self.config)
        self.detector = Detector(self.config, clock, self.window)

    def process(self, events: Iterable[AccountEvent] | EventColumns, wall: float | None = None) -> EngineOutput:
        """Apply a batch. ``wall`` (the worker's wall clock, epoch seconds) also bounds event time;
        ``replay`` passes none. Rejected events come back in ``EngineOutput.rejected``."""
        batch = events if isinstance(events, EventColumns) else EventColumns.from_events(events)
        out = EngineOutput()
        out.rejected = self.window.feed(batch, wall)
        self._detect(out)
        return out

    def process_json(self, values: list[bytes], sources: list[Any],
                     fallback: Callable[[int], tuple[Any, ...] | None], wall: float | None = None) -> EngineOutput:
        """Apply a batch of contract JSON values, decoded in the kernel (``fallback`` decodes what its
        strict fast path leaves: see ``PartitionWindow.feed_json``)."""
        out = EngineOutput()
        out.rejected = self.window.feed_json(values, sources, fallback, wall)
        self._detect(out)
        return out

    def flush(self, wall: float | None = None) -> EngineOutput:
        """Release every held event and run the tick that covers them (end of input, idle input)."""
        out = EngineOutput()
        out.rejected = self.window.flush(wall)
        self._detect(out)
        return out

    def _detect(self, out: EngineOutput) -> None:
        for batch in self.window.batches():
            out.extend(self.detector.apply([batch]))
        out.watermark = self.window.watermark

    def apply_verdict(self, cluster_id: str, verdict: str) -> EngineOutput:
        return self.detector.apply_verdict(cluster_id, verdict)

    def resolve(self, cluster_id: str) -> ClusterRecord | None:
        return self.detector.resolve_record(cluster_id)

    @property
    def clusters(self) -> dict[str, ClusterRecord]:
        """Tracked clusters by id (the policy's record of each)."""
        return self.detector.clusters

    @property
    def alerts(self) -> AlertBook:
        return self.detector.alerts

    @property
    def graph(self) -> _kernel.Graph:
        return self.detector.graph

    def members(self, cluster_id: str) -> tuple[str, ...]:
        record = self.detector.clusters.get(cluster_id)
        return tuple(self.detector.graph.members(record.number)) if record is not None else ()

    @property
    def last_tick(self) -> float | None:
        """Event time of the last detection tick (None before the first)."""
        now = self.detector.graph.now
        return float(now) if now is not None else None

    @property
    def counters(self) -> dict[str, int]:
        return self.window.counters()

    @property
    def tick_timings(self) -> list[float] | None:
        return self.detector.tick_timings

    @tick_timings.setter
    def tick_timings(self, value: list[float] | None) -> None:
        self.detector.tick_timings = value

    # -- inspection -------------------------------------------------------------------------------
    def partition(self) -> list[tuple[str, ...]]:
        """The tracked clusters' member sets, canonical order (for tests and replay checks)."""
        return [tuple(m) for m in self.detector.graph.partition()]

    def full_recompute_partition(self) -> list[tuple[str, ...]]:
        """The same rules evaluated from scratch over the current links (tests compare)."""
        return [tuple(m) for m in self.detector.graph.full_partition()]

    @property
    def held_events(self) -> int:
        """Events held for lateness or by the clock guard."""
        return int(self.window.kernel.held_events)

    def stats(self) -> dict[str, int]:
        window, graph = self.window.stats(), self.detector.stats()
        stats = {"accounts": graph["accounts"], "entities": graph["entities"], "links": window["links"],
                 "held_events": window["held_events"], "remembered_event_ids": window["remembered_event_ids"]}
        stats.update({k: v for k, v in graph.items() if k not in ("accounts", "entities", "links")})
        return stats

    def heap_bytes(self) -> dict[str, int]:
        """Bytes the kernel's structures hold (capacity, not just length): the window and the graph."""
        return {"window": int(self.window.kernel.heap_bytes()), "graph": int(self.detector.graph.heap_bytes())}
