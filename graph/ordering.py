"""Event-time policy: drop duplicate deliveries, hold events for the allowed lateness, release in order.

Watermark = (largest event time seen) - allowed lateness. An event is held until the watermark
passes it and is then released in (ts, event_id) order, so any arrival order within the lateness
bound gives the same sequence — and the same clusters. An event that arrives with ts already
behind the watermark is released at once and counted as late (nothing is dropped).
"""

from __future__ import annotations

import heapq
from collections import deque

from graph.events import AccountEvent


class Deduplicator:
    """Remembers event ids for ``retention_seconds`` of event time (the window plus lateness)."""

    def __init__(self, retention_seconds: float) -> None:
        self.retention = retention_seconds
        self._seen: dict[str, float] = {}
        self._order: deque[tuple[float, str]] = deque()  # (admitted watermark, id), append-ordered

    def admit(self, event_id: str, now: float) -> bool:
        """True the first time an id is seen; ``now`` is the current watermark (monotone)."""
        if event_id in self._seen:
            return False
        self._seen[event_id] = now
        self._order.append((now, event_id))
        return True

    def forget_before(self, cutoff: float) -> None:
        order, seen = self._order, self._seen
        while order and order[0][0] < cutoff:
            _, event_id = order.popleft()
            seen.pop(event_id, None)

    def __len__(self) -> int:
        return len(self._seen)


class ReorderBuffer:
    """Holds events until the watermark passes them; releases them sorted by (ts, event_id)."""

    def __init__(self, allowed_lateness: float) -> None:
        self.lateness = allowed_lateness
        self.max_ts = float("-inf")
        self._heap: list[tuple[float, str, AccountEvent]] = []
        self._released_upto = float("-inf")  # after flush(), events behind this are late
        self.late_events = 0

    @property
    def watermark(self) -> float:
        return max(self.max_ts - self.lateness, self._released_upto)

    def push(self, event: AccountEvent) -> list[AccountEvent]:
        """Add one event; return the events now released, in order."""
        if event.ts < self.watermark:
            self.late_events += 1
            return [event]
        if event.ts > self.max_ts:
            self.max_ts = event.ts
        heapq.heappush(self._heap, (event.ts, event.event_id, event))
        return self._release(self.watermark)

    def _release(self, upto: float) -> list[AccountEvent]:
        heap = self._heap
        out = []
        while heap and heap[0][0] <= upto:
            out.append(heapq.heappop(heap)[2])
        return out

    def flush(self) -> list[AccountEvent]:
        """Release everything held (end of input, or the stream went idle)."""
        out = self._release(float("inf"))
        self._released_upto = max(self._released_upto, self.max_ts)
        return out

    def __len__(self) -> int:
        return len(self._heap)
