"""``--checkpoint-store kafka``: checkpoints in the compacted topic ``<app-id>-checkpoints``, which every
worker of the app reads, so a worker handed a partition or stage B adopts the state its previous owner
checkpointed (``streams/worker/checkpoints.py``).

Why Kafka and not an object store: the workers already depend on the cluster, its replication makes a
checkpoint as durable as the input it covers, its ACLs and TLS already guard the workers' topics, and
there is nothing new to run, back up or authorise. The cost is the broker's record size: a checkpoint
is cut into chunks.

Layout (one partition, ``cleanup.policy=compact``), for each unit (``window-<p>`` or ``global``):

* ``<unit>@<generation>#<i>`` — chunk ``i`` (512 KiB at most) of one checkpoint;
* ``<unit>`` — the manifest of the latest checkpoint: JSON ``{generation, chunks, size, sha256, offset}``;
* ``<unit>~previous`` — the manifest of the one before it.

A checkpoint's chunks are acknowledged before its manifest is written, so a reader never follows a
manifest to chunks that are not there; after the manifest, the chunks of the checkpoint that dropped
out (the old previous) and any a crash left half-written get tombstones, and compaction removes them:
the topic holds about two checkpoints per unit. A reader takes the manifests' chunks, checks their
count, size and SHA-256, and hands the bytes to ``graph/snapshot.py``, which checks the signature
(``--checkpoint-key-file``): whoever can write this topic cannot plant state without the key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from kafka import KafkaProducer

from streams.kafka_security import kafka_python_args, librdkafka_config
from streams.settings import Settings
from streams.worker.checkpoints import Candidate

log = logging.getLogger("fraudgraph.checkpoints")

CHUNK = 512 * 1024
PREVIOUS = "~previous"
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": "60000",  # the active segment is never compacted: roll it every minute
    "min.cleanable.dirty.ratio": "0.1",
    "delete.retention.ms": "60000",  # tombstones of dropped chunks go a minute after compaction
    "max.message.bytes": str(2 * CHUNK),
}


class TopicStore:
    def __init__(self, settings: Settings, key: bytes | None = None, clock: Any = time.time) -> None:
        self.settings = settings
        self.key = key
        self.topic = settings.checkpoints_topic
        self.clock = clock
        self.known: dict[str, list[dict[str, Any]]] = {}  # unit -> manifests [latest, previous] as read or written
        self.stray: dict[str, set[str]] = {}  # unit -> chunk keys seen that no known manifest refers to
        self._producer: KafkaProducer | None = None

    def describe(self) -> str:
        return f"topic {self.topic}"

    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = KafkaProducer(bootstrap_servers=self.settings.bootstrap, acks="all",
                                           max_request_size=2 * CHUNK + 4096, linger_ms=5,
                                           client_id="fraudgraph-checkpoints", **kafka_python_args(self.settings))
        return self._producer

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=5)
            except Exception as exc:  # noqa: BLE001 - it is dropped either way
                log.warning("checkpoint producer did not close cleanly: %s", exc)

    def _send(self, records: Sequence[tuple[str, bytes | None]]) -> None:
        producer = self.producer()
        try:
            futures = [producer.send(self.topic, key=key.encode(), value=value) for key, value in records]
            producer.flush(timeout=60)
            for future in futures:
                future.get(timeout=60)  # raises if the broker did not acknowledge it
        except Exception:
            self.close()  # the client aborts every later batch after some errors: a new one for the next try
            raise

    def save(self, unit: str, data: bytes, offset: int) -> int:
        generation = f"{int(self.clock() * 1000):012x}-{os.urandom(4).hex()}"
        chunks = max(1, -(-len(data) // CHUNK))
        keys = [f"{unit}@{generation}#{i}" for i in range(chunks)]
        manifest = {"unit": unit, "generation": generation, "chunks": chunks, "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(), "offset": offset}
        known = self.known.get(unit, [])
        latest = [(PREVIOUS, known[0])] if known else []
        try:
            self._send([(key, data[i * CHUNK:(i + 1) * CHUNK]) for i, key in enumerate(keys)])
            self._send([(f"{unit}{suffix}", json.dumps(m, sort_keys=True).encode()) for suffix, m in latest]
                       + [(unit, json.dumps(manifest, sort_keys=True).encode())])
        except Exception:
            self.stray.setdefault(unit, set()).update(keys)  # some may have landed: dropped by the next save
            raise
        dropped = {_chunk_key(m, i) for m in known[1:] for i in range(int(m.get("chunks", 0)))} | self.stray.pop(unit, set())
        if dropped:
            try:
                self._send([(k, None) for k in sorted(dropped)])
            except Exception as exc:  # noqa: BLE001 - left for the next checkpoint of this unit
                self.stray[unit] = dropped
                log.warning("old checkpoint chunks of %s not dropped yet: %s", unit, exc)
        self.known[unit] = [manifest, *known[:1]]
        return len(data)

    def floor(self, unit: str) -> int | None:
        """The offset the latest checkpoint of ``unit`` this store wrote or read covers: its log before it is
        no longer needed (None when it knows of none)."""
        offset = self.known[unit][0].get("offset") if self.known.get(unit) else None
        return offset if isinstance(offset, int) else None

    def read(self, units: list[str]) -> dict[str, list[Candidate]]:
        """Each unit's kept checkpoints, latest first: one pass over the topic with librdkafka (the checkpoints
        of every partition and of stage B are tens of MiB; a pure-Python client reads them 10x slower)."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException
        from confluent_kafka import TopicPartition as Partition

        wanted = set(units)
        manifests: dict[str, dict[str, bytes]] = {u: {} for u in wanted}  # unit -> {"": latest, PREVIOUS: previous}
        chunks: dict[str, dict[str, bytes]] = {u: {} for u in wanted}  # unit -> chunk key -> bytes
        consumer = Consumer({**librdkafka_config(self.settings), "group.id": f"{self.settings.app_id}-checkpoint-reader",
                             "enable.auto.commit": False, "enable.partition.eof": True,
                             "fetch.max.bytes": 64 * 1024 * 1024, "max.partition.fetch.bytes": 64 * 1024 * 1024,
                             "receive.message.max.bytes": 80 * 1024 * 1024},
                            logger=logging.getLogger("fraudgraph.checkpoints.client"))
        try:
            if not consumer.list_topics(self.topic, timeout=30).topics[self.topic].partitions:
                return {u: [] for u in units}
            low, end = consumer.get_watermark_offsets(Partition(self.topic, 0), timeout=30)
            if end > low:
                consumer.assign([Partition(self.topic, 0, OFFSET_BEGINNING)])
                position, deadline = low, time.monotonic() + 600
                while position < end:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"reading {self.topic} took more than 600 s")
                    for m in consumer.consume(num_messages=1000, timeout=1.0):
                        error = m.error()
                        if error is not None:
                            if error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001 - librdkafka's EOF code
                                position = max(position, m.offset() or end)
                                continue
                            raise KafkaException(error)
                        offset, key = m.offset() or 0, m.key()
                        position = offset + 1
                        if offset < end and key is not None:
                            _take(key.decode("utf-8", "replace"), m.value(), wanted, manifests, chunks)
        finally:
            consumer.close()
        out: dict[str, list[Candidate]] = {}
        for unit in units:
            found, known = [], []
            for suffix, name in (("", "latest"), (PREVIOUS, "previous")):
                raw = manifests[unit].get(suffix)
                if raw is None:
                    continue
                candidate, manifest = _assemble(self.topic, unit, name, raw, chunks[unit])
                found.append(candidate)
                if manifest is not None:
                    known.append(manifest)
            out[unit] = found
            self.known[unit] = known
            referenced = {_chunk_key(m, i) for m in known for i in range(int(m["chunks"]))}
            self.stray[unit] = set(chunks[unit]) - referenced
        return out


def _chunk_key(manifest: dict[str, Any], i: int) -> str:
    return f"{manifest.get('unit')}@{manifest.get('generation')}#{i}"


def _take(key: str, value: bytes | None, wanted: set[str], manifests: dict[str, dict[str, bytes]],
          chunks: dict[str, dict[str, bytes]]) -> None:
    """One record of the topic, in offset order (a tombstone removes what its key held)."""
    if "@" in key:
        unit = key.split("@", 1)[0]
        if unit in wanted:
            if value is None:
                chunks[unit].pop(key, None)
            else:
                chunks[unit][key] = value
        return
    unit, suffix = (key[:-len(PREVIOUS)], PREVIOUS) if key.endswith(PREVIOUS) else (key, "")
    if unit in wanted:
        if value is None:
            manifests[unit].pop(suffix, None)
        else:
            manifests[unit][suffix] = value


def _assemble(topic: str, unit: str, name: str, raw: bytes,
              chunks: dict[str, bytes]) -> tuple[Candidate, dict[str, Any] | None]:
    label = f"{topic} {unit} ({name})"
    try:
        manifest = json.loads(raw)
        count, size, digest = int(manifest["chunks"]), int(manifest["size"]), str(manifest["sha256"])
        if manifest.get("unit") != unit or count < 1:
            raise ValueError("manifest of another unit")
    except (ValueError, KeyError, TypeError) as exc:
        return Candidate(label, None, f"unreadable manifest: {exc}"), None
    label = f"{topic} {unit} generation {manifest.get('generation')} ({name})"
    parts = [chunks.get(_chunk_key(manifest, i)) for i in range(count)]
    missing = [i for i, part in enumerate(parts) if part is None]
    if missing:
        return Candidate(label, None, f"chunk(s) {missing[:5]} of {count} missing"), manifest
    data = b"".join(p for p in parts if p is not None)
    if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
        return Candidate(label, None, "its chunks do not match the manifest's size and checksum"), manifest
    return Candidate(label, data), manifest
