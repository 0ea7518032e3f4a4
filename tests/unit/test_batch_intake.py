"""The worker's batch path (``Pipeline.handle_partitions``, fed by ``streams/worker/intake.py``) does
exactly what the record path does: the same change batches, dead letters (with the original bytes,
key, headers, partition and offset) and offsets; records the state already holds are skipped."""

from __future__ import annotations

import dataclasses

import orjson

from graph import DetectionEngine
from streams.runtime.pipeline import Part, Pipeline, Record, iso
from tests.conftest import small_config
from tests.unit.scenarios import farm


@dataclasses.dataclass
class Message:
    """What confluent-kafka's Message offers (``streams.runtime.pipeline.KafkaMessage``)."""

    _value: bytes | None
    _key: bytes | None
    _partition: int
    _offset: int
    _topic: str = "events"
    _headers: list[tuple[str, bytes]] | None = None

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def topic(self) -> str:
        return self._topic

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers


def stream() -> list[Message]:
    """Two farms over two partitions (by account), with a line that is not JSON, a contract violation
    and a tombstone among them."""
    events = farm("f", 40, 5, step=5.0) + farm("g", 30, 4, step=7.0, dc_ip=None)
    messages: list[Message] = []
    offsets = [0, 0]
    for i, e in enumerate(sorted(events, key=lambda e: e.ts)):
        value = orjson.dumps({k: v for k, v in dataclasses.asdict(e).items() if v is not None} | {"ts": iso(e.ts)})
        partition = int(e.account_id[1:]) % 2
        if i == 17:
            value = b"{not json"
        elif i == 41:
            value = orjson.dumps({"event_id": "x", "type": "login"})  # no account, no time
        elif i == 63:
            value = None
        messages.append(Message(value, e.account_id.encode(), partition, offsets[partition],
                                _headers=[("trace", b"t%d" % i)]))
        offsets[partition] += 1
    return messages


def pipeline() -> Pipeline:
    return Pipeline(DetectionEngine(small_config(), clock=lambda: 0.0, partitions=2, split=True), wall=lambda: 0.0)


def as_parts(messages: list[Message]) -> dict[int, Part]:
    parts: dict[int, Part] = {}
    for m in messages:
        part = parts.setdefault(m.partition(), Part())
        part.values.append(m.value())
        part.offsets.append(m.offset())
        part.sources.append(m)
    return parts


def outcome(emitted) -> tuple:
    changes = [(c.key, c.value, c.headers) for c in emitted.changes]
    dead = [(d.reason, d.kind, d.record.value, d.record.key, d.record.partition, d.record.offset, d.record.headers)
            for d in emitted.dead]
    return changes, sorted(dead, key=lambda d: (d[4], d[5]))


def test_the_batch_path_emits_what_the_record_path_emits():
    messages = stream()
    by_record, by_batch = pipeline(), pipeline()
    expected = ([], [])
    got = ([], [])
    for start in range(0, len(messages), 50):  # batches of 50, each mixing both partitions
        chunk = messages[start:start + 50]
        a = outcome(by_record.handle([Record(m.value(), m.key(), m.partition(), m.offset(), "events",
                                             tuple(m.headers() or ())) for m in chunk]))
        b = outcome(by_batch.handle_partitions("events", as_parts(chunk)))
        expected[0].extend(a[0]), expected[1].extend(a[1])
        got[0].extend(b[0]), got[1].extend(b[1])
    assert got == expected
    assert len(got[1]) == 3 and {d[1] for d in got[1]} == {"not_json", "contract", "tombstone"}
    assert any(d[6] == (("trace", b"t17"),) for d in got[1])  # the original headers ride along
    assert len(got[0]) > 0  # ticks closed: change batches to send
    assert by_batch.next_offsets == by_record.next_offsets == {("events", 0): 90, ("events", 1): 90}


def test_records_the_state_holds_are_skipped():
    messages = stream()
    p = pipeline()
    first = p.handle_partitions("events", as_parts(messages[:80]))
    again = p.handle_partitions("events", as_parts(messages[:100]))  # a redelivery overlapping the state
    fresh = pipeline()
    fresh.handle_partitions("events", as_parts(messages[:80]))
    only_new = fresh.handle_partitions("events", as_parts(messages[80:100]))
    assert outcome(again) == outcome(only_new)
    assert first.dead and not any(d.record.offset < 40 for d in again.dead)


def test_a_checkpoint_taken_while_the_clock_guard_holds_messages_restores():
    """The batch intake's sources are the Kafka client's message objects; while the clock guard holds
    events (a partition's first arrivals, an event ahead of the stream) a checkpoint must still be one a
    restart accepts — the held sources are kept as records, with their bytes and coordinates."""
    from graph import snapshot
    from streams.worker.checkpoints import capture

    config = small_config(skew_sample=31)  # the guard holds each partition's first 31 arrivals
    p = Pipeline(DetectionEngine(config, clock=lambda: 0.0, partitions=2, split=True), wall=lambda: 0.0)
    messages = stream()
    p.handle_partitions("events", as_parts(messages[:20]))
    assert any(w.held_sources() for w in p.engine.windows), "the guard holds some of them"
    p.next_offsets.setdefault(("events", 0), 0)
    p.next_offsets.setdefault(("events", 1), 0)
    windows = [snapshot.load_window(capture(p, f"window-{n}", ("events", n), wall=lambda: 0.0)[0], config, n, 2,
                                    source=Record)[0] for n in range(2)]
    held = [s for w in windows for s in w.held_sources()]
    assert held and all(isinstance(s, Record) for s in held)
    sent = {(m.partition(), m.offset()): (m.value(), m.key()) for m in messages[:20]}
    assert all(sent[(s.partition, s.offset)] == (s.value, s.key) for s in held)
    assert sorted((s.partition, s.offset) for s in held) == \
        sorted((s.partition, s.offset) for w in p.engine.windows for s in w.held_sources())
