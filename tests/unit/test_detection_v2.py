"""Detection v2 on hand-built groups: weak evidence (IPs, templates) is weighed, never unioned;
operations that share commodity infrastructure stay apart and the sharing is recorded; a ring that
shares only behaviour is found; hubs of behaviour link nobody."""

import random

from graph.scoring import score_cluster

from tests.conftest import T0, ev, run, small_config

CLOUD = "AS16509"
HOME = "AS7922"
RING_TOKENS, USER_TOKENS = 6000, 300


def farm_op(prefix: str, n: int, exits: list[str], rng: random.Random, t: float = T0, devices: int = 8):
    """An operation on its own farm of phones (each account on two), logging in through proxy exits and
    calling the API (heavily) from them."""
    events = []
    for i in range(n):
        a, at = f"{prefix}{i}", t + i
        events.append(ev(a, at, device=f"{prefix}-dev{i % devices}", ip=rng.choice(exits), kind="signup", asn=HOME))
        events.append(ev(a, at + 1, device=f"{prefix}-dev{(i + 1) % devices}", ip=rng.choice(exits), asn=HOME))
        for k in range(4):
            events.append(ev(a, at + 2 + k, ip=rng.choice(exits), kind="api_usage", asn=HOME, requests=40,
                             tokens_out=40 * RING_TOKENS, template=f"{prefix}-tpl"))
    return events


def household(prefix: str, home_ip: str, t: float, people: int = 2):
    """A family on its home line, each with a phone of their own, sharing one card."""
    return [ev(f"{prefix}{k}", t + k, device=f"{prefix}-phone{k}", ip=home_ip, payment=f"{prefix}-card", asn=HOME)
            for k in range(people)]


def clusters_by_members(engine):
    return {cid: set(engine.members(cid)) for cid in engine.clusters}


def actionable(engine):
    out = set()
    for cid, record in engine.clusters.items():
        if record.score and record.score.severity in ("medium", "high"):
            out |= set(engine.members(cid))
    return out


def test_two_operations_sharing_500_proxy_ips_stay_two_and_households_on_the_exits_stay_out():
    rng = random.Random(7)
    exits = [f"73.{k // 250}.{k % 250}.9" for k in range(500)]
    events = farm_op("a", 80, exits, rng) + farm_op("b", 80, exits, rng, t=T0 + 40)
    families = [household(f"h{k}-", exits[k], T0 + 5 + k / 10) for k in range(200)]  # their home lines are exits
    events += [e for family in families for e in family]
    engine, _alerts = run(sorted(events, key=lambda e: e.ts))

    groups = clusters_by_members(engine)
    ops = {frozenset(f"{p}{i}" for i in range(80)) for p in "ab"}
    assert {frozenset(m) for m in groups.values() if len(m) >= 10} == ops, "one cluster per operation, exactly"
    assert not any(a.startswith("h") for m in groups.values() for a in m), "no household is ever a member"
    a_id = next(cid for cid, m in groups.items() if "a0" in m)
    b_id = next(cid for cid, m in groups.items() if "b0" in m)
    used = {p: {e.ip for e in events if e.account_id.startswith(p) and e.ip} for p in "ab"}
    scored = score_cluster(engine.graph, engine.clusters[a_id].number, engine.config)
    ips = [s for s in scored.shared if s.other_cluster_id == b_id and s.entity_type == "ip"]
    assert ips and ips[0].shared_entities == len(used["a"] & used["b"]), "what they share is recorded as a relation"
    assert ips[0].accounts_here == 80 and ips[0].accounts_there == 80

    engine.apply_verdict(a_id, "confirmed")
    assert engine.clusters[b_id].verdict is None, "a verdict on one operation never lands on the other"


def test_a_company_bound_by_its_card_is_not_merged_into_a_ring_through_one_employees_home_line():
    rng = random.Random(3)
    exits = [f"73.9.{k}.1" for k in range(60)]
    events = farm_op("r", 60, exits, rng)
    for i in range(40):  # the company: laptops of their own, the office line, one corporate card, its domain
        events.append(ev(f"e{i}", T0 + i, device=f"laptop{i}", ip="64.0.0.1", payment="corp-card", kind="signup",
                         domain="acme.example"))
        events.append(ev(f"e{i}", T0 + 100 + i, ip="54.0.0.1", kind="api_usage", asn=CLOUD, requests=3,
                         tokens_out=3 * USER_TOKENS))
    # one employee works from home, and home is a proxy exit the ring also uses
    events += [ev("e0", T0 + 300 + k, device="laptop0", ip=exits[k], asn=HOME) for k in range(3)]
    engine, alerts = run(sorted(events, key=lambda e: e.ts))

    ring = {f"r{i}" for i in range(60)}
    company = {f"e{i}" for i in range(40)}
    groups = clusters_by_members(engine)
    (ring_cluster,) = [m for m in groups.values() if m & ring]
    assert ring_cluster == ring
    assert not (actionable(engine) & company)
    assert not [a for a in alerts if a.severity in ("medium", "high") and "e0" in engine.members(a.cluster_id)]


def lockstep_ring(prefix: str, n: int, api_ips: list[str], t: float, sessions: int = 6, slots: int = 4,
                  cadence: float = 120.0, template: str = "tpl-ring"):
    """A fresh phone and a fresh virtual card per account; a scheduler has every account call the API
    with one template in the same minutes, from a few cloud IPs."""
    rng = random.Random(prefix)
    events = []
    for i in range(n):
        a = f"{prefix}{i}"
        events.append(ev(a, t - 600 + i, device=f"{prefix}-fresh{i}", ip=f"98.{i}.7.1", kind="signup", asn=HOME))
        events.append(ev(a, t - 590 + i, device=f"{prefix}-fresh{i}", payment=f"{prefix}-vcard{i}",
                         kind="payment_method_added"))
        for s in range(sessions):
            for k in range(slots):
                at = t + s * 1800 + k * cadence + rng.uniform(0, 40)
                events.append(ev(a, at, ip=rng.choice(api_ips), kind="api_usage", asn=CLOUD, template=template,
                                 requests=30, tokens_out=30 * RING_TOKENS))
    return events


def ordinary_users(prefix: str, n: int, t: float, span: float, rng: random.Random, api_ips: list[str],
                   template=lambda i: f"own-tpl-{i}"):
    """People with their own phones and cards, calling the API now and then (from shared cloud egress)."""
    events = []
    for i in range(n):
        a = f"{prefix}{i}"
        events.append(ev(a, t + rng.uniform(0, span), device=f"{prefix}-phone{i}", ip=f"99.{i // 250}.{i % 250}.1",
                         payment=f"{prefix}-card{i}", kind="signup", asn=HOME))
        for _ in range(rng.randint(2, 5)):
            events.append(ev(a, t + rng.uniform(0, span), ip=rng.choice(api_ips), kind="api_usage", asn=CLOUD,
                             template=template(i), requests=rng.randint(1, 3), tokens_out=USER_TOKENS))
    return events


def test_a_lockstep_ring_with_fresh_devices_and_cards_is_found_and_nobody_else_with_it():
    rng = random.Random(11)
    cloud = ["52.1.0.1", "52.1.0.2", "52.1.0.3"]
    ring = lockstep_ring("s", 40, cloud, T0 + 600)
    benign = ordinary_users("u", 120, T0, 3 * 3600, rng, cloud)  # the same cloud region's egress
    engine, alerts = run(sorted(ring + benign, key=lambda e: e.ts), small_config(window_seconds=6 * 3600.0))

    groups = [m for m in clusters_by_members(engine).values() if len(m) >= 10]
    assert groups == [{f"s{i}" for i in range(40)}]
    assert actionable(engine) == groups[0]
    (record,) = [r for cid, r in engine.clusters.items() if "s0" in engine.members(cid)]
    now = score_cluster(engine.graph, record.number, engine.config)
    assert now.features["lockstep_share"] > 0.9 and now.features["top_template_share"] > 0.9
    assert now.requests == 40 * 6 * 4 * 30, "damage: every exchange of the members in the window"
    assert now.tokens_out == now.requests * RING_TOKENS


def test_a_popular_template_shared_by_5000_benign_accounts_links_nobody():
    rng = random.Random(5)
    cloud = [f"52.2.0.{k}" for k in range(20)]
    events = ordinary_users("u", 5000, T0, 3000, rng, cloud, template=lambda i: "framework-default-system-prompt")
    engine, alerts = run(sorted(events, key=lambda e: e.ts), batch=2000)
    assert not engine.clusters
    assert not alerts


def test_a_network_of_cells_bridged_by_shared_cards_stays_one_operation():
    events = []
    cells, size = 5, 30
    for c in range(cells):
        for i in range(size):
            a, at = f"c{c}-{i}", T0 + c * 100 + i
            events.append(ev(a, at, device=f"cell{c}-dev{i % 5}", kind="signup"))
            events.append(ev(a, at + 0.5, device=f"cell{c}-dev{(i + 1) % 5}"))
            if i < 6:  # a few accounts of each cell pay with a card of the next cell
                events.append(ev(a, at + 0.7, payment=f"cell{(c + 1) % cells}-card", kind="payment_method_added"))
            elif i < 12:
                events.append(ev(a, at + 0.7, payment=f"cell{c}-card", kind="payment_method_added"))
    engine, _alerts = run(sorted(events, key=lambda e: e.ts))
    groups = [m for m in clusters_by_members(engine).values()]
    assert len(groups) == 1 and len(groups[0]) == cells * size
    assert engine.partition() == engine.full_recompute_partition()
