"""The detection engine in one process: one partition window (stage A, ``graph/window.py``) feeding
the global detector (stage B, ``graph/detector.py``). ``replay``, a single worker and the benchmarks
drive it; the partitioned worker runs the same two stages apart.

    engine = DetectionEngine(DetectionConfig(), clock=time.time)
    out = engine.process(events)   # any batch; returns alerts, lineage and re-scored clusters
    out = engine.flush()           # end of input (or idle stream): release held events, final tick

With ``partitions=N`` (a worker reading N input partitions) each partition has a window of its own,
with its own watermark, and ``graph/ticks.py`` merges their ticks: the same events spread over any
number of partitions give the same output as one partition (and as ``replay``).

With ``split=True`` (the worker; ``replay`` too, its stages on two threads) the two stages meet only
through change batches, each with names of its own, as when they run in different processes (where
the batches travel serialised): ``feed_json`` + ``take_batches`` (stage A, per partition) on one side;
``receive`` / ``receive_idle`` + ``release`` (stage B) on the other. Stage B drops a batch whose tick
it already has from that partition, so a batch sent twice is applied once.

Event time drives everything (windows, ticks, expiry, lineage times); ``clock`` only stamps
``created_at`` on alerts. The same events in any arrival order within the allowed lateness, with any
duplicates, give the same output.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from graph import _kernel
from graph.alerts import AlertBook
from graph.config import DetectionConfig
from graph.detector import ClusterSnapshot, Detector, EngineOutput
from graph.events import AccountEvent, EventColumns
from graph.identity import ClusterRecord
from graph.ticks import TickMerge
from graph.window import PartitionWindow, Rejected, Rejection

__all__ = ["ClusterSnapshot", "DetectionEngine", "EngineOutput", "Rejected", "Rejection"]


class DetectionEngine:
    def __init__(self, config: DetectionConfig | None = None, clock: Callable[[], float] = time.time,
                 partitions: int = 1, idle_seconds: float = 5.0,
                 restored: tuple[list[PartitionWindow], _kernel.Graph] | None = None, split: bool = False) -> None:
        """``partitions``: input partitions, each with its own window; ``idle_seconds``: wall seconds
        without input after which a partition no longer holds the others' ticks back (live input only);
        ``restored``: windows and graph from a checkpoint (``graph/snapshot.py`` builds them);
        ``split``: the stages exchange serialised batches (see the module's docstring)."""
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, not {partitions}")
        self.config = config or DetectionConfig()
        if restored is not None and len(restored[0]) != partitions:
            raise ValueError(f"restored {len(restored[0])} windows for {partitions} partitions")
        self.windows = restored[0] if restored else [PartitionWindow(self.config, p) for p in range(partitions)]
        self.window = self.windows[0]
        self.split = split
        self.clock = clock
        # One partition in one process: the graph shares the window's names (batches carry ids).
        # Several, or split: names travel in the batches, as they do between processes.
        self.detector = Detector(self.config, clock, self.window if partitions == 1 and not split else None,
                                 restored[1] if restored else None)
        self.idle_seconds = idle_seconds
        self._merge = TickMerge(partitions)
        self.idle: set[int] = set()  # split: partitions whose owners declared them idle (stage B's view)
        self._last_input: list[float | None] = [None] * partitions  # wall time of each partition's last input

    @property
    def partitions(self) -> int:
        return len(self.windows)

    def process(self, events: Iterable[AccountEvent] | EventColumns, wall: float | None = None,
                partition: int = 0) -> EngineOutput:
        """Apply a batch of one partition. ``wall`` (the worker's wall clock, epoch seconds) also bounds
        event time; ``replay`` passes none. Rejected events come back in ``EngineOutput.rejected``."""
        batch = events if isinstance(events, EventColumns) else EventColumns.from_events(events)
        out = EngineOutput()
        out.rejected = self._window(partition, wall).feed(batch, wall)
        self.detect(out, wall)
        return out

    def process_json(self, values: list[bytes], sources: list[Any],
                     fallback: Callable[[int], tuple[Any, ...] | None], wall: float | None = None,
                     partition: int = 0) -> EngineOutput:
        """Apply a batch of contract JSON values of one partition, decoded in the kernel (``fallback``
        decodes what its strict fast path leaves: see ``PartitionWindow.feed_json``)."""
        out = EngineOutput()
        out.rejected = self.feed_json(values, sources, fallback, wall, partition)
        self.detect(out, wall)
        return out

    def feed_json(self, values: list[bytes], sources: list[Any], fallback: Callable[[int], tuple[Any, ...] | None],
                  wall: float | None = None, partition: int = 0) -> list[Rejected]:
        """Stage A only (one partition's window); ``detect`` then runs the ticks every partition closed."""
        return self._window(partition, wall).feed_json(values, sources, fallback, wall)

    def flush(self, wall: float | None = None) -> EngineOutput:
        """Release every held event and run the ticks that cover them (end of input, idle input)."""
        out = EngineOutput()
        for window in self.windows:
            out.rejected.extend(window.flush(wall))
        self.detect(out, wall, everything=True)
        self.detector.settle(out)
        return out

    def detect(self, out: EngineOutput, wall: float | None = None, everything: bool = False) -> None:
        """Stage B: apply, tick by tick, what every partition that is not idle has closed."""
        if len(self.windows) == 1:
            for batch in self.window.batches():
                out.extend(self.detector.apply([batch]))
            out.watermark = self.window.watermark
            return
        for p, window in enumerate(self.windows):
            for batch in window.batches():
                self._merge.add(p, batch)
        for group in self._merge.ready(self._idle(wall), everything):
            out.extend(self.detector.apply(group))
        out.watermark = self.watermark

    # -- split stages ---------------------------------------------------------------------------
    def take_batches(self, partition: int) -> list[_kernel.Batch]:
        """Stage A: the change batches partition ``partition``'s window closed (to send to stage B)."""
        return list(self.windows[partition].batches())

    def flush_partition(self, partition: int, wall: float | None = None) -> list[Rejected]:
        """Stage A: partition ``partition`` went idle: release what its window holds and close its tick."""
        return self.windows[partition].flush(wall)

    def receive(self, partition: int, batch: _kernel.Batch) -> bool:
        """Stage B: a change batch of ``partition``; False (and ignored) when its tick is already here:
        ticks of one partition only grow, so a batch sent again after a crash is applied once."""
        closed = self._merge.closed[partition]
        if closed is not None and batch.tick_end <= closed:
            return False
        self.idle.discard(partition)
        self._merge.add(partition, batch)
        return True

    def receive_idle(self, partition: int) -> None:
        """Stage B: ``partition``'s owner saw no input for a while: it no longer holds ticks back."""
        self.idle.add(partition)

    def release(self) -> EngineOutput:
        """Stage B: apply, tick by tick, what every partition that is not idle has closed (all that is
        held once every partition is idle)."""
        out = EngineOutput()
        everything = len(self.idle) == self.partitions
        for group in self._merge.ready(sorted(self.idle), everything):
            out.extend(self.detector.apply(group))
        if everything:
            self.detector.settle(out)  # as flush() does at the end of input
        return out

    def reset_window(self, partition: int) -> None:
        """Forget a partition this worker no longer owns (another worker's window holds it now)."""
        self.windows[partition] = PartitionWindow(self.config, partition)
        if partition == 0:
            self.window = self.windows[0]

    def reset_global(self) -> None:
        """Forget stage B (another worker owns it now)."""
        capture = self.detector.capture_links  # whoever records alerts' links goes on recording them
        self.detector = Detector(self.config, self.clock, None, None)
        self.detector.capture_links = capture
        self._merge = TickMerge(self.partitions)
        self.idle = set()

    def adopt_window(self, partition: int, window: PartitionWindow) -> None:
        """Take partition ``partition``'s window as another process left it (``snapshot.load_window``)."""
        if not self.split:
            raise ValueError("only a split engine adopts a stage's state")
        self.windows[partition] = window
        if partition == 0:
            self.window = window

    def adopt_global(self, state: tuple[_kernel.Graph, dict[str, Any]]) -> None:
        """Take stage B as another process left it (``snapshot.load_global``)."""
        if not self.split:
            raise ValueError("only a split engine adopts a stage's state")
        graph, policy = state
        capture = self.detector.capture_links
        self.detector = Detector(self.config, self.clock, None, graph)
        self.detector.capture_links = capture
        self.detector.restore_policy_state(policy["detector"])
        self._merge = TickMerge(self.partitions)
        self._restore_merge(policy["merge"])

    def _window(self, partition: int, wall: float | None) -> PartitionWindow:
        if not 0 <= partition < len(self.windows):
            raise ValueError(f"partition {partition} is not one of this engine's {len(self.windows)}")
        if wall is not None:
            self._last_input[partition] = wall
            for p, seen in enumerate(self._last_input):  # the clock of idleness starts with the first input
                if seen is None:
                    self._last_input[p] = wall
        return self.windows[partition]

    def _idle(self, wall: float | None) -> list[int]:
        if wall is None:
            return []
        return [p for p, seen in enumerate(self._last_input) if seen is not None and wall - seen >= self.idle_seconds]

    @property
    def watermark(self) -> float:
        """The global watermark: the minimum over partitions that have seen events."""
        marks = [w.watermark for w in self.windows if w.watermark > float("-inf")]
        return min(marks) if marks else float("-inf")

    def policy_state(self) -> dict[str, Any]:
        """What the engine keeps beside its kernels' states (``graph/snapshot.py`` stores both)."""
        merge = self._merge
        return {"windows": [w.policy_state() for w in self.windows], "detector": self.detector.policy_state(),
                "merge": {"pending": [[b.to_bytes() for b in q] for q in merge.pending],
                          "closed": list(merge.closed), "applied": merge.applied, "idle": sorted(self.idle)}}

    def restore_policy_state(self, state: dict[str, Any]) -> None:
        for window, part in zip(self.windows, state["windows"], strict=True):
            window.restore_policy_state(part)
        self.detector.restore_policy_state(state["detector"])
        self._restore_merge(state["merge"])

    def _restore_merge(self, merge: dict[str, Any]) -> None:
        self._merge.pending = [deque(_kernel.Batch.from_bytes(b) for b in q) for q in merge["pending"]]
        self._merge.closed = list(merge["closed"])
        self._merge.applied = merge["applied"]
        self.idle = set(merge["idle"])

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
        return _sum(w.counters() for w in self.windows)

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
        """Events held for lateness or by the clock guard (plus change batches waiting for other partitions)."""
        return sum(int(w.kernel.held_events) for w in self.windows) + self._merge.held()

    def stats(self) -> dict[str, int]:
        window, graph = _sum(w.stats() for w in self.windows), self.detector.stats()
        stats = {"accounts": graph["accounts"], "entities": graph["entities"], "links": window["links"],
                 "held_events": window["held_events"], "remembered_event_ids": window["remembered_event_ids"]}
        stats.update({k: v for k, v in graph.items() if k not in ("accounts", "entities", "links")})
        return stats

    def heap_bytes(self) -> dict[str, int]:
        """Bytes the kernel's structures hold (capacity, not just length): the window and the graph."""
        return {"window": sum(int(w.kernel.heap_bytes()) for w in self.windows),
                "graph": int(self.detector.graph.heap_bytes())}

    def held_sources(self) -> list[Any]:
        """Sources of the events the windows' clock guards hold (they may still be refused)."""
        return [s for w in self.windows for s in w.held_sources()]


def _sum(parts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        for k, v in part.items():
            total[k] = total.get(k, 0) + v
    return total
