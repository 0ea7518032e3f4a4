"""The changes topic: what stage A (each input partition's window, on whichever worker owns the
partition) sends to stage B (the global graph, on the one worker that owns this topic's single
partition). Its records are stage B's whole input, in one order every worker reads the same way:

* ``batch`` — the change batches one step of a partition's window closed (``graph/kernel``'s
  ``Batch.to_bytes``, each length-prefixed), split into parts of at most ``PART_BYTES`` so that no
  record exceeds Kafka's default request size;
* ``idle`` — a partition's owner saw no input on it for ``--idle-flush-seconds``: it no longer holds
  the other partitions' ticks back (its next batch makes it active again);
* ``verdict`` — an analyst's verdict, forwarded from ``fraud-verdicts`` so that stage B applies it at
  one place in its input, the same place on every rebuild.

The record key is the input partition (``verdict``: the cluster id); headers carry the kind, the
input partition, the first batch's tick and the part. Stage A sends one record at a time and waits
for its acknowledgement before the next, so the topic holds each partition's batches in tick order
(stage B drops a batch whose tick it already has: what a crashed owner's successor sends again).
Replaying the topic from the beginning rebuilds stage B.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from graph import _kernel

PART_BYTES = 512 * 1024
KIND, PARTITION, TICK, PART = "fraudgraph.change", "fraudgraph.partition", "fraudgraph.tick", "fraudgraph.part"


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One record to send to the changes topic."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def batch_records(partition: int, batches: list[_kernel.Batch]) -> list[ChangeRecord]:
    """The records of one step's batches of ``partition`` (none when it closed no tick)."""
    if not batches:
        return []
    encoded = [b.to_bytes() for b in batches]
    data = b"".join([struct.pack("<I", len(encoded)), *(struct.pack("<I", len(e)) + e for e in encoded)])
    parts = [data[i:i + PART_BYTES] for i in range(0, len(data), PART_BYTES)] or [b""]
    key = str(partition).encode()
    return [ChangeRecord(key, part, [(KIND, b"batch"), (PARTITION, key), (TICK, str(batches[0].tick_end).encode()),
                                     (PART, f"{i}/{len(parts)}".encode())]) for i, part in enumerate(parts)]


def idle_record(partition: int) -> ChangeRecord:
    key = str(partition).encode()
    return ChangeRecord(key, b"", [(KIND, b"idle"), (PARTITION, key)])


def verdict_record(key: bytes | None, value: bytes) -> ChangeRecord:
    return ChangeRecord(key or b"", value, [(KIND, b"verdict")])


@dataclass(frozen=True, slots=True)
class Change:
    """A decoded record of the changes topic: a step's batches, an idle mark, or a verdict's value."""

    kind: str
    partition: int = -1
    batches: tuple[_kernel.Batch, ...] = ()
    value: bytes = b""


class ChangeError(ValueError):
    pass


@dataclass(slots=True)
class ChangeReader:
    """Decodes the changes topic in order; a batch comes out when its last part arrives. A part 0
    restarts its batch (a stage A that crashed mid-batch sends the whole batch again)."""

    parts: dict[tuple[int, int], list[bytes]] = field(default_factory=dict)

    def read(self, value: bytes | None, headers: list[tuple[str, bytes]] | dict[str, bytes] | None) -> Change | None:
        h = dict(headers or [])
        kind = h.get(KIND, b"").decode()
        if kind == "verdict":
            return Change("verdict", value=value or b"")
        try:
            partition = int(h[PARTITION])
            if kind == "idle":
                return Change("idle", partition)
            if kind != "batch":
                raise ChangeError(f"unknown change kind {kind!r}")
            tick = int(h[TICK])
            index, count = (int(x) for x in h[PART].split(b"/"))
        except (KeyError, ValueError) as exc:
            raise ChangeError(f"malformed change record headers {sorted(h)}: {exc}") from None
        key = (partition, tick)
        if index == 0:
            self.parts[key] = []
        got = self.parts.get(key)
        if got is None or len(got) != index:  # a part without its start: a crash cut the batch; it comes again
            self.parts.pop(key, None)
            return None
        got.append(value or b"")
        if index + 1 < count:
            return None
        del self.parts[key]
        return Change("batch", partition, _decode(b"".join(got)))

    @property
    def pending(self) -> int:
        return len(self.parts)


def _decode(data: bytes) -> tuple[_kernel.Batch, ...]:
    try:
        (count,) = struct.unpack_from("<I", data, 0)
        at, out = 4, []
        for _ in range(count):
            (size,) = struct.unpack_from("<I", data, at)
            out.append(_kernel.Batch.from_bytes(data[at + 4:at + 4 + size]))
            at += 4 + size
    except (struct.error, ValueError) as exc:
        raise ChangeError(f"malformed change batches: {exc}") from None
    if at != len(data):
        raise ChangeError("malformed change batches: trailing bytes")
    return tuple(out)
