"""Watermark policy: held events come out in (ts, id) order whatever the arrival order."""

from graph.ordering import Admission, Deduplicator, ReorderBuffer

from tests.conftest import T0, ev


def test_release_in_timestamp_order_within_lateness():
    buffer = ReorderBuffer(allowed_lateness=60)
    arrivals = [ev("a", T0 + 50, event_id="3"), ev("a", T0 + 10, event_id="1"), ev("a", T0 + 30, event_id="2"),
                ev("a", T0 + 200, event_id="4")]
    released = [e.event_id for x in arrivals for e in buffer.push(x)]
    assert released == ["1", "2", "3"]  # 4 is held until the watermark passes it
    assert [e.event_id for e in buffer.flush()] == ["4"]
    assert buffer.late_events == 0


def test_event_behind_the_watermark_is_applied_and_counted_late():
    buffer = ReorderBuffer(allowed_lateness=10)
    buffer.push(ev("a", T0 + 100))
    late = buffer.push(ev("a", T0 + 50, event_id="late"))
    assert [e.event_id for e in late] == ["late"]
    assert buffer.late_events == 1


def test_duplicates_are_forgotten_only_after_retention():
    dedupe = Deduplicator(retention_seconds=100)
    event = ev("a", T0, event_id="x")
    assert dedupe.admit(event, now=T0) is Admission.NEW
    assert dedupe.admit(event, now=T0 + 50) is Admission.DUPLICATE
    dedupe.forget_before(T0 + 1)
    assert dedupe.admit(event, now=T0 + 200) is Admission.NEW


def test_the_same_id_with_other_content_is_a_conflict_not_a_duplicate():
    dedupe = Deduplicator(retention_seconds=100)
    assert dedupe.admit(ev("a", T0, device="d1", event_id="x"), now=T0) is Admission.NEW
    assert dedupe.admit(ev("a", T0, device="d2", event_id="x"), now=T0) is Admission.CONFLICT
    assert dedupe.admit(ev("b", T0, device="d1", event_id="x"), now=T0) is Admission.CONFLICT
    assert dedupe.admit(ev("a", T0, device="d1", event_id="x"), now=T0) is Admission.DUPLICATE
