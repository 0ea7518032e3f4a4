"""What alerts and what does not: the core promise of the engine."""

from graph.config import DetectionConfig

from tests.conftest import T0, ev, run
from tests.unit.scenarios import crowd, farm


def severities(alerts):
    out = {}
    for a in alerts:
        if a.action != "closed":
            out[a.cluster_id] = a.severity
    return out


def test_a_device_farm_raises_a_high_alert():
    engine, alerts = run(farm("f", 20, devices=4))
    assert list(severities(alerts).values()) == ["high"]
    (cluster_id,) = engine.clusters
    assert len(engine.members(cluster_id)) == 20


def test_a_hub_of_unrelated_accounts_of_the_same_size_does_not_alert():
    # a library PC, a NAT IP and a public card reader: each shared by 20 people with phones of their own
    for hub in ({"shared_device": "kiosk"}, {"shared_ip": "100.64.0.1"}, {"shared_card": "corp-card"}):
        _engine, alerts = run(crowd("u", 20, **hub))
        assert not [a for a in alerts if a.severity in ("medium", "high")], hub


def test_a_company_on_one_card_and_office_ip_does_not_alert_even_when_it_onboards_at_once():
    events = []
    for i in range(40):
        events.append(ev(f"e{i}", T0 + i, device=f"laptop{i}", ip="64.0.0.1", payment="corp-card", kind="signup",
                         domain="acme.example"))
        events.append(ev(f"e{i}", T0 + i + 0.5, ip="54.0.0.1", kind="api_usage", asn="AS16509"))
    _engine, alerts = run(events)
    assert not [a for a in alerts if a.severity in ("medium", "high")]


def test_per_team_cards_stay_disjoint_stars_and_do_not_alert():
    events = []
    for i in range(40):
        events.append(ev(f"e{i}", T0 + i, device=f"laptop{i}", ip="64.0.0.1", payment=f"team-card{i // 10}",
                         kind="signup"))
    _engine, alerts = run(events)
    assert not [a for a in alerts if a.severity in ("medium", "high")]


def test_camouflage_logins_from_a_benign_hub_do_not_pull_the_crowd_into_the_ring():
    events = crowd("u", 30, shared_ip="100.64.0.9") + farm("f", 20, devices=4, t=T0 + 100)
    events += [ev(f"f{i}", T0 + 200 + i, device=f"f-dev{i % 4}", ip="100.64.0.9") for i in range(20)]
    engine, alerts = run(sorted(events, key=lambda e: e.ts))
    flagged = {a for cid, c in engine.clusters.items() if c.score and c.score.severity for a in engine.members(cid)}
    assert flagged and all(a.startswith("f") for a in flagged)


def test_a_card_pool_where_accounts_rotate_cards_alerts():
    events = []
    for i in range(30):
        events.append(ev(f"c{i}", T0 + i - 0.5, device=f"fresh{i}", kind="signup"))  # accounts made for the ring
        events.append(ev(f"c{i}", T0 + i, device=f"fresh{i}", payment=f"pp{i % 5}", kind="payment_method_added"))
        events.append(ev(f"c{i}", T0 + i + 0.5, device=f"fresh{i}", payment=f"pp{(i * 3 + 1) % 5}",
                         kind="payment_method_added"))
    _engine, alerts = run(events)
    assert "high" in severities(alerts).values()


def test_thresholds_out_of_order_are_refused():
    import pytest

    with pytest.raises(ValueError, match="severity sizes"):
        DetectionConfig(low_min_size=60, medium_min_size=50)
    with pytest.raises(ValueError, match="skew"):
        DetectionConfig(max_clock_skew_seconds=0)
