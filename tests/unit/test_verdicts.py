"""Analyst verdicts: benign mutes a cluster until something materially new; confirmed makes any
newcomer a high alert at the next tick."""

from graph import DetectionEngine

from tests.conftest import T0, ev, small_config
from tests.unit.scenarios import farm


def new_member(i: int, t: float):
    return [ev(f"new{i}", t, device="f-dev0"), ev(f"new{i}", t + 0.5, device="f-dev1")]


def settle(engine, t):
    return engine.process([ev("clock", t, ip="203.0.113.9")])


def test_benign_verdict_closes_the_alert_and_mutes_small_growth():
    engine = DetectionEngine(small_config(), clock=lambda: 0.0)
    engine.process(farm("f", 20, devices=4))
    settle(engine, T0 + 100)
    (cluster_id,) = engine.clusters
    assert engine.alerts.open[cluster_id].severity == "high"
    out = engine.apply_verdict(cluster_id, "benign")
    assert [a.action for a in out.alerts] == ["closed"]
    grew = engine.process(new_member(1, T0 + 200))
    grew.extend(settle(engine, T0 + 300))
    assert not [a for a in grew.alerts if a.action != "members"], "one more account is nothing new"
    # Half as many again is materially new: it alerts, under a new alert id.
    more = engine.process([e for i in range(2, 14) for e in new_member(i, T0 + 400 + i)])
    more.extend(settle(engine, T0 + 600))
    opened = [a for a in more.alerts if a.action == "opened"]
    assert opened and opened[0].alert_id == f"A-{cluster_id}-2"


def test_confirmed_verdict_makes_any_newcomer_a_high_alert():
    engine = DetectionEngine(small_config(), clock=lambda: 0.0)
    engine.process(farm("f", 8, devices=4))  # medium-sized: not high on its own
    settle(engine, T0 + 100)
    (cluster_id,) = engine.clusters
    assert engine.alerts.open[cluster_id].severity != "high"
    engine.apply_verdict(cluster_id, "confirmed")
    out = engine.process(new_member(1, T0 + 200))
    out.extend(settle(engine, T0 + 300))
    published = [a for a in out.alerts if a.notify]
    assert published and published[-1].severity == "high" and "new1" in published[-1].members_added
