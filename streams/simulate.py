"""Seeded traffic: a benign population that shares a lot, and planted rings that share differently.

Benign sharing: households (home IP, sometimes a tablet or a family card), mobile-carrier NAT IPs
shared by hundreds, public wifi, VPN exit pools, library / internet-café computers, companies whose
staff share office IPs, a corporate card (or one per team) and cloud API IPs — some onboarding
hundreds of accounts within an hour — and developers calling the API from their own cloud server.

Rings: device farms (each device ~10–25 accounts), prepaid-card pools (each card ~20–60), card-only
rings with a fresh device per account, rotating residential proxies, datacenter IPs for API calls,
camouflage logins from benign NAT/wifi hubs, slow-drip rings created over days, and one large
network of weakly bridged cells.

Everything is a function of the seed. Output: contract events (dicts) in event-time order, and a
label per account (``ring_id`` empty for benign).
"""

from __future__ import annotations

import csv
import gzip
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

import orjson

FREEMAIL = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "proton.me", "icloud.com")
RESIDENTIAL_ASNS = ("AS7922", "AS701", "AS3320", "AS2856", "AS12322", "AS3215", "AS6830")
MOBILE_ASNS = ("AS21928", "AS22394", "AS20057")
CLOUD_ASNS = ("AS16509", "AS14061", "AS24940", "AS16276", "AS15169")
START = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
DAY = 86400.0
Usage = tuple[int, int, int, str, str]  # requests, tokens_in, tokens_out, model, prompt fingerprint


@dataclass(frozen=True)
class RingSpec:
    kind: str  # device_farm | card_pool | card_only | slow_drip | camouflage | cells
    size: int


def default_rings(scale: float = 1.0, count: int | None = None) -> list[RingSpec]:
    """The planted rings; ``scale`` multiplies their sizes, ``count`` cycles through the kinds to plant
    that many (default: the 16 below, one of each hard case at several sizes)."""
    def s(n: int) -> int:
        return max(30, int(n * scale))
    rings = [RingSpec("device_farm", s(n)) for n in (120, 300, 800)]
    rings += [RingSpec("card_pool", s(n)) for n in (150, 400, 1000)]
    rings += [RingSpec("card_only", s(n)) for n in (110, 500)]
    rings += [RingSpec("slow_drip", s(n)) for n in (140, 600)]
    rings += [RingSpec("camouflage", s(n)) for n in (200, 700)]
    rings += [RingSpec("device_farm", s(40)), RingSpec("card_pool", s(60))]  # small ones
    rings.append(RingSpec("cells", s(24000)))
    if count is not None:
        rings = [rings[i % len(rings)] for i in range(count)]
    return rings


@dataclass
class SimConfig:
    seed: int = 42
    benign_accounts: int = 100_000
    days: float = 7.0
    rings: list[RingSpec] = field(default_factory=default_rings)
    duplicate_rate: float = 0.0  # share of events delivered twice
    late_rate: float = 0.0  # share of events delivered up to ``max_late_seconds`` late
    max_late_seconds: float = 180.0


class _Ids:
    """Short readable deterministic ids."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.counts: dict[str, int] = {}

    def __call__(self, prefix: str) -> str:
        n = self.counts.get(prefix, 0) + 1
        self.counts[prefix] = n
        return f"{prefix}{n:06d}{self.rng.randrange(16**4):04x}"


class _Traffic:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.ids = _Ids(self.rng)
        self.end = START + config.days * DAY
        self.rows: list[tuple[Any, ...]] = []  # (ts, seq, type, account, device, ip, payment, domain, asn)
        self.labels: dict[str, tuple[str, str]] = {}  # account -> (ring_id, kind)
        self.usage_rng = random.Random(config.seed + 2)
        self._ip_n = 0

    # -- helpers ----------------------------------------------------------------------------
    def ip(self, block: int) -> str:
        self._ip_n += 1
        n = self._ip_n
        return f"{block}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"

    def emit(self, ts: float, kind: str, account: str, device: str | None, ip: str | None,
             payment: str | None = None, domain: str | None = None, asn: str | None = None,
             usage: Usage | None = None) -> None:
        if START <= ts < self.end:
            if kind == "api_usage" and usage is None:
                usage = self.benign_usage()
            self.rows.append((ts, len(self.rows), kind, account, device, ip, payment, domain, asn, usage))

    # API usage: its own random stream, so adding it left the rest of the traffic as it was.
    def benign_usage(self) -> Usage:
        """(requests, tokens_in, tokens_out, model, prompt fingerprint) of an ordinary user's minute:
        a few exchanges, short answers, mostly popular framework templates."""
        r = self.usage_rng
        requests = max(1, int(r.lognormvariate(0.7, 0.8)))
        template = f"tpl-popular-{min(int(r.paretovariate(1.2)), 40)}" if r.random() < 0.6 else f"tpl-own-{r.randrange(10**6)}"
        return (requests, requests * r.randint(200, 1500), requests * r.randint(100, 900),
                r.choice(("m-small", "m-large")), template)

    def ring_usage(self, templates: list[str]) -> Usage:
        """A distillation account's minute: dozens to hundreds of exchanges with long answers, from
        the operation's few templates."""
        r = self.usage_rng
        requests = r.randint(40, 400)
        return (requests, requests * r.randint(300, 1200), requests * r.randint(1500, 4000), "m-large", r.choice(templates))

    def when(self, lo: float | None = None, hi: float | None = None) -> float:
        return self.rng.uniform(lo if lo is not None else START, hi if hi is not None else self.end)

    # -- benign -----------------------------------------------------------------------------
    def benign(self) -> None:
        rng, cfg = self.rng, self.config
        n = cfg.benign_accounts
        nat_ips = [self.ip(100) for _ in range(max(3, n // 250))]
        wifi_ips = [self.ip(101) for _ in range(max(5, n // 60))]
        self.cafes = [self.ip(103) for _ in range(max(5, n // 12))]  # small spots: ~5-20 regulars each
        vpn_ips = [self.ip(102) for _ in range(max(5, n // 2000))]
        kiosks = [self.ids("kiosk") for _ in range(max(2, n // 1500))]
        made = 0
        while made < n:
            household = min(n - made, rng.choice((1, 1, 2, 2, 3, 4, 5)))
            home_ip = self.ip(98)
            home_asn = rng.choice(RESIDENTIAL_ASNS)
            family_card = self.ids("card") if household > 1 and rng.random() < 0.35 else None
            tablet = self.ids("tab") if household > 1 and rng.random() < 0.25 else None
            for _ in range(household):
                self.benign_user(home_ip, home_asn, family_card, tablet, nat_ips, wifi_ips, vpn_ips, kiosks)
                made += 1
        self.companies(max(1, n // 2500))
        self.small_offices(max(1, n // 150))

    def benign_user(self, home_ip: str, home_asn: str, family_card: str | None, tablet: str | None,
                    nat_ips: list[str], wifi_ips: list[str], vpn_ips: list[str], kiosks: list[str]) -> None:
        rng = self.rng
        account = self.ids("u")
        self.labels[account] = ("", "benign")
        kiosk_only = rng.random() < 0.004
        phone = None if kiosk_only else self.ids("ph")
        laptop = self.ids("lt") if rng.random() < 0.5 and not kiosk_only else None
        card = family_card if family_card and rng.random() < 0.7 else (self.ids("card") if rng.random() < 0.6 else None)
        domain = rng.choice(FREEMAIL)
        nat = rng.choice(nat_ips)
        places = rng.sample(wifi_ips, rng.choice((0, 0, 1, 1, 2, 3))) + rng.sample(self.cafes, rng.choice((0, 1, 1, 2)))
        vpn = rng.sample(vpn_ips, rng.randint(2, 5)) if rng.random() < 0.08 else []
        kiosk = rng.choice(kiosks) if kiosk_only or rng.random() < 0.03 else None
        dev_server = self.ip(52) if rng.random() < 0.04 else None
        if rng.random() < 0.03:  # a few new accounts this week; the rest signed up long ago
            t = self.when(hi=self.end - DAY)
            self.emit(t, "signup", account, phone or kiosk, home_ip, None, domain, home_asn)
        if card:
            self.emit(self.when(), "payment_method_added", account, phone or laptop or kiosk, home_ip, card, domain, home_asn)
        for _ in range(rng.randint(2, 8)):
            t = self.when()
            r = rng.random()
            if r < 0.35:
                self.emit(t, "login", account, phone, nat, asn=rng.choice(MOBILE_ASNS))
            elif r < 0.6 or not (places or vpn):
                self.emit(t, "login", account, laptop or phone or kiosk, home_ip, asn=home_asn)
            elif places and r < 0.8:
                self.emit(t, "login", account, phone or kiosk, rng.choice(places), asn=home_asn)
            else:
                self.emit(t, "login", account, laptop or phone or kiosk, rng.choice(vpn or places), asn="AS9009")
            if tablet and rng.random() < 0.3:
                self.emit(t + 60, "login", account, tablet, home_ip, asn=home_asn)
            if kiosk and rng.random() < 0.6:
                self.emit(t + 120, "login", account, kiosk, self.ip(99) if rng.random() < 0.5 else home_ip, asn=home_asn)
            self.emit(t + 5, "api_usage", account, None, dev_server or home_ip,
                      asn=rng.choice(CLOUD_ASNS) if dev_server else home_asn)

    def companies(self, count: int) -> None:
        rng = self.rng
        for c in range(count):
            size = rng.choice((25, 40, 80, 150, 300, 450))
            domain = f"corp{c}-{self.ids('d')}.com"
            offices = [self.ip(64) for _ in range(rng.randint(1, 3))]
            cloud = [self.ip(54) for _ in range(rng.randint(1, 4))]
            per_team = rng.random() < 0.35
            team_size = rng.randint(10, 40)
            cards: list[str] = []
            onboard_burst = rng.random() < 0.4
            t0 = self.when(hi=self.end - 2 * DAY)
            for i in range(size):
                if not cards or (per_team and i % team_size == 0):
                    cards.append(self.ids("corpcard"))
                account = self.ids("emp")
                self.labels[account] = ("", "benign_company")
                device = self.ids("wl")
                office = rng.choice(offices)
                t = t0 + rng.uniform(0, 3600) if onboard_burst else self.when()
                self.emit(t, "signup", account, device, office, None, domain, "AS3356")
                self.emit(t + 30, "payment_method_added", account, device, office, cards[-1], domain, "AS3356")
                for _ in range(rng.randint(2, 6)):
                    u = self.when(lo=t)
                    self.emit(u, "login", account, device, rng.choice(offices), asn="AS3356")
                    self.emit(u + 10, "api_usage", account, None, rng.choice(cloud), asn="AS16509")

    def small_offices(self, count: int) -> None:
        """Shops and small firms: 4-18 staff on one office IP and one company card, each with their
        own phone, who also drop into the small cafés nearby."""
        rng = self.rng
        for _ in range(count):
            office, card = self.ip(65), self.ids("shopcard")
            nearby = rng.sample(self.cafes, 3)
            for _ in range(rng.randint(4, 18)):
                account = self.ids("st")
                self.labels[account] = ("", "benign_small_office")
                phone = self.ids("ph")
                self.emit(self.when(), "payment_method_added", account, phone, office, card, asn="AS3320")
                for _ in range(rng.randint(2, 6)):
                    t = self.when()
                    self.emit(t, "login", account, phone, office if rng.random() < 0.6 else rng.choice(nearby),
                              asn="AS3320")
                    self.emit(t + 5, "api_usage", account, None, office, asn="AS3320")

    # -- rings ------------------------------------------------------------------------------
    def ring(self, spec: RingSpec, ring_id: str, t0: float, spread: float, cell_links: list[str] | None = None
             ) -> list[str]:
        rng = self.rng
        n = spec.size
        farm = spec.kind in ("device_farm", "slow_drip", "camouflage", "cells")
        pooled_cards = spec.kind in ("card_pool", "card_only", "slow_drip", "cells")
        # Entity counts follow the per-entity sharing: ~1.3 devices and ~1.75 cards per account.
        devices = [self.ids("fd") for _ in range(max(2, round(n * 1.3 / rng.uniform(10, 25))))] if farm else []
        emulators = [self.ids("em") for _ in range(max(2, n // 8))] if spec.kind == "card_pool" else []
        cards = [self.ids("pp") for _ in range(max(2, round(n * 1.75 / rng.uniform(20, 60))))] if pooled_cards else []
        api_ips = [self.ip(45) for _ in range(rng.randint(2, 8))]
        templates = [f"tpl-{ring_id}-{k}" for k in range(self.usage_rng.randint(2, 5))]
        domain_pool = FREEMAIL + (f"mailbox{rng.randint(1, 999)}.xyz",)
        accounts = []
        for _ in range(n):
            account = self.ids("r")
            accounts.append(account)
            self.labels[account] = (ring_id, spec.kind)
            if devices:
                own = [rng.choice(devices)] + ([rng.choice(devices)] if rng.random() < 0.3 else [])
            elif emulators:
                own = [rng.choice(emulators)]
            else:
                own = [self.ids("fresh")]  # card-only: a new device for every account
            my_cards = rng.sample(cards, min(len(cards), rng.choice((1, 1, 2, 3)))) if cards else []
            if cell_links and rng.random() < 0.01:
                my_cards.append(rng.choice(cell_links))  # the weak bridge between cells
            domain = rng.choice(domain_pool)
            t = t0 + rng.uniform(0, spread)
            self.emit(t, "signup", account, own[0], self.ip(77), None, domain, rng.choice(RESIDENTIAL_ASNS))
            self.emit(t + 40, "api_key_created", account, own[0], self.ip(77), asn=rng.choice(RESIDENTIAL_ASNS))
            for card in my_cards:
                self.emit(t + rng.uniform(60, 3600), "payment_method_added", account, rng.choice(own),
                          self.ip(77), card, asn=rng.choice(RESIDENTIAL_ASNS))
            for _ in range(rng.randint(3, 10)):
                u = self.when(lo=t)
                self.emit(u, "login", account, rng.choice(own), self.ip(77), asn=rng.choice(RESIDENTIAL_ASNS))
                self.emit(u + 20, "api_usage", account, None, rng.choice(api_ips), asn=rng.choice(CLOUD_ASNS),
                          usage=self.ring_usage(templates))
            if spec.kind == "camouflage":
                for _ in range(rng.randint(1, 3)):
                    hub = rng.choice(self._hubs) if self._hubs else self.ip(100)
                    self.emit(self.when(lo=t), "login", account, rng.choice(own), hub, asn=rng.choice(MOBILE_ASNS))
        return cards

    def rings(self) -> None:
        rng = self.rng
        self._hubs = [row[5] for row in self.rows[:20000] if row[5] and row[5].startswith(("100.", "101."))]
        for r, spec in enumerate(self.config.rings):
            ring_id = f"ring{r:02d}"
            if spec.kind == "cells":
                self.cells(spec, ring_id)
                continue
            if spec.kind == "slow_drip":
                t0, spread = START + DAY * 0.2, (self.end - START) * 0.8
            else:
                t0 = self.when(hi=self.end - DAY * 1.5)
                spread = rng.uniform(2, 12) * 3600
            self.ring(spec, ring_id, t0, spread)

    def cells(self, spec: RingSpec, ring_id: str) -> None:
        rng = self.rng
        remaining = spec.size
        previous_cards: list[str] = []
        t0 = START + DAY * 0.5
        while remaining > 0:
            size = min(remaining, rng.randint(200, 600))
            cell = RingSpec("cells", max(size, 30))
            previous_cards = self.ring(cell, ring_id, t0 + rng.uniform(0, 4 * DAY), 8 * 3600, previous_cards)
            remaining -= cell.size


def generate(config: SimConfig) -> tuple[Iterator[dict[str, Any]], dict[str, tuple[str, str]]]:
    """All events in delivery order, and the label of every account."""
    traffic = _Traffic(config)
    traffic.benign()
    traffic.rings()
    rows = traffic.rows
    rows.sort()
    return _deliver(rows, config), traffic.labels


def _deliver(rows: list[tuple[Any, ...]], config: SimConfig) -> Iterator[dict[str, Any]]:
    rng = random.Random(config.seed + 1)
    if config.late_rate > 0:
        # Delivery order: some events are delivered up to max_late_seconds after their event time.
        keyed = [(row[0] + (rng.uniform(0, config.max_late_seconds) if rng.random() < config.late_rate else 0.0), row)
                 for row in rows]
        keyed.sort(key=lambda k: (k[0], k[1][1]))
        rows = [row for _, row in keyed]
    for row in rows:
        event = to_event(row)
        yield event
        if config.duplicate_rate and rng.random() < config.duplicate_rate:
            yield event


def to_event(row: tuple[Any, ...]) -> dict[str, Any]:
    ts, seq, kind, account, device, ip, payment, domain, asn, usage = row
    event = {
        "event_id": f"ev{seq:09d}",
        "type": kind,
        "account_id": account,
        "ts": datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "device_id": device,
        "ip": ip,
        "payment_id": payment,
    }
    if domain:
        event["email_domain"] = domain
    if asn:
        event["asn"] = asn
    if usage:
        event["requests"], event["tokens_in"], event["tokens_out"], event["model"], event["prompt_fingerprint"] = usage
    return event


def write_events(path: Path, events: Iterable[dict[str, Any]]) -> int:
    """JSON Lines (``.gz`` compresses); returns the count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with (gzip.open if path.name.endswith(".gz") else open)(path, "wb") as handle:
        for event in events:
            handle.write(orjson.dumps(event) + b"\n")
            count += 1
    return count


def produce_events(events: Iterable[dict[str, Any]], bootstrap: str, topic: str) -> int:
    """To Kafka, keyed by account; returns the count."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024, acks="all")
    count = 0
    for event in events:
        producer.send(topic, key=event["account_id"].encode(), value=orjson.dumps(event))
        count += 1
    producer.flush()
    producer.close()
    return count


def write_labels(path: Path, labels: dict[str, tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["account_id", "ring_id", "kind"])
        for account, (ring, kind) in sorted(labels.items()):
            writer.writerow([account, ring, kind])
