"""Seeded traffic with planted rings: the demo's and the quality benchmark's input (tooling; the
product never imports it). What is planted is described in ``streams/dev/sim/`` (the benign population
in ``traffic.py``, the operations in ``rings.py``, the benign look-alikes in ``lookalikes.py``, the
red-team families in ``families.py``).

Everything is a function of the seed. Output: contract events (dicts) in delivery order, and a
label per account (``ring_id`` empty for benign; the kind names the case).
"""

from __future__ import annotations

import csv
import gzip
import random
from collections.abc import Iterable, Iterator
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

import orjson

from streams.settings import Settings
from streams.dev.sim import families, lookalikes, rings
from streams.dev.sim.spec import DAY, START, RingSpec, SimConfig, default_rings
from streams.dev.sim.traffic import Traffic

__all__ = ["DAY", "START", "RingSpec", "SimConfig", "default_rings", "generate", "produce_events", "write_events",
           "write_labels"]


def generate(config: SimConfig) -> tuple[Iterator[dict[str, Any]], dict[str, tuple[str, str]]]:
    """All events in delivery order, and the label of every account."""
    traffic = Traffic(config)
    traffic.benign()
    rings.plant(traffic)
    if config.lookalikes:
        lookalikes.plant(traffic)
    if config.families:
        families.plant(traffic, config.families, config.family_instances, config.family_max_size)
    rows = traffic.rows
    rows.sort()
    return _deliver(rows, config), traffic.labels


def _deliver(rows: list[tuple[Any, ...]], config: SimConfig) -> Iterator[dict[str, Any]]:
    rng = random.Random(config.seed + 1)
    if config.late_rate > 0:
        # Delivery order: some events are delivered up to max_late_seconds after their event time.
        keyed = [(row[0] + (rng.uniform(0, config.max_late_seconds) if rng.random() < config.late_rate else 0.0), row)
                 for row in rows]
        keyed.sort(key=lambda k: (k[0], k[1][1]))
        rows = [row for _, row in keyed]
    for row in rows:
        event = to_event(row)
        yield event
        if config.duplicate_rate and rng.random() < config.duplicate_rate:
            yield event


def to_event(row: tuple[Any, ...]) -> dict[str, Any]:
    ts, seq, kind, account, device, ip, payment, domain, asn, usage = row
    event = {
        "event_id": f"ev{seq:09d}",
        "type": kind,
        "account_id": account,
        "ts": datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "device_id": device,
        "ip": ip,
        "payment_id": payment,
    }
    if domain:
        event["email_domain"] = domain
    if asn:
        event["asn"] = asn
    if usage:
        event["requests"], event["tokens_in"], event["tokens_out"], event["model"], event["prompt_fingerprint"] = usage
    return event


def write_events(path: Path, events: Iterable[dict[str, Any]]) -> int:
    """JSON Lines (``.gz`` compresses); returns the count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with (gzip.open if path.name.endswith(".gz") else open)(path, "wb") as handle:
        for event in events:
            handle.write(orjson.dumps(event) + b"\n")
            count += 1
    return count


class NoBroker(RuntimeError):
    """No Kafka broker answered at the bootstrap address within the wait."""


def produce_events(events: Iterable[dict[str, Any]], settings: Settings, timeout_s: float = 10.0) -> int:
    """To ``settings.events_topic``, keyed by account; returns the count. :class:`NoBroker` when no
    broker answers within ``timeout_s`` (before anything is sent)."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from streams.kafka_security import kafka_python_args

    ms = int(timeout_s * 1000)
    try:
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=20, batch_size=256 * 1024, acks="all",
                                 max_block_ms=ms, bootstrap_timeout_ms=ms, **kafka_python_args(settings))
    except KafkaError as exc:
        raise NoBroker(f"no Kafka broker answered at {settings.bootstrap} within {timeout_s:.0f}s "
                       f"({type(exc).__name__})") from None
    topic = settings.events_topic
    count = 0
    for event in events:
        producer.send(topic, key=event["account_id"].encode(), value=orjson.dumps(event))
        count += 1
    producer.flush()
    producer.close()
    return count


def write_labels(path: Path, labels: dict[str, tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["account_id", "ring_id", "kind"])
        for account, (ring, kind) in sorted(labels.items()):
            writer.writerow([account, ring, kind])
