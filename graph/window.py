"""Stage A — one input partition's window (the Rust kernel's ``Window``): de-duplication, the clock
guard, the lateness buffer, and the account→entity links with exact expiry. It emits one change
batch per detection tick for the global graph (``graph/detector.py``).

This adapter numbers each event it feeds, so that the kernel can name a refused event by number and
the adapter can hand back its source (e.g. the Kafka record) for the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from graph import _kernel
from graph.config import DetectionConfig
from graph.events import EventColumns


class Rejection(StrEnum):
    """Why the core refused a decoded event (the adapter dead-letters it with the reason)."""

    CLOCK_SKEW = "clock_skew"
    ID_CONFLICT = "id_conflict"


_KINDS = {1: Rejection.CLOCK_SKEW, 2: Rejection.ID_CONFLICT}


@dataclass(frozen=True, slots=True)
class Rejected:
    source: Any  # what the adapter fed (a Kafka record, a line number, the event itself)
    kind: Rejection
    reason: str


class PartitionWindow:
    def __init__(self, config: DetectionConfig, partition: int = 0, kernel: _kernel.Window | None = None) -> None:
        """``kernel``: a window restored from a checkpoint (``graph/snapshot.py``) instead of a new one."""
        self.kernel = kernel if kernel is not None else _kernel.Window(config.kernel(partition))
        self._next = 0
        self._held: dict[int, Any] = {}  # events the clock guard holds: number -> source

    def policy_state(self) -> tuple[int, dict[int, Any]]:
        """What the adapter keeps beside the kernel (for a checkpoint)."""
        return self._next, dict(self._held)

    def restore_policy_state(self, state: tuple[int, dict[int, Any]]) -> None:
        self._next, self._held = state[0], dict(state[1])

    def feed(self, batch: EventColumns, wall: float | None = None) -> list[Rejected]:
        first = self._next
        self._next += len(batch)
        self.kernel.feed(batch.kernel_columns(first), wall)
        return self._settle(first, batch.sources)

    def feed_json(self, values: list[bytes], sources: list[Any], fallback: Callable[[int], tuple[Any, ...] | None],
                  wall: float | None = None) -> list[Rejected]:
        """Decode and apply contract JSON values in the kernel; ``fallback(i)`` decodes value ``i`` when
        the kernel's strict decoder does not take it (see graph/kernel/src/contract.rs)."""
        first = self._next
        self._next += len(values)
        self.kernel.feed_json(values, first, fallback, wall)
        return self._settle(first, sources)

    def flush(self, wall: float | None = None) -> list[Rejected]:
        """Release everything held (end of input, or the input went idle) and close the tick."""
        self.kernel.flush(wall)
        return self._settle(self._next, [])

    def _settle(self, first: int, sources: list[Any]) -> list[Rejected]:
        def find(number: int) -> Any:
            if first <= number < first + len(sources):
                return sources[number - first]
            return self._held.pop(number)

        out = []
        for number, kind, reason in self.kernel.take_rejected():
            out.append(Rejected(find(number), _KINDS[kind], reason))
        if self.kernel.guard_len or self._held:
            held: dict[int, Any] = {}
            for number in self.kernel.guard_sources():
                held[number] = self._held[number] if number in self._held else find(number)
            self._held = held
        return out

    def map_held(self, fn: Callable[[Any], Any]) -> None:
        """Replace the held events' sources by ``fn(source)`` (e.g. a client's message object by a plain
        record a checkpoint can hold)."""
        self._held = {number: fn(source) for number, source in self._held.items()}

    def held_sources(self) -> list[Any]:
        """Sources of the events the clock guard holds (they may still be refused)."""
        return list(self._held.values())

    def batches(self) -> Iterator[_kernel.Batch]:
        while (batch := self.kernel.pop_batch()) is not None:
            yield batch

    @property
    def watermark(self) -> float:
        return float(self.kernel.watermark)

    def counters(self) -> dict[str, int]:
        return dict(self.kernel.counters())

    def stats(self) -> dict[str, int]:
        return dict(self.kernel.stats())
