"""Invariants under random traffic (hypothesis): incremental equals full recompute; duplicate
deliveries and reordering within the allowed lateness change nothing."""

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graph import DetectionEngine

from tests.conftest import T0, ev, small_config

ACCOUNTS = [f"a{i}" for i in range(24)]
DEVICES = [f"d{i}" for i in range(8)] + [None] * 4
CARDS = [f"p{i}" for i in range(5)] + [None] * 8
IPS = [f"10.0.0.{i}" for i in range(5)] + [None] * 2

event_tuples = st.lists(
    st.tuples(st.sampled_from(ACCOUNTS), st.floats(0, 7200, allow_nan=False), st.sampled_from(DEVICES),
              st.sampled_from(CARDS), st.sampled_from(IPS)),
    min_size=1, max_size=120,
)


def build(tuples):
    events = [ev(a, T0 + t, device=d, payment=p, ip=i, event_id=f"e{n}") for n, (a, t, d, p, i) in enumerate(tuples)]
    return sorted(events, key=lambda e: (e.ts, e.event_id))


def fingerprint(engine, outputs):
    alerts = [(a.alert_id, a.version, a.action, a.severity, a.member_count, a.members_added, a.members_removed)
              for out in outputs for a in out.alerts]
    lineage = [(e.cluster_id, e.kind, e.at, e.size, e.other) for out in outputs for e in out.lineage]
    return engine.partition(), alerts, lineage


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(event_tuples, st.integers(1, 40))
def test_incremental_equals_full_recompute_at_every_batch(tuples, batch):
    engine = DetectionEngine(small_config(), clock=lambda: 0.0)
    events = build(tuples)
    compared = 0
    for i in range(0, len(events), batch):
        engine.process(events[i:i + batch])
        if not engine.window.changed_links and not engine.window.private_flips:
            # Right after a tick (nothing applied since): the incremental state must be the full one.
            assert engine.partition() == engine.full_recompute_partition()
            assert engine.binding.binding == _fresh_binding(engine)
            compared += 1
    engine.flush()
    assert engine.partition() == engine.full_recompute_partition()
    assert engine.binding.binding == _fresh_binding(engine)


def _fresh_binding(engine):
    from graph.binding import BindingState

    fresh = BindingState(engine.window, engine.config)
    fresh.recompute_all()
    return fresh.binding


@SETTINGS
@given(event_tuples, st.integers(0, 2**32 - 1), st.floats(0.0, 0.5))
def test_duplicates_and_reordering_within_lateness_change_nothing(tuples, seed, dup_rate):
    config = small_config()
    events = build(tuples)
    rng = random.Random(seed)
    # Delivery order: each event may arrive up to (just under) the allowed lateness after its ts.
    arrival = sorted(events, key=lambda e: e.ts + rng.uniform(0, config.allowed_lateness_seconds * 0.99))
    delivered = list(arrival)
    for index in range(len(arrival) - 1, -1, -1):
        if rng.random() < dup_rate:  # a redelivery: any time after the original, however late
            delivered.insert(rng.randrange(index + 1, len(delivered) + 1), arrival[index])
    results = []
    for stream in (events, delivered):
        engine = DetectionEngine(config, clock=lambda: 0.0)
        outputs = [engine.process(stream[i:i + 7]) for i in range(0, len(stream), 7)]
        outputs.append(engine.flush())
        results.append(fingerprint(engine, outputs))
    assert results[0] == results[1]
