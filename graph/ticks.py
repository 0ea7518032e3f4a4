"""Event time across partitions: the global graph applies tick ``t`` only once every partition that
is not idle has closed ``t`` in its own window.

Each input partition has its own window (stage A, ``graph/window.py``) with its own watermark, so
partitions that interleave in event time are never "late" against each other. A window emits one
change batch per detection tick it closes. The merge holds the batches and releases them tick by
tick, in event-time order, up to the *horizon*: the oldest tick that every partition that is not idle
has closed. The global watermark is therefore the minimum over those partitions, and the graph sees
the same ticks with the same changes however the accounts were spread over partitions.

A partition that has not sent anything yet holds the horizon back (its first events may be older
than the others'), unless its owner declares it idle (no input for a while, or the input ended).
Batches of an idle partition that arrive after the horizon moved past their tick are applied with
the next tick (the graph's clock never goes back).

    >>> class B:  # a stand-in for the kernel's Batch
    ...     def __init__(self, p, t): self.partition, self.tick_end = p, t
    ...     def __repr__(self): return f"{self.partition}@{self.tick_end}"
    >>> m = TickMerge(2)
    >>> m.add(0, B(0, 60)); m.add(0, B(0, 120))
    >>> list(m.ready())          # partition 1 has closed nothing yet
    []
    >>> m.add(1, B(1, 60))
    >>> list(m.ready())
    [[0@60, 1@60]]
    >>> list(m.ready(idle={1}))  # partition 1 idle: the horizon is partition 0's
    [[0@120]]
    >>> m.add(1, B(1, 120)); m.add(1, B(1, 180))
    >>> list(m.ready())          # 1@120 is behind the applied tick: it waits to join the next one
    []
    >>> m.add(0, B(0, 180))
    >>> list(m.ready())
    [[0@180, 1@120, 1@180]]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Protocol


class TickBatch(Protocol):
    @property
    def tick_end(self) -> int: ...


class TickMerge:
    def __init__(self, partitions: int) -> None:
        self.pending: list[deque[Any]] = [deque() for _ in range(partitions)]
        self.closed: list[int | None] = [None] * partitions  # newest tick each partition's window closed
        self.applied: int | None = None  # the newest tick released

    def add(self, partition: int, batch: TickBatch) -> None:
        self.pending[partition].append(batch)
        self.closed[partition] = batch.tick_end

    def horizon(self, idle: Iterable[int] = ()) -> int | None:
        """The newest tick every partition that is not idle has closed (None: nothing can be released)."""
        skip = set(idle)
        counted = [c for p, c in enumerate(self.closed) if p not in skip]
        if not counted or any(c is None for c in counted):
            return None
        return min(c for c in counted if c is not None)

    def ready(self, idle: Iterable[int] = (), everything: bool = False) -> Iterator[list[Any]]:
        """The batches of each tick that can be applied now, oldest tick first; ``everything`` releases
        all that is held (the input ended or went idle as a whole)."""
        if everything:
            limit: int | None = max((q[-1].tick_end for q in self.pending if q), default=None)
        else:
            limit = self.horizon(idle)
        if limit is None:
            return
        while True:
            heads = [q[0].tick_end for q in self.pending if q and q[0].tick_end <= limit]
            if not heads:
                return
            tick = min(heads)
            if self.applied is not None and tick <= self.applied:  # late partition: with the next tick
                later = [q[0].tick_end for q in self.pending if q and self.applied < q[0].tick_end <= limit]
                if not later:
                    if not everything:
                        return
                    later = [tick]
                tick = min(later)
            group = []
            for q in self.pending:
                while q and q[0].tick_end <= tick:
                    group.append(q.popleft())
            self.applied = tick if self.applied is None else max(self.applied, tick)
            yield group

    def held(self) -> int:
        return sum(len(q) for q in self.pending)
