"""Hypothesis strategies that build the cases the detector exists for — device farms, card pools,
crowds on one hub, households, farms glued by their own API servers, lockstep rings on one prompt
template, groups on a set of templates nobody else uses (with strangers writing their own prompts on
them), operations rotating through a shared proxy pool — from shared pools of ids, so groups grow,
merge through shared entities, share commodity infrastructure, and split when links expire."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from graph.events import AccountEvent

ACCOUNT_POOL = 400  # accounts are drawn from a pool: cases overlap and merge
DEVICE_POOL = 60
CARD_POOL = 40
IP_POOL = 30
PROXY_POOL = 40  # residential exits shared by every "proxy" case (and the households behind them)
TEMPLATE_POOL = 6


@dataclass(frozen=True)
class Case:
    kind: str  # farm | card_pool | crowd | household | ip_group | api_servers | lockstep | templates | proxy
    first: int  # first account index (cases take consecutive accounts from the pool)
    size: int
    hubs: int  # devices / cards / IPs the case shares
    hub_base: int  # where its shared entities start in their pool
    hub_kind: str  # device | card | ip (crowds)


cases = st.builds(
    Case,
    kind=st.sampled_from(["farm", "farm", "card_pool", "crowd", "household", "ip_group", "api_servers",
                          "api_servers", "api_servers", "lockstep", "lockstep", "lockstep", "templates", "proxy"]),
    first=st.integers(0, ACCOUNT_POOL - 1),
    size=st.integers(3, 60),
    hubs=st.integers(1, 6),
    hub_base=st.integers(0, 40),
    hub_kind=st.sampled_from(["device", "card", "ip"]),
)


class EventFactory:
    """Deterministic event ids and account/entity names."""

    def __init__(self) -> None:
        self.n = 0

    def event(self, account: int, ts: float, *, device: str | None = None, payment: str | None = None,
              ip: str | None = None, kind: str = "login", template: str | None = None) -> AccountEvent:
        self.n += 1
        return AccountEvent(event_id=f"e{self.n:06d}", type=kind, account_id=f"a{account % ACCOUNT_POOL:03d}", ts=ts,
                            device_id=device, payment_id=payment, ip=ip, prompt_fingerprint=template,
                            requests=50 if template else None, tokens_out=90_000 if template else None)

    def ordinary_use(self, account: int, ts: float) -> AccountEvent:
        self.n += 1
        return AccountEvent(event_id=f"e{self.n:06d}", type="api_usage", account_id=f"a{account % ACCOUNT_POOL:03d}",
                            ts=ts, ip=f"98.{account % 250}.0.1", requests=2, tokens_out=400,
                            prompt_fingerprint=f"own-{account}")

    def case(self, case: Case, t: float, step: float) -> list[AccountEvent]:
        """The events of one case starting at ``t``, one account every ``step`` seconds."""
        out = []
        for i in range(case.size):
            a, ts = case.first + i, t + i * step
            hub = (case.hub_base + i % case.hubs)
            nxt = (case.hub_base + (i + 1) % case.hubs)
            if case.kind == "farm":  # accounts hop between neighbouring farm phones; no phone of their own
                out.append(self.event(a, ts, device=f"fd{hub % DEVICE_POOL}", kind="signup"))
                out.append(self.event(a, ts + 0.5, device=f"fd{nxt % DEVICE_POOL}", ip=f"10.9.{hub % IP_POOL}.1"))
            elif case.kind == "card_pool":  # fresh device each, rotating pool cards; every other account
                # on a new fingerprint every session (rotation: none of them is a device of its own)
                out.append(self.event(a, ts, device=f"own{a}", payment=f"pp{hub % CARD_POOL}", kind="signup"))
                out.append(self.event(a, ts + 0.5, device=f"own{a}", payment=f"pp{nxt % CARD_POOL}"))
                if i % 2:
                    out += [self.event(a, ts + 0.6 + k * 0.01, device=f"fp{a}-{case.hub_base}-{k}") for k in range(5)]
            elif case.kind == "crowd":  # own phone each, one shared hub
                hub_kw = {"device": {"device": f"kiosk{case.hub_base}"}, "card": {"payment": f"corp{case.hub_base}"},
                          "ip": {"ip": f"100.64.0.{case.hub_base}"}}[case.hub_kind]
                out.append(self.event(a, ts, device=f"own{a}", ip=f"98.{a}.0.1"))
                out.append(self.event(a, ts + 0.5, **hub_kw))
                out.append(self.ordinary_use(a, ts + 0.7))  # ordinary API volume: what extraction is measured against
            elif case.kind == "household":  # a tablet and a card for 2-5 people, on a home line that is a proxy exit
                out.append(self.event(a, ts, device=f"tab{case.hub_base}", payment=f"fam{case.hub_base}",
                                      ip=f"77.1.{case.hub_base % PROXY_POOL}.1"))
            elif case.kind == "ip_group":  # farm accounts that also share API IPs
                out.append(self.event(a, ts, device=f"fd{hub % DEVICE_POOL}", ip=f"45.0.{hub % IP_POOL}.1", kind="signup"))
                out.append(self.event(a, ts + 0.5, ip=f"45.0.{nxt % IP_POOL}.1", kind="api_usage"))
            elif case.kind == "api_servers":  # farm stars (one phone each) glued by the operation's own servers
                star = f"st{case.hub_base}-{i % max(1, min(case.hubs, case.size // 6))}"  # stars of >= 6 accounts
                out.append(self.event(a, ts, device=star, kind="signup"))
                for k in range(3):
                    out.append(self.event(a, ts + 0.5 + k, ip=f"45.{case.hub_base}.0.{k}", kind="api_usage",
                                          template=f"tpl-own{case.hub_base}"))
            elif case.kind == "lockstep":  # fresh device and card each; one template, the same minutes
                out.append(self.event(a, ts, device=f"fresh{a}-{case.hub_base}", payment=f"vc{a}-{case.hub_base}",
                                      kind="signup"))
                out.append(self.ordinary_use(a + 200, ts + 1))  # someone else's ordinary volume beside the ring
                minute0 = (t // 60 + 1) * 60
                for k in range(6):  # two sessions of three calls, two minutes apart, twenty minutes between
                    at = minute0 + 1200 * (k // 3) + 120 * (k % 3) + (i % 40)
                    out.append(self.event(a, at, ip=f"45.77.{case.hub_base % 4}.1",
                                          kind="api_usage", template=f"tpl{case.hub_base % TEMPLATE_POOL}"))
            elif case.kind == "templates":  # own phone and card each; two of the group's templates (every
                # third account one); every fifth also writes a prompt of its own (shares move around the bars)
                out.append(self.event(a, ts, device=f"own{a}", payment=f"oc{a}", kind="signup"))
                for k in ((0, 1) if i % 3 else (0,)):
                    out.append(self.event(a, ts + 0.5 + k, ip=f"98.{a % 250}.1.1", kind="api_usage",
                                          template=f"set{case.hub_base % TEMPLATE_POOL}-{(i + k) % (case.hubs + 1)}"))
                if i % 5 == 4:
                    out.append(self.ordinary_use(a, ts + 3))
            else:  # proxy: a card pool rotating through the shared residential exits
                out.append(self.event(a, ts, device=f"own{a}", payment=f"px{hub % CARD_POOL}", kind="signup"))
                out.append(self.event(a, ts + 0.5, payment=f"px{nxt % CARD_POOL}",
                                      ip=f"77.1.{(a * 7 + case.hub_base) % PROXY_POOL}.1"))
                out.append(self.event(a, ts + 0.7, ip=f"77.1.{(a * 13 + case.hub_base) % PROXY_POOL}.1"))
        return out
