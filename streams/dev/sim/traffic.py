"""The simulator's state and helpers, and the benign population.

Benign sharing: households (home IP, sometimes a tablet or a family card) — a fifth of whose home
lines are also exits of a residential proxy network —, mobile-carrier NAT IPs shared by hundreds,
public wifi, VPN exit pools, library / internet-café computers, companies whose staff share office
IPs, a corporate card (or one per team) and cloud API IPs — some onboarding hundreds of accounts
within an hour, some staff logging in from a home line that is a proxy exit — small offices and
cafés, developers calling the API from their own cloud server, and popular framework prompt
templates used by thousands.
"""

from __future__ import annotations

import random
from typing import Any

from streams.dev.sim.spec import CLOUD_ASNS, DAY, FREEMAIL, MOBILE_ASNS, RESIDENTIAL_ASNS, START, SimConfig, Usage


class Ids:
    """Short readable deterministic ids."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.counts: dict[str, int] = {}

    def __call__(self, prefix: str) -> str:
        n = self.counts.get(prefix, 0) + 1
        self.counts[prefix] = n
        return f"{prefix}{n:06d}{self.rng.randrange(16**4):04x}"


class Traffic:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.ids = Ids(self.rng)
        self.end = START + config.days * DAY
        self.rows: list[tuple[Any, ...]] = []  # (ts, seq, type, account, device, ip, payment, domain, asn, usage)
        self.labels: dict[str, tuple[str, str]] = {}  # account -> (ring_id, kind)
        self.usage_rng = random.Random(config.seed + 2)
        self.extra_rng = random.Random(config.seed + 3)  # the cases added later draw here: the rest stays as it was
        self.stops_at: dict[str, float] = {}  # account -> event time after which it emits nothing
        self.exits: list[str] = []  # residential proxy exits (benign home lines)
        self.hubs: list[str] = []  # benign NAT / wifi IPs camouflage logins borrow (set by sim.rings)
        self._ip_n = 0

    # -- helpers ----------------------------------------------------------------------------
    def ip(self, block: int) -> str:
        self._ip_n += 1
        n = self._ip_n
        return f"{block}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"

    def emit(self, ts: float, kind: str, account: str, device: str | None, ip: str | None,
             payment: str | None = None, domain: str | None = None, asn: str | None = None,
             usage: Usage | None = None) -> None:
        if START <= ts < self.end and ts <= self.stops_at.get(account, ts):
            if kind == "api_usage" and usage is None:
                usage = self.benign_usage()
            self.rows.append((ts, len(self.rows), kind, account, device, ip, payment, domain, asn, usage))

    # API usage: its own random stream, so adding it left the rest of the traffic as it was.
    def benign_usage(self, scale: int = 1, template: str | None = None) -> Usage:
        """(requests, tokens_in, tokens_out, model, prompt fingerprint) of an ordinary user's minute:
        a few exchanges, short answers, mostly popular framework templates."""
        r = self.usage_rng
        requests = max(1, int(r.lognormvariate(0.7, 0.8))) * scale
        if template is None:
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
            if self.extra_rng.random() < 0.2:
                self.exits.append(home_ip)  # this home line is also an exit of a residential proxy network
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
                # working from home, on a line that is also a proxy exit
                home = self.extra_rng.choice(self.exits) if self.exits and self.extra_rng.random() < 0.1 else None
                for _ in range(rng.randint(2, 6)):
                    u = self.when(lo=t)
                    self.emit(u, "login", account, device, rng.choice(offices), asn="AS3356")
                    self.emit(u + 10, "api_usage", account, None, rng.choice(cloud), asn="AS16509")
                    if home:
                        self.emit(u + 7200, "login", account, device, home, asn=self.extra_rng.choice(RESIDENTIAL_ASNS))

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
