"""Detection v3 on hand-built groups: evidence a group owns together. A set of prompt templates that
only the group runs binds it even when every account has its own phone and card and touches one or
two of the templates; the same shape at ordinary volume (a company's internal tool, a class's
exercises) is a group but not an alert; a crowd on one framework prompt is not a group at all."""

import random
from collections.abc import Callable

from graph.scoring import score_cluster

from graph import DetectionEngine
from tests.conftest import T0, ev, run, small_config
from tests.unit.test_detection_v2 import CLOUD, HOME, RING_TOKENS, USER_TOKENS, actionable, ordinary_users

WINDOW = small_config(window_seconds=6 * 3600.0)


def owned_infra_ring(prefix: str, n: int, rng: random.Random, templates: int = 12, ips: int = 4,
                     exits: list[str] | None = None, card_group: int = 0, t0: float = T0):
    """An operation with its own phone (and card, or a card shared by `card_group` accounts) per
    account, calling the API heavily with two to four of its own templates — from its own datacenter
    IPs, or through residential exits shared with ordinary people."""
    events = []
    for i in range(n):
        a, t = f"{prefix}{i}", t0 + rng.uniform(0, 3600)
        card = f"{prefix}-pool{i // card_group}" if card_group else f"{prefix}-card{i}"
        events.append(ev(a, t, device=f"{prefix}-phone{i}", payment=card, kind="signup", asn=HOME,
                         ip=rng.choice(exits) if exits else f"98.{i % 200}.{i // 200}.7"))
        for tpl in rng.sample(range(templates), rng.randint(2, 4)):
            for k in range(2):
                ip = rng.choice(exits) if exits else f"45.9.0.{rng.randrange(ips)}"
                events.append(ev(a, t + 60 + 600 * k + tpl, ip=ip, kind="api_usage", asn=HOME if exits else CLOUD,
                                 template=f"{prefix}-tpl{tpl}", requests=60, tokens_out=60 * RING_TOKENS))
    return events


def internal_tool(prefix: str, n: int, rng: random.Random, templates: int = 3):
    """A company's staff, each on a workstation of their own and the corporate card, using the
    company's internal assistant (its few templates) from the office's cloud egress at ordinary volume."""
    events = []
    for i in range(n):
        a, t = f"{prefix}{i}", T0 + rng.uniform(0, 3600)
        events.append(ev(a, t, device=f"{prefix}-ws{i}", payment=f"{prefix}-corp", kind="signup", asn=HOME,
                         ip="64.1.0.1", domain=f"{prefix}-corp.com"))
        for tpl in rng.sample(range(templates), 2):
            events.append(ev(a, t + 60 + tpl, ip="54.3.0.1", kind="api_usage", asn=CLOUD,
                             template=f"{prefix}-tool{tpl}", requests=2, tokens_out=2 * USER_TOKENS))
    return events


def population(rng: random.Random):
    """Ordinary users writing their own prompts: the volume extraction is measured against."""
    return ordinary_users("u", 300, T0, 3 * 3600, rng, [f"52.7.0.{k}" for k in range(10)])


def test_a_ring_on_its_own_templates_and_servers_with_a_phone_and_card_each_is_one_alert():
    rng = random.Random(21)
    ring = owned_infra_ring("r", 150, rng)
    engine, _alerts = run(sorted(ring + population(rng), key=lambda e: e.ts), WINDOW)
    ring_accounts = {f"r{i}" for i in range(150)}
    assert actionable(engine) == ring_accounts  # all of it, in ...
    (cid,) = [cid for cid in engine.clusters if "r0" in engine.members(cid)]  # ... one cluster
    assert set(engine.members(cid)) == ring_accounts
    score = score_cluster(engine.graph, engine.clusters[cid].number, engine.config)
    assert score.features["owned_template_share"] == 1.0 and score.features["owned_templates"] == 12
    assert any(e.entity_type == "owned_template" for e in score.evidence)
    assert score.summary.startswith("150 accounts: the only users of 12 prompt templates")
    assert [a for a in _alerts if a.action == "opened"][0].summary == score.summary  # the alert carries it


def test_an_operation_whose_templates_pass_thousands_of_users_stays_one_alert():
    """Operations run tens of thousands of accounts on a handful of templates: a template's group must
    not dissolve as its users pass a size (the bound was once 5,000, and a growing operation lost its
    alert there)."""
    rng = random.Random(22)
    n = 8000
    ring = owned_infra_ring("big", n, rng, templates=4)
    engine, alerts = run(sorted(ring + population(rng), key=lambda e: e.ts), WINDOW, batch=4000)
    users = len({e.account_id for e in ring if e.prompt_fingerprint == "big-tpl0"})
    assert users > 5000, users  # past the old bound
    (cid,) = [cid for cid in engine.clusters if "big0" in engine.members(cid)]
    assert len(engine.members(cid)) == n and actionable(engine) == {f"big{i}" for i in range(n)}
    assert not [a for a in alerts if a.action == "closed"]


def test_card_groups_on_a_shared_proxy_network_are_joined_by_the_templates_they_run_together():
    rng = random.Random(22)
    exits = [f"77.2.{k // 250}.{k % 250}" for k in range(400)]
    ring = owned_infra_ring("c", 300, rng, templates=20, exits=exits, card_group=25)
    homes = [ev(f"h{k}", T0 + k, device=f"h-phone{k}", ip=exits[k], asn=HOME) for k in range(400)]  # people behind the exits
    engine, _alerts = run(sorted(ring + homes + population(rng), key=lambda e: e.ts), WINDOW)
    ring_accounts = {f"c{i}" for i in range(300)}
    flagged = actionable(engine)
    assert flagged <= ring_accounts, "nobody behind the exits is flagged"
    biggest = max((set(engine.members(cid)) for cid in engine.clusters), key=len)
    assert len(biggest & ring_accounts) >= 0.8 * 300 and biggest <= ring_accounts


def test_a_company_internal_tool_is_a_group_but_not_an_alert_and_a_class_neither():
    rng = random.Random(23)
    company = internal_tool("co", 120, rng)
    events = company + population(rng)
    for i in range(80):  # a class: own phones, two exercise templates at ordinary volume, campus wifi
        a, t = f"stu{i}", T0 + 7200 + rng.uniform(0, 600)
        events.append(ev(a, t, device=f"stu-phone{i}", ip="130.5.0.1", kind="signup", asn=HOME, domain="uni.edu"))
        for k in (0, 1):
            events.append(ev(a, t + 300 * (k + 1), ip="130.5.0.1", kind="api_usage", asn=HOME,
                             template=f"exercise-{k}", requests=3, tokens_out=3 * USER_TOKENS))
    engine, _alerts = run(sorted(events, key=lambda e: e.ts), WINDOW)
    assert not actionable(engine)
    groups = [set(engine.members(cid)) for cid in engine.clusters]
    assert {f"stu{i}" for i in range(80)} in groups  # found as a group (its templates are owned) ...
    for cid in engine.clusters:  # ... and held under medium by the score: ordinary volume
        score = score_cluster(engine.graph, engine.clusters[cid].number, engine.config)
        assert score.score < engine.config.medium_min_score and score.severity not in ("medium", "high")


def spending(prefix: str, n: int, t0: float, calls: int, requests: Callable[[int], int]):
    """The ring's accounts calling on: call ``k`` of each account 10 minutes after the one before, on
    its templates in turn, from its server, with ``requests(k)`` exchanges."""
    return [ev(f"{prefix}{i}", t0 + 600 * k + i, ip="45.9.0.1", kind="api_usage", asn=CLOUD,
               template=f"{prefix}-tpl{k % 12}", requests=requests(k), tokens_out=requests(k) * RING_TOKENS)
            for i in range(n) for k in range(calls)]


def test_damage_is_current_in_every_version_and_exact_in_the_last():
    """A large alert is re-scored rarely; its damage is kept by the kernel at every tick, so at every
    tick the alert's latest version states at least (1 - damage_regrowth) of what the members had
    sent in the hours stage B has seen closed, and the last version (after the end of input) all of it."""
    rng = random.Random(24)
    start = T0 + 2 * 3600  # after ordinary users have set the population's volume
    # the ring keeps spending for eight more hours after it formed, a call per account every 10 minutes
    ring = owned_infra_ring("d", 120, rng, t0=start) + spending("d", 120, start + 3600, 48, lambda k: 10)
    events = sorted(ring + population(rng), key=lambda e: e.ts)
    ring_requests = sorted((e.ts, e.requests or 0) for e in events if e.account_id.startswith("d"))

    def sent(before: float) -> int:  # the ring's exchanges before a time (the window holds everything here)
        return sum(r for ts, r in ring_requests if ts < before)

    engine = DetectionEngine(small_config(window_seconds=12 * 3600.0, rescore_seconds=1800.0), clock=lambda: 0.0)
    latest = None
    checked = 0
    for i in range(0, len(events), 200):
        for a in engine.process(events[i:i + 200]).alerts:
            if a.member_count >= 100:
                latest = a
        if latest is not None and engine.last_tick is not None:
            closed = sent((engine.last_tick // 3600 - 1) * 3600)  # hours closed, and emitted, before the tick
            assert latest.requests >= (1 - engine.config.damage_regrowth) * closed, (engine.last_tick, latest.version)
            checked += 1
    final = [a for a in engine.flush().alerts if a.member_count >= 100]
    assert checked > 20 and final and final[-1].requests == sent(float("inf"))
    assert final[-1].reason == "damage moved" and final[-1].notify


def test_a_high_alert_republishes_its_damage_without_re_measuring(monkeypatch):
    """A high alert whose members stay put while they spend gets new versions with the damage as of
    the tick and the last score's structure as it was: the cluster is not re-measured for them (a high
    alert cannot escalate; its structure is re-scored when members move or its interval passes)."""
    import graph.detector

    measured: list[int] = []  # sizes of the clusters the detector re-measures

    def counting(graph_, number, config):
        scored = score_cluster(graph_, number, config)
        measured.append(int(scored.features["size"]) if scored else 0)
        return scored

    monkeypatch.setattr(graph.detector, "score_cluster", counting)
    rng = random.Random(24)
    start = T0 + 2 * 3600
    # sixteen more hours of calls, ever larger
    ring = owned_infra_ring("d", 120, rng, t0=start) + spending("d", 120, start + 3600, 96, lambda k: 10 * (1 + k // 4))
    events = sorted(ring + population(rng), key=lambda e: e.ts)
    engine = DetectionEngine(small_config(window_seconds=12 * 3600.0, rescore_seconds=3 * 3600.0), clock=lambda: 0.0)
    versions = []
    for i in range(0, len(events), 200):
        versions += [a for a in engine.process(events[i:i + 200]).alerts if a.member_count >= 100 and a.notify]
    cheap = [(before, after) for before, after in zip(versions, versions[1:], strict=False)
             if after.reason == "damage moved" and before.severity == after.severity == "high"
             and after.member_count == before.member_count and after.features is before.features]
    assert len(cheap) >= 3  # damage-only versions: the same score object, new damage
    assert all(after.requests > before.requests and after.score == before.score for before, after in cheap)
    assert sum(1 for size in measured if size >= 100) < len(versions)  # fewer measurements than versions


def phone_farm(prefix: str, n: int, phones: int, rng: random.Random, t0: float = T0, domain: str | None = None,
               rotate: bool = False):
    """Fresh accounts that only sign up and log in so far, each on one of the farm's phones (no phone of
    its own; the phones' groups are disjoint: no mesh), all through the farm's three home lines — or,
    with ``rotate``, on a new fingerprint every session besides."""
    events = []
    lines = [f"98.77.{len(prefix)}{k}.1" for k in range(3)]
    for i in range(n):
        a, t = f"{prefix}{i}", t0 + rng.uniform(0, 3600)
        phone = f"{prefix}-phone{i % phones}"
        events.append(ev(a, t, device=phone, kind="signup", asn=HOME, ip=lines[0],
                         domain=domain or rng.choice(("gmail.com", "outlook.com", "yahoo.com"))))
        for k in range(rng.randint(4, 7)):
            events.append(ev(a, t + 600 * (k + 1), device=phone, ip=lines[k % 3], asn=HOME))
            if rotate:
                events.append(ev(a, t + 600 * (k + 1) + 5, device=f"{prefix}-fp{i}-{k}", ip=lines[k % 3], asn=HOME))
    return events


def test_a_farm_before_it_spends_is_medium_and_its_spending_raises_it():
    rng = random.Random(31)
    farm = phone_farm("f", 150, 10, rng, t0=T0 + 3600)
    engine, _alerts = run(sorted(farm + population(rng), key=lambda e: e.ts), WINDOW)
    (cid,) = [c for c in engine.clusters if "f0" in engine.members(c)]
    score = score_cluster(engine.graph, engine.clusters[cid].number, engine.config)
    assert len(engine.members(cid)) >= 0.8 * 150 and score.requests == 0
    assert score.severity == "medium" and score.score == engine.config.prefarm_max and score.features["prefarm"] >= 0.8
    assert actionable(engine) <= {f"f{i}" for i in range(150)}


def test_a_farm_rotating_fingerprints_every_session_has_no_identity_of_its_own():
    rng = random.Random(32)
    farm = phone_farm("g", 150, 10, rng, t0=T0 + 3600, rotate=True)
    engine, _alerts = run(sorted(farm + population(rng), key=lambda e: e.ts), WINDOW)
    flagged = actionable(engine)
    assert len(flagged) >= 0.8 * 150 and flagged <= {f"g{i}" for i in range(150)}


def test_look_alikes_of_a_farm_before_it_spends_stay_under_medium():
    """A reseller provisioning customers from three servers under its domain; a company's QA lab of
    test accounts on shared test phones under its domain; a CI fleet of long-standing accounts on
    shared containers (no signup in the window)."""
    rng = random.Random(33)
    reseller = []
    for i in range(200):
        a, t = f"cust{i}", T0 + 3600 + rng.uniform(0, 1800)
        reseller.append(ev(a, t, device=f"prov{i % 3}", ip="54.9.0.1", kind="signup", asn=CLOUD, domain="resell.io",
                           payment="resell-card"))
    qa = phone_farm("qa", 80, 8, rng, t0=T0 + 3600, domain="acme-corp.com")
    ci = []
    for i in range(60):
        for k in range(4):
            ci.append(ev(f"svc{i}", T0 + 3600 + 900 * k + i, device=f"ctr{(i + k) % 12}", ip="54.8.0.1", asn=CLOUD,
                         domain="ci-corp.com", payment="ci-card"))
    engine, _alerts = run(sorted(reseller + qa + ci + population(rng), key=lambda e: e.ts), WINDOW)
    sizes = sorted(len(engine.members(c)) for c in engine.clusters)
    assert sizes and sizes[-1] >= 60, "the look-alikes are groups ..."
    assert not actionable(engine), "... and none is actionable"


def test_the_last_published_version_states_the_cluster_as_it_is():
    """Growth under the re-publication bar reaches the audit store only (membership versions); when the
    input ends, the alert is published once more with its size, so fraud-alerts ends on the truth."""
    rng = random.Random(25)
    start = T0 + 2 * 3600
    ring = owned_infra_ring("m", 120, rng, t0=start)
    late = owned_infra_ring("m", 135, random.Random(26), t0=start + 4 * 3600)[-15 * 11:]  # 15 more, later
    late = [e for e in late if int(e.account_id[1:]) >= 120]
    events = sorted(ring + late + population(rng), key=lambda e: e.ts)
    engine, alerts = run(events, small_config(window_seconds=12 * 3600.0, rescore_seconds=1800.0), batch=500)
    mine = [a for a in alerts if a.alert_id == alerts[-1].alert_id or a.member_count >= 100]
    published = [a for a in mine if a.notify]
    (cid,) = [c for c in engine.clusters if "m0" in engine.members(c)]
    size = len(engine.members(cid))
    assert size > 120 and published[-1].member_count == size
    assert published[-1].requests == engine.graph.damage(engine.clusters[cid].number)[0]


def test_settling_publishes_a_size_the_topic_has_not_seen_and_nothing_else():
    from graph.alerts import AlertBook

    book = AlertBook(small_config())
    args = dict(verdict=None, severity="high", score=0.9, features={}, evidence=(), detected_at=0.0,
                requests=100, tokens_out=1000, at=0.0, wall=0.0, reason="structure score")
    opened = book.on_scored("C1", [f"a{i}" for i in range(100)], 100, **args)
    assert opened is not None and opened.notify
    book.on_deltas("C1", [f"b{i}" for i in range(10)], [])  # +10 %: under the 25 % re-publication bar
    quiet = book.on_scored("C1", None, 110, **args)
    assert quiet is not None and not quiet.notify, "a membership version: the audit store only"
    assert book.on_scored("C1", None, 110, **args) is None, "nothing new"
    settled = book.on_scored("C1", None, 110, **args, damage_regrowth=0.0, settling=True)
    assert settled is not None and settled.notify and settled.member_count == 110 and settled.reason == "settled"
    assert book.on_scored("C1", None, 110, **args, damage_regrowth=0.0, settling=True) is None, "said once"


def course(prefix: str, n: int, rng: random.Random, templates: int = 8, card_group: int = 0):
    """A self-paced course's students: each on a laptop and a home line of their own, running only the
    course's notebooks, which loop over the API at extraction volume (with ``card_group``: the same
    shape paying from a pool of cards, one per that many accounts)."""
    events = []
    for i in range(n):
        a, t, home = f"{prefix}{i}", T0 + rng.uniform(0, 3600), f"98.{i % 200}.{i // 200}.9"
        card = f"{prefix}-pool{i // card_group}" if card_group else None
        events.append(ev(a, t, device=f"{prefix}-laptop{i}", payment=card, kind="signup", asn=HOME, ip=home))
        for tpl in rng.sample(range(templates), rng.randint(2, 4)):
            for k in range(2):
                events.append(ev(a, t + 60 + 600 * k + tpl, ip=home, kind="api_usage", asn=HOME,
                                 template=f"{prefix}-nb{tpl}", requests=60, tokens_out=60 * RING_TOKENS))
    return events


def test_students_sharing_only_a_courses_notebooks_are_a_lead_not_an_alert():
    """Content alone is a group, not an operation: the same volume on the same kind of owned templates is
    actionable once the members also share a means of production (here: a card pool)."""
    rng = random.Random(23)
    students = course("s", 150, rng)
    engine, _alerts = run(sorted(students + population(rng), key=lambda e: e.ts), WINDOW)
    (cid,) = [cid for cid in engine.clusters if "s0" in engine.members(cid)]
    score = score_cluster(engine.graph, engine.clusters[cid].number, engine.config)
    assert score.features["owned_template_share"] == 1.0 and score.features["intensity"] > 50
    assert actionable(engine) == set(), "a course is not paged"
    assert score.severity in (None, "low") and score.features["owned"] <= engine.config.owned_uncorroborated

    pooled = course("p", 150, random.Random(23), card_group=25)
    engine, _alerts = run(sorted(pooled + population(random.Random(24)), key=lambda e: e.ts), WINDOW)
    assert actionable(engine) == {f"p{i}" for i in range(150)}, "the same shape on a card pool is an operation"


def test_an_operation_on_exits_it_shares_with_strangers_is_corroborated_by_where_it_calls_from():
    """A phone and a card of its own per account, an exit per session from a hosting provider's ranges
    that other customers use too (no IP is the operation's own): the templates it runs together still
    make it an operation, because it calls from hosting networks, not from its members' homes."""
    rng = random.Random(25)
    exits = [f"185.20.{k // 250}.{k % 250}" for k in range(500)]
    ring = owned_infra_ring("v", 150, rng, templates=10)
    ring = [ev(e.account_id, e.ts, device=e.device_id, payment=e.payment_id, kind=e.type, asn=CLOUD,
               ip=rng.choice(exits), template=e.prompt_fingerprint, requests=e.requests, tokens_out=e.tokens_out)
            for e in ring]
    customers = [ev(f"x{k}", T0 + k, device=f"x-ph{k}", ip=exits[k % 500], asn=CLOUD) for k in range(2500)]
    engine, _alerts = run(sorted(ring + customers + population(rng), key=lambda e: e.ts), WINDOW)
    (cid,) = [cid for cid in engine.clusters if "v0" in engine.members(cid)]
    score = score_cluster(engine.graph, engine.clusters[cid].number, engine.config)
    assert score.features["owned_ip_share"] < 0.5 and score.features["datacenter_share"] == 1.0
    assert actionable(engine) == {f"v{i}" for i in range(150)}
