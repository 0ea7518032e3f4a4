"""How suspicious a cluster is: the policy over the features the kernel measures.

Structure (each in [0, 1]; the score starts from the largest):

* **mesh** — set aside the cluster's largest shared device/card and its near-copies (a renewed
  corporate card); what share of the members is still one piece through the remaining shared
  devices and cards? A crowd hangs off one hub or falls into disjoint stars (one card per team): ~0.
  A farm whose accounts hop between phones, or a card pool whose accounts rotate cards: ~1.
* **farm** — share of members with no identity of their own (every device and card they use is
  shared) bound through a shared entity other than the hub, times the share calling the API from
  datacenter ASNs: a device farm glued by its own API servers. A reseller's customers on its one
  card are a hub, not a farm.
* **lockstep** — share of members in a lockstep cohort (synchronous use of one template), times
  *extraction*: how far the median member's output tokens exceed the population's median, on a log
  scale (nothing up to ``extraction_floor`` times, fully from ``extraction_full`` times). A class doing
  an exercise together is in lockstep but draws what any user draws; a distillation ring draws orders
  of magnitude more.
* **prefarm** — the farm before it spends: share of members with no identity of their own bound
  through shared devices or cards other than the hub, whatever their volume, capped at
  ``prefarm_max`` (medium): a farm is a farm before it calls the API; its spending (farm, lockstep,
  owned) raises it. Being the weakest evidence it yields fully to one organisation's mail domain (a
  company's QA lab) and as much as the others to one payer (a reseller provisioning customers from its
  servers) and to established accounts (a CI fleet on shared containers).
* **owned** — share of members on templates the group owns (used by at least ten accounts, most of
  whom write no prompt of their own: graph/kernel/src/owned.rs), times extraction: an operation runs
  its own prompts at volume; a class's exercise or a company's internal tool is owned too, at
  ordinary volume. Times (1 - ``owned_established_discount`` x the share of long-standing members):
  an operation's accounts are made for it; a team that has used the API for months and now runs its
  own evaluations at volume is a customer. And times how far something besides the templates ties
  the members (``owned_uncorroborated`` when nothing does, fully when all share a card or device pool,
  a lockstep cohort, IPs used by them and little else, or call from hosting providers' networks):
  content alone is a group — a course's students running its notebooks from home, an app's users —
  not yet an operation, and stays a low lead.

Benign explanations discount the structure: one organisation's mail domain (``org_discount`` for a
group that extracts, up to ``org_idle_discount`` for one at ordinary volume: a company's QA lab on its
test phones is the company's), and
one card paying for (nearly) all of its long-standing accounts (``payer_discount``; a share of 0.5 of
members on the top card counts nothing, 0.9 counts fully) — a company's CI fleet or a business with
sub-accounts. A card pool spreads its accounts over many cards and is not discounted. And accounts that
all existed before the window (no signup in it) drawing ordinary volume (``established_discount``): a
company's build fleet on shared containers looks like a device farm, but a farm's accounts are new and
extract. Bursty signups add 0.1 at most. Severity needs size, score and enough distinct
evidence (:func:`severity_of`).
"""

from __future__ import annotations

import math

import orjson
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

from graph.config import DetectionConfig
from graph.vocab import Severity, cluster_id

if TYPE_CHECKING:
    from graph._kernel import Measured


class Evidence(NamedTuple):
    entity_type: str
    entity_value: str
    members_sharing: int
    first_seen: float  # when the first member linked to it (event time)
    last_seen: float  # when the last member did


class SharedInfrastructure(NamedTuple):
    """Weak entities (IPs, templates) a cluster shares with another cluster without being joined to it."""

    other_cluster_id: str
    entity_type: str
    shared_entities: int
    accounts_here: int
    accounts_there: int


@dataclass(frozen=True, slots=True)
class ClusterScore:
    score: float
    severity: str | None
    features: dict[str, float]
    evidence: tuple[Evidence, ...]
    detected_at: float  # event time of the newest link among the members
    requests: int = 0  # API exchanges of the members within the window (the damage)
    tokens_out: int = 0  # output tokens of those exchanges
    shared: tuple[SharedInfrastructure, ...] = ()
    evidence_json: str = "[]"  # the evidence as the audit store keeps it (made once per score)
    summary: str = ""  # one sentence: why these accounts are one operation (:func:`explain`)


class FeatureSource(Protocol):
    """The kernel graph's read side (``graph._kernel.Graph``)."""

    def features(self, cluster: int, /) -> Measured | None: ...


def extraction(intensity: float, floor: float, full: float) -> float:
    """Log-scaled excess of a cluster's volume over the population's: 0 up to ``floor`` times, 1 from
    ``full`` times.

    >>> extraction(100.0, 3.0, 100.0), extraction(2.0, 3.0, 100.0), round(extraction(10.0, 1.0, 100.0), 2)
    (1.0, 0.0, 0.5)
    """
    if intensity <= floor:
        return 0.0
    return min(1.0, math.log(intensity / floor) / math.log(full / floor))


def combine(f: dict[str, float], config: DetectionConfig) -> dict[str, float]:
    """The score's parts from the kernel's features."""
    mesh = f["mesh"]
    farm = f["no_own_identity_off_hub"] * f["datacenter_share"]
    extracting = extraction(f["intensity"], config.extraction_floor, config.extraction_full)
    lockstep = f["lockstep_share"] * extracting
    established = 1.0 - f["fresh_share"]
    # what ties the members besides the templates: a means of production (shared cards or devices, a
    # scheduler, their own servers or exits, calling from hosting providers' networks); a course's
    # students at home share the course and nothing else
    corroborated = max(f["payment_sharing"], f["device_reuse"], f["lockstep_share"], f.get("owned_ip_share", 0.0),
                       f["datacenter_share"])
    owned = f["owned_template_share"] * extracting * (1.0 - config.owned_established_discount * established) \
        * (config.owned_uncorroborated + (1.0 - config.owned_uncorroborated) * corroborated)
    one_payer = min(1.0, max(0.0, (f["single_payer_share"] - 0.5) / 0.4))  # one card for (nearly) everyone
    org = config.org_discount + (config.org_idle_discount - config.org_discount) * (1.0 - extracting)
    customary = 1.0 - config.established_discount * established * (1.0 - extracting)  # old accounts, usual volume
    keep = (1.0 - org * f["org_domain_share"]) * (1.0 - config.payer_discount * one_payer * established) * customary
    burst = 0.1 * f["signup_burst"]
    # Structure alone (before any spending) reaches medium at most, and yields fully to one organisation
    # (a company's QA lab of test accounts on its test phones) and to one payer (a reseller's customers
    # provisioned from its servers): the weakest evidence, the strongest benign explanations.
    prefarm = f["no_own_identity_off_hub"] * (1.0 - f["org_domain_share"]) * (1.0 - config.payer_discount * one_payer) \
        * customary
    score = max(max(mesh, farm, lockstep, owned) * keep + burst, min(config.prefarm_max, prefarm + burst))
    return {"farm": round(farm, 4), "lockstep": round(lockstep, 4), "owned": round(owned, 4), "prefarm": round(prefarm, 4),
            "extraction": round(extracting, 4),
            "benign_keep": round(keep, 4), "score": round(min(1.0, max(0.0, score)), 4)}


def _count(n: float, one: str, many: str) -> str:
    return f"{int(n):,} {one if int(n) == 1 else many}"


def explain(f: dict[str, float]) -> str:
    """Why these accounts are one operation, in one sentence, from the features.

    >>> explain({"size": 600, "owned_templates": 20, "binding_devices": 0, "binding_cards": 24,
    ...          "lockstep_cohorts": 0, "owned_weak_entities": 3, "weak_attached_share": 0.0})
    '600 accounts: the only users of 20 prompt templates; 24 shared cards bind them; 3 IPs or templates used by little else.'
    >>> explain({"size": 12, "owned_templates": 0, "binding_devices": 1, "binding_cards": 0,
    ...          "lockstep_cohorts": 1, "owned_weak_entities": 0, "weak_attached_share": 0.25})
    '12 accounts: 1 shared device binds them; 1 lockstep cohort (one template, the same minutes); 25% of them joined through shared IPs or templates.'
    """
    parts = []
    if f.get("owned_templates", 0):
        parts.append("the only users of " + _count(f["owned_templates"], "prompt template", "prompt templates"))
    shared = [_count(f[k], one, many) for k, one, many in (("binding_devices", "shared device", "shared devices"),
                                                          ("binding_cards", "shared card", "shared cards")) if f.get(k, 0)]
    if shared:
        parts.append(" and ".join(shared) + (" bind them" if sum(f.get(k, 0) for k in ("binding_devices", "binding_cards")) > 1
                                             else " binds them"))
    if f.get("lockstep_cohorts", 0):
        parts.append(_count(f["lockstep_cohorts"], "lockstep cohort", "lockstep cohorts") + " (one template, the same minutes)")
    if f.get("owned_weak_entities", 0):
        parts.append(_count(f["owned_weak_entities"], "IP or template", "IPs or templates") + " used by little else")
    attached = f.get("weak_attached_share", 0.0)
    if attached >= 0.05:
        parts.append(f"{attached:.0%} of them joined through shared IPs or templates")
    return f"{int(f['size']):,} accounts: " + ("; ".join(parts) if parts else "linked accounts") + "."


def evidence_entities(f: dict[str, float]) -> int:
    return int(f["binding_strong_entities"] + f["lockstep_cohorts"] + f["owned_templates"] + f["owned_weak_entities"])


def severity_of(size: int, score: float, evidence: int, config: DetectionConfig) -> str | None:
    """Severity from size, score and how many distinct entities of evidence hold the cluster.

    >>> str(severity_of(150, 0.9, 12, DetectionConfig()))
    'high'
    >>> severity_of(150, 0.1, 1, DetectionConfig()) is None
    True
    """
    if size >= config.high_min_size and score >= config.high_min_score and evidence >= config.high_min_evidence:
        return Severity.HIGH
    if size >= config.medium_min_size and score >= config.medium_min_score:
        return Severity.MEDIUM
    if size >= config.low_min_size and score >= config.medium_min_score / 2:
        return Severity.LOW
    return None


def score_cluster(graph: FeatureSource, number: int, config: DetectionConfig) -> ClusterScore | None:
    measured = graph.features(number)
    if measured is None:
        return None
    values, evidence, shared = measured.values, measured.evidence, measured.shared  # values come rounded to 4 places
    requests, tokens_out, newest = measured.requests, measured.tokens_out, measured.newest
    features = dict(values)
    parts = combine(values, config)
    features.update({k: v for k, v in parts.items() if k != "score"})
    score = parts["score"]
    size = int(values["size"])
    found = tuple(map(Evidence._make, evidence))
    return ClusterScore(
        score, severity_of(size, score, evidence_entities(values), config), features, found, float(newest), requests,
        tokens_out,
        tuple(SharedInfrastructure(cluster_id(other), kind, n, here, there) for other, kind, n, here, there in shared),
        orjson.dumps([e._asdict() for e in found]).decode(), explain(values))
