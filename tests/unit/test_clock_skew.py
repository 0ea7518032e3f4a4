"""Event time comes from clients the fraudsters control: one event dated years ahead must not move
the watermark (which would expire every link and blind the detector), at start-up or mid-stream;
a stream that resumes after a quiet gap must still be applied; a reused event id with other content
is rejected, not dropped as a duplicate; events older than the window are counted."""

from graph import DetectionEngine
from graph.window import Rejection

from tests.conftest import T0, ev, run
from tests.conftest import small_config as _small
from tests.unit.scenarios import farm

YEAR = 365 * 86400.0


def small_config(**overrides):
    return _small(**{"skew_sample": 31, **overrides})


def steady(prefix: str, n: int, t: float, step: float = 5.0):
    """Background traffic: n accounts, each on a phone of its own."""
    return [ev(f"{prefix}{i}", t + i * step, device=f"{prefix}-own{i}") for i in range(n)]


def alerted(alerts):
    return {a.cluster_id for a in alerts if a.action != "closed" and a.severity in ("medium", "high")}


def test_an_event_years_ahead_mid_stream_is_rejected_and_detection_goes_on():
    base = sorted(farm("f", 20, devices=4) + steady("u", 200, T0), key=lambda e: e.ts)
    clean_engine, clean_alerts = run(base, small_config())
    poisoned = base[:100] + [ev("attacker", T0 + 5 * YEAR, device="x", event_id="future")] + base[100:]
    engine, alerts = run(poisoned, small_config())
    assert engine.counters["clock_skew"] == 1
    assert engine.partition() == clean_engine.partition() and engine.partition()
    assert alerted(alerts) == alerted(clean_alerts) != set()
    assert not [a for a in alerts if a.action == "closed"], "no alert closed by a jump of the watermark"
    assert engine.window.watermark < T0 + 86400


def test_year_9999_as_the_very_first_event_cannot_set_the_watermark():
    base = sorted(farm("f", 20, devices=4) + steady("u", 200, T0), key=lambda e: e.ts)
    first = ev("attacker", 253402300000.0, device="x", event_id="first")
    engine, alerts = run([first] + base, small_config())
    clean, _ = run(base, small_config())
    assert engine.partition() == clean.partition()
    assert engine.counters["clock_skew"] == 1


def test_rejected_events_come_back_with_a_reason():
    engine = DetectionEngine(small_config(), clock=lambda: 0.0)
    outs = [engine.process(steady("u", 100, T0)),
            engine.process([ev("attacker", T0 + YEAR, device="x", event_id="future")]),
            engine.process(steady("v", 200, T0 + 500)), engine.flush()]
    rejected = [r for out in outs for r in out.rejected]
    assert [(r.source.event_id, r.kind) for r in rejected] == [("future", Rejection.CLOCK_SKEW)]
    assert "ahead of the stream" in rejected[0].reason


def test_the_wall_clock_bounds_event_time_in_the_worker():
    engine = DetectionEngine(small_config(), clock=lambda: 0.0)
    out = engine.process([ev("a", T0 + 7200, device="d", event_id="ahead")], wall=T0)
    assert [r.source.event_id for r in out.rejected] == ["ahead"] and "wall clock" in out.rejected[0].reason
    out = engine.process([ev("a", T0 + 60, device="d", event_id="ok")], wall=T0)
    assert not out.rejected


def test_a_stream_that_resumes_after_a_quiet_gap_is_applied_not_rejected():
    config = small_config()
    gap = 10 * config.max_clock_skew_seconds
    before = steady("u", 100, T0)
    after = farm("f", 20, devices=4, t=T0 + 500 + gap) + steady("v", 100, T0 + 600 + gap)
    engine, alerts = run(before + sorted(after, key=lambda e: e.ts), config)
    assert engine.counters["clock_skew"] == 0
    assert alerted(alerts), "the farm after the gap is found"


def test_a_reused_event_id_with_other_content_is_rejected_and_counted_apart_from_duplicates():
    engine = DetectionEngine(small_config(), clock=lambda: 0.0)
    events = steady("u", 80, T0)
    twin = ev("intruder", events[10].ts, device="other", event_id=events[10].event_id)
    outs = [engine.process(events + [events[5], twin]), engine.flush()]
    rejected = [r for out in outs for r in out.rejected]
    assert [(r.source.account_id, r.kind) for r in rejected] == [("intruder", Rejection.ID_CONFLICT)]
    assert engine.counters["duplicates"] == 1 and engine.counters["id_conflict"] == 1
    assert not engine.graph.links_of("intruder")


def test_events_older_than_the_window_are_counted():
    config = small_config()
    engine = DetectionEngine(config, clock=lambda: 0.0)
    engine.process(steady("u", 100, T0 + 3 * config.window_seconds))
    engine.flush()
    engine.process([ev("old", T0, device="d", event_id="old")])
    assert engine.counters["too_old"] == 1
    assert not engine.graph.links_of("old")
