"""Metric names say what they count: a stage's ``events_out`` counts the records it passed on, never
alert publications (those are ``fraudgraph_alerts_total``)."""

from __future__ import annotations

import dataclasses

import orjson
from prometheus_client import CollectorRegistry

from graph import DetectionEngine
from streams.runtime.pipeline import Pipeline, Record, iso
from streams.sinks.metrics import Metrics
from tests.conftest import small_config
from tests.unit.scenarios import farm


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_events_out_counts_events_not_alert_publications():
    registry = CollectorRegistry()
    pipeline = Pipeline(DetectionEngine(small_config(), clock=lambda: 0.0), metrics=Metrics(registry), wall=lambda: 0.0)
    farm_events = farm("f", 30, 4)  # a device farm: alerted
    events = [{k: v for k, v in dataclasses.asdict(e).items() if v is not None} | {"ts": iso(e.ts)} for e in farm_events]
    bad = [b"not json", orjson.dumps({"event_id": "x", "type": "login"})]
    records = [Record(orjson.dumps(e), partition=0, offset=i) for i, e in enumerate(events)]
    records += [Record(v, partition=0, offset=len(records) + i) for i, v in enumerate(bad)]
    pipeline.handle(records)
    pipeline.flush_held()
    assert value(registry, "fraudgraph_events_in_total", stage="decode") == len(events) + 2
    assert value(registry, "fraudgraph_events_out_total", stage="decode") == len(events)
    assert value(registry, "fraudgraph_events_in_total", stage="engine") == len(events)
    assert value(registry, "fraudgraph_events_out_total", stage="engine") == len(events)
    published = sum(value(registry, "fraudgraph_alerts_total", severity=s, action=a)
                    for s in ("low", "medium", "high") for a in ("opened", "escalated", "updated", "closed"))
    assert published >= 1  # the farm was alerted, and that moved no events counter
