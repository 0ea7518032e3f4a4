"""The planted operations.

Device farms (each device ~10-25 accounts), prepaid-card pools (each card ~20-60), card-only rings
with a fresh device per account, camouflage logins from benign NAT/wifi hubs, slow-drip rings created
over days, one large network of cells bridged by shared cards, and lockstep rings whose accounts share
no device and no card (a fresh device and a fresh virtual card each) and are linked only by the
operation's few API egress IPs, its prompt templates and its scheduler's minutes. Six operations
route their logins and part of their API traffic through one residential proxy network whose exits are
benign home lines. Distillation accounts draw far more exchanges and output tokens than anyone else.
"""

from __future__ import annotations

from streams.dev.sim.spec import CLOUD_ASNS, DAY, FREEMAIL, MOBILE_ASNS, RESIDENTIAL_ASNS, START, RingSpec
from streams.dev.sim.traffic import Traffic


def plant(tr: Traffic) -> None:
    rng = tr.rng
    tr.hubs = [row[5] for row in tr.rows[:20000] if row[5] and row[5].startswith(("100.", "101."))]
    stop = START + tr.config.stop_after_days * DAY
    for r, spec in enumerate(tr.config.rings):
        ring_id = f"ring{r:02d}"
        if spec.kind == "cells":
            cells(tr, spec, ring_id)
            continue
        if spec.stops and tr.end > stop:
            t0, spread = tr.when(hi=START + 0.5 * (stop - START)), (stop - START) * 0.4
        elif spec.kind == "slow_drip":
            t0, spread = START + DAY * 0.2, (tr.end - START) * 0.8
        else:
            t0 = tr.when(hi=tr.end - DAY * 1.5)
            spread = rng.uniform(2, 12) * 3600
        until = stop if spec.stops else None
        if spec.kind == "lockstep":
            lockstep(tr, spec, ring_id, t0, spread, until)
        else:
            ring(tr, spec, ring_id, t0, spread, until=until)


def _login_ip(tr: Traffic, spec: RingSpec) -> str:
    return tr.extra_rng.choice(tr.exits) if spec.proxy and tr.exits else tr.ip(77)


def ring(tr: Traffic, spec: RingSpec, ring_id: str, t0: float, spread: float, cell_links: list[str] | None = None,
         until: float | None = None) -> tuple[list[str], list[str]]:
    rng = tr.rng
    n = spec.size
    farm = spec.kind in ("device_farm", "slow_drip", "camouflage", "cells")
    pooled_cards = spec.kind in ("card_pool", "card_only", "slow_drip", "cells")
    # Entity counts follow the per-entity sharing: ~1.3 devices and ~1.75 cards per account.
    devices = [tr.ids("fd") for _ in range(max(2, round(n * 1.3 / rng.uniform(10, 25))))] if farm else []
    emulators = [tr.ids("em") for _ in range(max(2, n // 8))] if spec.kind == "card_pool" else []
    cards = [tr.ids("pp") for _ in range(max(2, round(n * 1.75 / rng.uniform(20, 60))))] if pooled_cards else []
    api_ips = [tr.ip(45) for _ in range(rng.randint(2, 8))]
    templates = [f"tpl-{ring_id}-{k}" for k in range(tr.usage_rng.randint(2, 5))]
    domain_pool = FREEMAIL + (f"mailbox{rng.randint(1, 999)}.xyz",)
    accounts = []
    for _ in range(n):
        account = tr.ids("r")
        accounts.append(account)
        tr.labels[account] = (ring_id, spec.kind)
        if until is not None:
            tr.stops_at[account] = until
        if devices:
            own = [rng.choice(devices)] + ([rng.choice(devices)] if rng.random() < 0.3 else [])
        elif emulators:
            own = [rng.choice(emulators)]
        else:
            own = [tr.ids("fresh")]  # card-only: a new device for every account
        my_cards = rng.sample(cards, min(len(cards), rng.choice((1, 1, 2, 3)))) if cards else []
        if cell_links and rng.random() < 0.01:
            my_cards.append(rng.choice(cell_links))  # the weak bridge between cells
        domain = rng.choice(domain_pool)
        t = t0 + rng.uniform(0, spread)
        tr.emit(t, "signup", account, own[0], _login_ip(tr, spec), None, domain, rng.choice(RESIDENTIAL_ASNS))
        tr.emit(t + 40, "api_key_created", account, own[0], _login_ip(tr, spec), asn=rng.choice(RESIDENTIAL_ASNS))
        for card in my_cards:
            tr.emit(t + rng.uniform(60, 3600), "payment_method_added", account, rng.choice(own),
                    _login_ip(tr, spec), card, asn=rng.choice(RESIDENTIAL_ASNS))
        for _ in range(rng.randint(3, 10)):
            u = tr.when(lo=t)
            tr.emit(u, "login", account, rng.choice(own), _login_ip(tr, spec), asn=rng.choice(RESIDENTIAL_ASNS))
            proxied = spec.proxy and tr.exits and tr.extra_rng.random() < 0.5
            tr.emit(u + 20, "api_usage", account, None, tr.extra_rng.choice(tr.exits) if proxied else rng.choice(api_ips),
                    asn=rng.choice(RESIDENTIAL_ASNS) if proxied else rng.choice(CLOUD_ASNS),
                    usage=tr.ring_usage(templates))
        if spec.kind == "camouflage":
            for _ in range(rng.randint(1, 3)):
                hub = rng.choice(tr.hubs) if tr.hubs else tr.ip(100)
                tr.emit(tr.when(lo=t), "login", account, rng.choice(own), hub, asn=rng.choice(MOBILE_ASNS))
    return accounts, cards


def cells(tr: Traffic, spec: RingSpec, ring_id: str) -> None:
    rng = tr.rng
    remaining = spec.size
    previous_cards: list[str] = []
    t0 = START + DAY * 0.5
    while remaining > 0:
        size = min(remaining, rng.randint(200, 600))
        cell = RingSpec("cells", max(size, 30), proxy=spec.proxy)
        _accounts, previous_cards = ring(tr, cell, ring_id, t0 + rng.uniform(0, 4 * DAY), 8 * 3600, previous_cards)
        remaining -= cell.size


def lockstep(tr: Traffic, spec: RingSpec, ring_id: str, t0: float, spread: float, until: float | None) -> list[str]:
    """A fresh device and a fresh virtual card per account; the operation's scheduler runs sessions in
    which every account calls the API with the session's template in the same minutes."""
    x = tr.extra_rng
    api_ips = [tr.ip(46) for _ in range(x.randint(2, 5))]
    templates = [f"tpl-{ring_id}-{k}" for k in range(x.randint(2, 4))]
    cadence = 60 * x.choice((2, 3, 5, 10))
    sessions = []
    t = (t0 // 60 + 1) * 60
    while t < tr.end:
        sessions.append((t, x.choice(templates), x.randint(3, 6)))
        t = ((t + x.uniform(4, 8) * 3600) // 60) * 60
    accounts = []
    for _ in range(spec.size):
        account = tr.ids("r")
        accounts.append(account)
        tr.labels[account] = (ring_id, spec.kind)
        if until is not None:
            tr.stops_at[account] = until
        device, card = tr.ids("fresh"), tr.ids("vcard")
        joined = t0 + x.uniform(0, spread)
        tr.emit(joined, "signup", account, device, _login_ip(tr, spec), None, x.choice(FREEMAIL), x.choice(RESIDENTIAL_ASNS))
        tr.emit(joined + 30, "payment_method_added", account, device, _login_ip(tr, spec), card, asn=x.choice(RESIDENTIAL_ASNS))
        for start, template, slots in sessions:
            if start < joined or x.random() > 0.8:
                continue
            for k in range(slots):
                at = start + k * cadence + x.uniform(0, 45)
                proxied = spec.proxy and tr.exits and x.random() < 0.5
                tr.emit(at, "api_usage", account, None, x.choice(tr.exits) if proxied else x.choice(api_ips),
                        asn=x.choice(RESIDENTIAL_ASNS) if proxied else x.choice(CLOUD_ASNS),
                        usage=tr.ring_usage([template]))
        for _ in range(x.randint(1, 4)):
            tr.emit(tr.when(lo=joined), "login", account, device, _login_ip(tr, spec), asn=x.choice(MOBILE_ASNS))
    return accounts
