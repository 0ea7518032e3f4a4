"""Shared test helpers: building events by hand and running the engine over them."""

from __future__ import annotations

import itertools

import pytest

from graph import AccountEvent, DetectionConfig, DetectionEngine

T0 = 1_767_571_200.0  # 2026-01-05T00:00:00Z
_ids = itertools.count()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration/ needs the real broker (or Prometheus): marked, so that
    `pytest -m "not integration"` is the fast loop."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


def ev(account: str, ts: float, *, device: str | None = None, ip: str | None = None, payment: str | None = None,
       kind: str = "login", asn: str | None = None, domain: str | None = None, event_id: str | None = None,
       template: str | None = None, requests: int | None = None, tokens_out: int | None = None) -> AccountEvent:
    return AccountEvent(event_id=event_id or f"t{next(_ids)}", type=kind, account_id=account, ts=ts,
                        device_id=device, ip=ip, payment_id=payment, asn=asn, email_domain=domain,
                        prompt_fingerprint=template, requests=requests, tokens_out=tokens_out)


def small_config(**overrides) -> DetectionConfig:
    """Small sizes so hand-built groups of tens of accounts exercise every severity."""
    base = dict(window_seconds=3600.0, allowed_lateness_seconds=30.0, tick_seconds=10.0,
                track_min_size=3, low_min_size=4, medium_min_size=6,
                high_min_size=10, high_min_evidence=3, rescore_seconds=10.0,
                skew_sample=1)  # hand-built streams are short: trust the first event's clock (tests/unit/test_clock_skew.py does not)
    base.update(overrides)
    return DetectionConfig(**base)


def run(events, config: DetectionConfig | None = None, batch: int = 50):
    engine = DetectionEngine(config or small_config(), clock=lambda: 0.0)
    alerts = []
    for i in range(0, len(events), batch):
        alerts += engine.process(events[i:i + batch]).alerts
    alerts += engine.flush().alerts
    return engine, alerts


@pytest.fixture
def config() -> DetectionConfig:
    return small_config()
