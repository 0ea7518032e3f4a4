"""Event-time policy in the kernel: held events are applied in time order whatever the arrival
order; re-deliveries are dropped for the window, a reused id with other content is refused."""

from graph import DetectionEngine

from tests.conftest import T0, ev, small_config


def links_after(arrivals, config=None):
    engine = DetectionEngine(config or small_config(), clock=lambda: 0.0)
    engine.process(arrivals)
    return engine


def test_events_wait_for_the_watermark_and_any_order_within_lateness_gives_the_same_links():
    config = small_config()  # 30 s lateness
    arrivals = [ev("a", T0 + 25, device="d3", event_id="3"), ev("a", T0 + 5, device="d1", event_id="1"),
                ev("b", T0 + 15, device="d2", event_id="2")]
    engine = links_after(arrivals, config)
    assert engine.held_events == 3, "nothing is applied before the watermark passes it"
    engine.flush()
    assert engine.held_events == 0 and engine.counters["late"] == 0
    again = links_after(list(reversed(arrivals)), config)
    again.flush()
    assert engine.graph.live_links() == again.graph.live_links() == [
        ("a", "d:d1"), ("a", "d:d3"), ("b", "d:d2")]


def test_an_event_behind_the_watermark_is_applied_and_counted_late():
    engine = links_after([ev("a", T0 + 100, device="d1"), ev("b", T0 + 50, device="late-dev", event_id="late")],
                         small_config(allowed_lateness_seconds=10.0))
    engine.flush()
    assert engine.counters["late"] == 1
    assert ("b", "d:late-dev") in engine.graph.live_links()


def test_redeliveries_are_dropped_for_the_window_and_forgotten_after_it():
    config = small_config()
    engine = DetectionEngine(config, clock=lambda: 0.0)
    first = ev("a", T0, device="d1", event_id="x")
    engine.process([first, ev("clock", T0 + 100, ip="203.0.113.1")])
    engine.process([first])
    assert engine.counters["duplicates"] == 1
    # a window and a lateness (plus one eighth, the de-duplication generations) later it is new again
    later = T0 + 1.2 * (config.window_seconds + config.allowed_lateness_seconds) + 100
    engine.process([ev("clock", later, ip="203.0.113.1", event_id="tick-later")])
    engine.flush()
    before = engine.counters["events"]
    engine.process([ev("a", later, device="d1", event_id="x")])
    engine.flush()
    assert engine.counters["duplicates"] == 1 and engine.counters["events"] == before + 1


def test_the_same_id_with_other_content_is_a_conflict_not_a_duplicate():
    engine = DetectionEngine(small_config(), clock=lambda: 0.0)
    out = engine.process([ev("a", T0, device="d1", event_id="x"), ev("a", T0, device="d2", event_id="x"),
                          ev("b", T0, device="d1", event_id="x"), ev("a", T0, device="d1", event_id="x")])
    assert [r.kind for r in out.rejected] == ["id_conflict", "id_conflict"]
    assert "seen before with different content" in out.rejected[0].reason
    assert engine.counters["duplicates"] == 1 and engine.counters["id_conflict"] == 2
