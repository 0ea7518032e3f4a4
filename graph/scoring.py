"""Per-cluster features, score, severity and the evidence that travels with an alert.

The score is the larger of two signals, each in [0, 1]:

* **mesh** — set aside the group's largest shared device/card together with its near-copies (an
  entity whose accounts are mostly the hub's: a renewed corporate card); what share of the members
  is still one connected piece through the remaining shared devices and cards? A benign crowd
  hangs off one hub (a company card, a library PC) or falls into disjoint stars (one card per
  team, one PC per café seat) and scores near 0; a farm whose accounts hop between phones, or a
  card pool whose accounts rotate cards, stays connected and scores near 1.
* **farm** — share of members with no identity of their own (every device and card they use is
  shared) times the share calling the API from datacenter ASNs: a device farm with one phone per
  account, glued together only by its API servers.

Small adjustments: bursty signups add 0.1 at most; one shared non-freemail email domain (an
organisation) subtracts 0.2 at most. Thresholds are in :class:`graph.config.DetectionConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

from graph.binding import BindingState
from graph.config import DetectionConfig
from graph.events import DEVICE, IP, PAYMENT, kind_of, split_entity_key

SEVERITY_RANK = {None: 0, "low": 1, "medium": 2, "high": 3}
EVIDENCE_LIMIT = 50  # binding entities kept with an alert, largest first


@dataclass(frozen=True, slots=True)
class Evidence:
    entity_type: str
    entity_value: str
    members_sharing: int
    first_seen: float  # oldest live link of a member to it
    last_seen: float


@dataclass(frozen=True, slots=True)
class ClusterScore:
    score: float
    severity: str | None
    features: dict[str, float]
    evidence: tuple[Evidence, ...]
    detected_at: float  # event time of the newest event among the members' links
    requests: int = 0  # API exchanges of the members within the window (the damage)
    tokens_out: int = 0  # output tokens of those exchanges


def _burst_share(signups: list[float], span: float = 3600.0) -> float:
    """Largest share of the signups that fall within any ``span`` seconds."""
    if len(signups) < 10:
        return 0.0
    signups.sort()
    best = lo = 0
    for hi, ts in enumerate(signups):
        while ts - signups[lo] > span:
            lo += 1
        best = max(best, hi - lo + 1)
    return best / len(signups)


def _hub_group(strong: list[str], shared: dict[str, list[str]], config: DetectionConfig) -> set[str]:
    """The largest shared device/card and the entities that nearly duplicate it."""
    if not strong:
        return set()
    hub = set(shared[strong[0]])
    group = {strong[0]}
    for entity in strong[1:]:
        accounts = shared[entity]
        if len(accounts) < config.hub_copy_overlap * len(hub):
            break  # sorted by size: the rest are smaller still
        if sum(1 for a in accounts if a in hub) >= config.hub_copy_overlap * len(accounts):
            group.add(entity)
    return group


def _largest_piece(groups: list[list[str]]) -> int:
    """Accounts in the largest piece connected through the given shared-entity groups, counting
    only pieces held together by at least two entities: one card's star is not a mesh."""
    parent: dict[str, str] = {}
    entities: dict[str, int] = {}  # root -> entities merged into it

    def find(x: str) -> str:
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for accounts in groups:
        first = find(accounts[0])
        count = entities.pop(first, 0) + 1
        for other in accounts[1:]:
            root = find(other)
            if root != first:
                parent[root] = first
                count += entities.pop(root, 0)
        entities[first] = count
    sizes: dict[str, int] = {}
    for account in parent:
        root = find(account)
        sizes[root] = sizes.get(root, 0) + 1
    return max((n for root, n in sizes.items() if entities.get(root, 0) >= 2), default=0)


def score_cluster(members: frozenset[str], binding: BindingState, config: DetectionConfig,
                  now: float) -> ClusterScore:
    window = binding.window
    bound = binding.binding
    size = len(members)
    shared: dict[str, list[str]] = {}  # binding entity -> members using it
    ips_per_member = 0
    newest = float("-inf")
    for account in members:
        for entity in window.links_of.get(account, ()):
            if kind_of(entity) == IP:
                ips_per_member += 1
            if entity in bound:
                shared.setdefault(entity, []).append(account)
    shared = {e: accts for e, accts in shared.items() if len(accts) >= 2}

    hubs = sorted(shared, key=lambda e: (-len(shared[e]), e))
    strong = [e for e in hubs if kind_of(e) != IP]
    with_device = {a for e in strong if kind_of(e) == DEVICE for a in shared[e]}
    with_payment = {a for e in strong if kind_of(e) != DEVICE for a in shared[e]}
    hub = _hub_group(strong, shared, config)
    mesh = _largest_piece([shared[e] for e in strong if e not in hub]) / size
    no_own_identity = sum(1 for a in with_device | with_payment
                          if not binding.has_private(a, DEVICE) and not binding.has_private(a, PAYMENT)) / size
    strong_entities = len(strong)

    infos = [window.info.get(a) for a in members]
    horizon = now - config.window_seconds
    signups = [i.signup_ts for i in infos if i is not None and i.signup_ts is not None and i.signup_ts > horizon]
    datacenter = sum(1 for i in infos if i is not None and i.datacenter_ts is not None and i.datacenter_ts > horizon)
    domains: dict[str, int] = {}
    for info in infos:
        if info is not None and info.email_domain and info.email_domain not in config.freemail_domains:
            domains[info.email_domain] = domains.get(info.email_domain, 0) + 1
    requests = tokens_out = 0
    for info in infos:
        if info is None:
            continue
        if info.last_ts > newest:
            newest = info.last_ts
        if info.usage:
            r, t = info.usage_since(horizon)
            requests += r
            tokens_out += t

    burst = _burst_share(signups)
    datacenter_share = datacenter / size
    org_domain_share = max(domains.values(), default=0) / size
    farm = no_own_identity * datacenter_share
    score = max(mesh, farm) + 0.1 * burst - 0.2 * org_domain_share
    score = round(min(1.0, max(0.0, score)), 4)
    features = {
        "size": float(size),
        "mesh": round(mesh, 4),
        "farm": round(farm, 4),
        "no_own_identity": round(no_own_identity, 4),
        "binding_strong_entities": float(strong_entities),
        "binding_ips": float(len(shared) - strong_entities),
        "top_entity_share": round(len(shared[hubs[0]]) / size, 4) if hubs else 0.0,
        "device_reuse": round(len(with_device) / size, 4),
        "payment_sharing": round(len(with_payment) / size, 4),
        "signup_burst": round(burst, 4),
        "signups_in_window": float(len(signups)),
        "ips_per_member": round(ips_per_member / size, 3),
        "datacenter_share": round(datacenter_share, 4),
        "org_domain_share": round(org_domain_share, 4),
    }
    evidence = []
    # Devices and cards first: they are what binds; shared IPs only corroborate.
    for entity in (strong + [e for e in hubs if kind_of(e) == IP])[:EVIDENCE_LIMIT]:
        kind, value = split_entity_key(entity)
        seen = [window.members[entity][a] for a in shared[entity]]
        evidence.append(Evidence(kind, value, len(shared[entity]), min(seen), max(seen)))
    return ClusterScore(score, severity_of(size, score, strong_entities, config), features,
                        tuple(evidence), newest, requests, tokens_out)


def severity_of(size: int, score: float, strong_entities: int, config: DetectionConfig) -> str | None:
    """Severity from size, score and how many devices/cards bind the cluster.

    >>> severity_of(150, 0.9, 12, DetectionConfig())
    'high'
    >>> severity_of(150, 0.1, 1, DetectionConfig()) is None
    True
    """
    if size >= config.high_min_size and score >= config.high_min_score \
            and strong_entities >= config.high_min_strong_entities:
        return "high"
    if size >= config.medium_min_size and score >= config.medium_min_score:
        return "medium"
    if size >= config.low_min_size and score >= config.medium_min_score / 2:
        return "low"
    return None


