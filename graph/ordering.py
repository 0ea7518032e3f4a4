"""Event-time policy: drop duplicate deliveries, bound clock skew, hold events for the allowed
lateness, release in order.

Watermark = (largest event time seen) - allowed lateness. An event is held until the watermark
passes it and is then released in (ts, event_id) order, so any arrival order within the lateness
bound gives the same sequence — and the same clusters. An event that arrives with ts already
behind the watermark is released at once and counted as late (nothing is dropped).

Event time comes from clients, and fraudsters control clients: :class:`ClockGuard` keeps an event
dated far ahead of the stream from moving the watermark (which would expire every link and make
every later event "too old").
"""

from __future__ import annotations

import heapq
from collections import deque
from enum import StrEnum

from graph.events import AccountEvent


class Admission(StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"  # the same id with the same content: a re-delivery, dropped
    CONFLICT = "conflict"  # the same id with different content: not a re-delivery, rejected


class Deduplicator:
    """Remembers event ids (with a content fingerprint) for ``retention_seconds`` of event time."""

    def __init__(self, retention_seconds: float) -> None:
        self.retention = retention_seconds
        self._seen: dict[str, bytes] = {}
        self._order: deque[tuple[float, str]] = deque()  # (admitted watermark, id), append-ordered
        self._unstamped: list[str] = []  # admitted before there was a watermark (start-up)

    def admit(self, event: AccountEvent, now: float) -> Admission:
        """NEW the first time an id is seen; ``now`` is the current watermark (monotone)."""
        digest = event.digest()
        known = self._seen.get(event.event_id)
        if known is not None:
            return Admission.DUPLICATE if known == digest else Admission.CONFLICT
        self._seen[event.event_id] = digest
        if now == float("-inf"):
            self._unstamped.append(event.event_id)
        else:
            self._order.append((now, event.event_id))
        return Admission.NEW

    def forget_before(self, cutoff: float) -> None:
        order, seen = self._order, self._seen
        if self._unstamped:  # ids from before the first watermark: keep them one more retention
            order.extendleft((cutoff + self.retention, i) for i in reversed(self._unstamped))
            self._unstamped = []
        while order and order[0][0] < cutoff:
            _, event_id = order.popleft()
            seen.pop(event_id, None)

    def __len__(self) -> int:
        return len(self._seen)


class ClockGuard:
    """Keeps events dated far ahead of the stream from moving the watermark.

    The stream's event time is the median of the last ``sample`` arrivals: one client with a skewed
    clock cannot move a median, a stream that resumes after a quiet gap moves it within ``sample / 2``
    events. An arrival more than ``max_skew`` ahead of both the watermark and that median (or, where
    a wall clock is given, of the wall clock) is not applied:

    * ahead of the wall clock: rejected at once;
    * ahead of the stream: held aside (it does not move the watermark) and released as soon as the
      stream catches up with it — a gap, not a skew — or rejected after ``2 * sample`` further
      arrivals, or when the input ends or goes idle, if the stream never does (an idle live input
      is bounded by the wall clock instead).

    Until ``sample`` events have arrived there is no trustworthy stream time, so every event is held
    aside; the first median releases them. Decisions depend only on arrival order, never on batch
    boundaries, so the worker and ``replay`` agree.
    """

    def __init__(self, max_skew: float, sample: int = 31) -> None:
        self.max_skew = max_skew
        self.sample = sample
        self._recent: deque[float] = deque(maxlen=sample)
        self._arrivals = 0
        self._held: deque[tuple[int, AccountEvent]] = deque()  # (arrival number, event), arrival order

    @property
    def warm(self) -> bool:
        return self._arrivals >= self.sample

    def stream_time(self) -> float:
        ordered = sorted(self._recent)
        return ordered[(len(ordered) - 1) // 2] if ordered else float("-inf")  # the lower median

    def check(self, event: AccountEvent, watermark: float, wall: float | None
              ) -> tuple[list[AccountEvent], list[tuple[AccountEvent, str]]]:
        """One arrival: (events to apply now, in order; events rejected with a reason)."""
        if wall is not None and event.ts > wall + self.max_skew:
            return [], [(event, f"ts is {event.ts - wall:,.0f} s ahead of the wall clock "
                                f"(more than the {self.max_skew:,.0f} s allowed skew)")]
        self._arrivals += 1
        self._recent.append(event.ts)
        ready: list[AccountEvent] = []
        rejected: list[tuple[AccountEvent, str]] = []
        limit = None
        if self._held:
            limit = max(watermark, self.stream_time()) + self.max_skew
            self._release(limit, ready, rejected)
        if self.warm and event.ts <= watermark + self.max_skew:
            ready.append(event)  # the common case: no median needed
            return ready, rejected
        if limit is None:
            limit = max(watermark, self.stream_time()) + self.max_skew
        if self.warm and event.ts <= limit:
            ready.append(event)
        else:
            self._held.append((self._arrivals, event))
        return ready, rejected

    def _release(self, limit: float, ready: list[AccountEvent], rejected: list[tuple[AccountEvent, str]],
                 final: bool = False) -> None:
        if not self.warm and not final:
            return
        keep: deque[tuple[int, AccountEvent]] = deque()
        for arrived, event in self._held:
            if event.ts <= limit:
                ready.append(event)
            elif final or self._arrivals - arrived > 2 * self.sample:
                rejected.append((event, f"ts is {event.ts - (limit - self.max_skew):,.0f} s ahead of the "
                                        f"stream's event time (more than the {self.max_skew:,.0f} s allowed skew)"))
            else:
                keep.append((arrived, event))
        self._held = keep

    def drain(self, watermark: float, wall: float | None) -> tuple[list[AccountEvent], list[tuple[AccountEvent, str]]]:
        """End of input, or the input went idle: release what the stream caught up with and reject the
        rest. With a wall clock, an idle input means the stream is live, so the wall clock bounds it."""
        ready: list[AccountEvent] = []
        rejected: list[tuple[AccountEvent, str]] = []
        if self._held:
            limit = max(watermark, self.stream_time()) + self.max_skew
            if wall is not None:
                limit = max(limit, wall + self.max_skew)
            self._release(limit, ready, rejected, final=True)
        return ready, rejected

    def __len__(self) -> int:
        return len(self._held)


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
