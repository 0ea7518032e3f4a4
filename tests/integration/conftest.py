"""Integration fixtures: one real Apache Kafka broker per session; one isolated worker per test
(its own topics, consumer group, metrics port and audit store)."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.dev.localrun import metric_sum, scrape, start_worker, stop, wait_for
from streams.dev.broker import DevKafka, free_port
from streams.settings import KAFKA_SECURITY, Settings


@pytest.fixture(scope="session")
def broker():
    with DevKafka() as kafka:
        yield kafka


class WorkerHandle:
    def __init__(self, broker: DevKafka, tmp: Path, partitions: int = 1, **overrides) -> None:
        tag = uuid.uuid4().hex[:8]
        self.broker = broker
        self.tmp = tmp
        self.settings = replace(Settings(
            bootstrap=broker.bootstrap, app_id=f"fg-{tag}", events_topic=f"events-{tag}",
            dlq_topic=f"dlq-{tag}", alerts_topic=f"alerts-{tag}", verdicts_topic=f"verdicts-{tag}",
            flagged_topic=f"flagged-{tag}",
            audit_db=str(tmp / "audit.duckdb"), metrics_port=free_port(), idle_flush_seconds=3.0,
        ), **overrides)
        s = self.settings
        broker.create_topics([s.events_topic], partitions=partitions)
        broker.create_topics([s.dlq_topic, s.alerts_topic, s.verdicts_topic, s.flagged_topic])
        self.proc = None
        self.log_path: Path | None = None
        self.produced = 0

    def twin(self, name: str, shared_audit: bool = False) -> WorkerHandle:
        """Another worker in this one's group (same topics), with its own disk and metrics port; its own
        audit store, or with ``shared_audit`` this one's (the one place investigators query)."""
        other = WorkerHandle.__new__(WorkerHandle)
        (self.tmp / name).mkdir()
        other.broker, other.tmp, other.proc, other.log_path, other.produced = self.broker, self.tmp / name, None, None, 0
        audit = self.settings.audit_db if shared_audit else str(self.tmp / name / "audit.duckdb")
        other.settings = replace(self.settings, audit_db=audit, metrics_port=free_port(),
                                 checkpoint_dir=str(self.tmp / name / "checkpoints"))
        return other

    def flags(self) -> list[str]:
        s = self.settings
        return ["--app-id", s.app_id, "--events-topic", s.events_topic, "--dlq-topic", s.dlq_topic,
                "--alerts-topic", s.alerts_topic, "--verdicts-topic", s.verdicts_topic, "--flagged-topic", s.flagged_topic,
                "--lateness-seconds", str(s.lateness_seconds), "--tick-seconds", str(s.tick_seconds),
                *(["--verdict-key-file", s.verdict_key_file] if s.verdict_key_file else []),
                *(["--checkpoint-key-file", s.checkpoint_key_file] if s.checkpoint_key_file else []),
                "--checkpoint-seconds", str(s.checkpoint_seconds), "--window-days", str(s.window_days),
                *[flag for name in (*KAFKA_SECURITY, "audit_backlog_rows", "batch_size", "instance_id", "checkpoint_store",
                                    "checkpoint_dir")
                  if getattr(s, name) != getattr(Settings(), name)
                  for flag in (f"--{name.replace('_', '-')}", str(getattr(s, name)))]]

    def launch(self) -> WorkerHandle:
        """Start the process without waiting for it."""
        self.log_path = self.tmp / f"worker-{uuid.uuid4().hex[:4]}.log"
        self.proc = start_worker(self.settings, self.log_path, self.flags())
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def start(self, timeout: float = 120) -> WorkerHandle:
        self.launch()
        wait_for(lambda: scrape(self.settings.metrics_port), 120, "worker /metrics", self.proc)
        # Live once recovery is over and the consumer group has assigned the input partitions.
        wait_for(lambda: self.metric("fraudgraph_recovering") == 0 and
                 (self.metric("fraudgraph_assigned_partitions") or 0) > 0, timeout, "recovery and assignment", self.proc)
        return self

    def wait_owner(self, timeout: float = 60) -> WorkerHandle:
        """Wait until this worker holds stage B, verified (a killed predecessor's group session ends first)."""
        wait_for(lambda: self.metric("fraudgraph_global_stage_owner") == 1 and self.metric("fraudgraph_recovering") == 0,
                 timeout, "stage B", self.proc)
        return self

    def metric(self, name: str) -> float | None:
        try:
            values = scrape(self.settings.metrics_port)
        except OSError:
            return None
        return metric_sum(values, name) if any(k.startswith(name) for k in values) else None

    def produce(self, values: list[bytes | None], keys: list[bytes | None] | None = None) -> None:
        producer = KafkaProducer(bootstrap_servers=self.broker.bootstrap, acks="all", linger_ms=10,
                                 max_request_size=4 * 1024 * 1024)
        for i, value in enumerate(values):
            producer.send(self.settings.events_topic, key=keys[i] if keys else None, value=value)
        producer.flush()
        producer.close()
        self.produced += len(values)

    def produce_file(self, path: Path) -> int:
        lines = [line for line in path.read_bytes().splitlines() if line]
        self.produce(lines, [json.loads(line)["account_id"].encode() for line in lines])
        return len(lines)

    def consumed(self) -> float:
        """Records this worker process handled, counting those its recovery re-read (which move no counter)."""
        return (self.metric('fraudgraph_events_in_total{stage="decode"}') or 0) + \
            (self.metric("fraudgraph_recovered_records") or 0)

    def wait_consumed(self, timeout: float = 300) -> None:
        wait_for(lambda: self.consumed() >= self.produced,
                 timeout, f"the worker to consume {self.produced} records", self.proc, interval=1)

    def settle(self) -> None:
        """Wait out the idle flush of held events and the audit flush after it."""
        import time

        time.sleep(self.settings.idle_flush_seconds + 3 * self.settings.audit_flush_seconds + 1.5)

    def produce_to(self, topic: str, values: list[bytes | None]) -> None:
        producer = KafkaProducer(bootstrap_servers=self.broker.bootstrap, acks="all", max_request_size=4 * 1024 * 1024)
        for value in values:
            producer.send(topic, key=b"test", value=value)
        producer.flush()
        producer.close()

    def read_topic(self, topic: str, partition: int = 0) -> list:
        consumer = KafkaConsumer(bootstrap_servers=self.broker.bootstrap, auto_offset_reset="earliest",
                                 enable_auto_commit=False, consumer_timeout_ms=4000, fetch_max_bytes=8 * 1024 * 1024,
                                 max_partition_fetch_bytes=8 * 1024 * 1024)
        consumer.assign([TopicPartition(topic, partition)])
        consumer.seek_to_beginning()
        records = list(consumer)
        consumer.close()
        return records

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


@pytest.fixture
def worker(broker, tmp_path):
    handles: list[WorkerHandle] = []

    def make(partitions: int = 1, **overrides) -> WorkerHandle:
        handle = WorkerHandle(broker, tmp_path, partitions, **overrides)
        handles.append(handle)
        return handle

    yield make
    for handle in handles:
        handle.stop()


def contract_json(event) -> bytes:
    """A graph.AccountEvent back to the wire contract."""
    from streams.runtime.pipeline import iso

    out = {"event_id": event.event_id, "type": event.type, "account_id": event.account_id, "ts": iso(event.ts),
           "device_id": event.device_id, "ip": event.ip, "payment_id": event.payment_id}
    if event.asn:
        out["asn"] = event.asn
    return orjson.dumps(out)
