"""Benign groups that look like rings (what the precision of issue 7 is about):

* a **reseller platform** — hundreds of customer accounts created by automation in a burst, from its
  provisioning server, paid by one card, calling the API from a few cloud IPs;
* a **CI fleet** — long-standing service accounts of one company on shared build containers, one
  corporate card, cloud egress, jobs on a cron schedule with the same test prompt (lockstep);
* a **university class** — students signing up within one hour on campus wifi, some on shared lab
  machines, doing the same exercise (a tutorial's template) in the same minutes of a session.
"""

from __future__ import annotations

from streams.dev.sim.spec import DAY, FREEMAIL, RESIDENTIAL_ASNS, START
from streams.dev.sim.traffic import Traffic


def plant(tr: Traffic) -> None:
    n = tr.config.benign_accounts
    for c in range(max(1, n // 30000)):
        reseller(tr, c)
    for c in range(max(1, n // 25000)):
        ci_fleet(tr, c)
    for c in range(max(1, n // 15000)):
        university_class(tr, c)


def reseller(tr: Traffic, c: int) -> None:
    x = tr.extra_rng
    card, server = tr.ids("rcard"), tr.ids("prov")
    cloud = [tr.ip(54) for _ in range(3)]
    domain = f"reseller{c}.io"
    t0 = tr.when(hi=tr.end - DAY)
    for _ in range(x.randint(150, 500)):
        account = tr.ids("cust")
        tr.labels[account] = ("", "benign_reseller")
        t = t0 + x.uniform(0, 2 * 3600)
        tr.emit(t, "signup", account, server, cloud[0], None, domain, "AS16509")
        tr.emit(t + 5, "payment_method_added", account, server, cloud[0], card, domain, "AS16509")
        template = f"tpl-cust-{account}" if x.random() < 0.5 else None
        for _ in range(x.randint(5, 30)):
            tr.emit(tr.when(lo=t), "api_usage", account, None, x.choice(cloud), asn="AS16509",
                    usage=tr.benign_usage(scale=x.randint(1, 5), template=template))


def ci_fleet(tr: Traffic, c: int) -> None:
    x = tr.extra_rng
    size = x.randint(30, 150)
    card = tr.ids("cicard")
    containers = [tr.ids("ctr") for _ in range(max(3, size // 5))]
    egress = [tr.ip(54) for _ in range(2)]
    domain = f"ci{c}-corp.com"
    template = f"tpl-ci-{c}"
    minute = x.randint(0, 50)
    accounts = []
    for _ in range(size):
        account = tr.ids("svc")
        accounts.append(account)
        tr.labels[account] = ("", "benign_ci")
        # long-standing: no signup in the window; the card was updated this week
        tr.emit(tr.when(), "payment_method_added", account, x.choice(containers), egress[0], card, domain, "AS16509")
    hour = (START // 3600 + 1) * 3600
    while hour < tr.end:
        for account in accounts:
            if x.random() < 0.9:
                at = hour + minute * 60 + x.uniform(0, 40)
                tr.emit(at, "login", account, x.choice(containers), x.choice(egress), asn="AS16509")
                tr.emit(at + 2, "api_usage", account, None, x.choice(egress), asn="AS16509",
                        usage=tr.benign_usage(scale=x.randint(2, 6), template=template))
        hour += 3 * 3600


def university_class(tr: Traffic, c: int) -> None:
    x = tr.extra_rng
    size = x.randint(60, 150)
    campus = [tr.ip(130) for _ in range(x.randint(1, 2))]
    labs = [tr.ids("lab") for _ in range(max(2, size // 8))]
    domain = f"uni{c}.edu"
    template = f"tpl-class-{c}"
    t0 = ((tr.when(hi=tr.end - 5 * DAY if tr.end - START > 6 * DAY else tr.end - DAY)) // 60) * 60
    sessions = [t0 + k * 2 * DAY for k in range(3) if t0 + k * 2 * DAY < tr.end]
    for _ in range(size):
        account = tr.ids("stu")
        tr.labels[account] = ("", "benign_class")
        phone = tr.ids("ph")
        home = tr.ip(98)
        tr.emit(t0 + x.uniform(0, 3600), "signup", account, phone, x.choice(campus), None, domain, "AS2200")
        lab = x.choice(labs) if x.random() < 0.3 else None
        for start in sessions:
            for step in range(x.randint(8, 16)):
                if x.random() < 0.7:
                    at = start + step * 300 + x.uniform(0, 45)
                    if lab and step == 0:
                        tr.emit(at - 30, "login", account, lab, x.choice(campus), asn="AS2200")
                    tr.emit(at, "api_usage", account, None, x.choice(campus), asn="AS2200",
                            usage=tr.benign_usage(template=template))
        for _ in range(x.randint(1, 4)):
            tr.emit(tr.when(lo=t0), "login", account, phone, home, asn=x.choice(RESIDENTIAL_ASNS))
        if x.random() < 0.3:
            tr.emit(tr.when(lo=t0), "payment_method_added", account, phone, home, tr.ids("card"), x.choice(FREEMAIL),
                    x.choice(RESIDENTIAL_ASNS))
