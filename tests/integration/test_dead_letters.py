"""Every malformed kind lands in the dead-letter topic with its reason and source coordinates; the
worker keeps running and the counts match."""

from __future__ import annotations


from tests.conftest import T0, ev
from tests.integration.conftest import contract_json
from tests.unit.test_contract import INVALID


def test_every_malformed_kind_is_dead_lettered_with_its_reason(worker):
    w = worker().start()
    bad = [raw for raw, _reason in INVALID] + [None]  # None: a tombstone (no value)
    reasons = [reason for _raw, reason in INVALID] + ["empty value"]
    good = [contract_json(ev(f"acct{i}", T0 + i, device=f"dev{i}")) for i in range(20)]
    values = good[:10] + bad + good[10:]
    w.produce(values, [b"k%d" % i for i in range(len(values))])
    w.wait_consumed()
    w.settle()

    dead = w.read_topic(w.settings.dlq_topic)
    assert len(dead) == len(bad)
    for record, original, reason in zip(dead, bad, reasons):
        headers = {k: v.decode() for k, v in record.headers}
        assert record.value == original, "the original bytes travel unchanged"
        assert reason in headers["fraudgraph.error.reason"]
        assert headers["fraudgraph.source.topic"] == w.settings.events_topic
        offset = int(headers["fraudgraph.source.offset"])
        assert offset == 10 + bad.index(original) if original is not None else offset == 10 + len(bad) - 1
        assert record.key == b"k%d" % offset
    assert w.proc.poll() is None, "the worker is still running"
    assert w.metric("fraudgraph_dead_letters_total") == len(bad)
    assert w.metric('fraudgraph_events_out_total{stage="decode"}') == len(good)
    assert sum(v for k, v in _errors(w).items()) == len(bad)


def _errors(w) -> dict[str, float]:
    from streams.dev.localrun import scrape

    return {k: v for k, v in scrape(w.settings.metrics_port).items() if k.startswith("fraudgraph_stage_errors_total")}
