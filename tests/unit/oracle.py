"""An independent oracle for the engine's clusters: the window is recomputed from the events, the
rules of graph/DETECTION.md are re-stated here, and groups are ``networkx.connected_components``
— of the member–binding-entity graph (cores), then of the core graph under weak edges (operations).
Nothing here calls the code under test. The one derived input it takes from the engine is the
lockstep cohort links (which minutes were synchronous depends on the stream's history; the cohort
rule itself is tested on hand-built streams in tests/unit/test_detection_v2.py); owned template
groups are re-derived here from the template links."""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import combinations

import networkx as nx

from graph.config import DetectionConfig
from graph.events import AccountEvent


def live_links(events: list[AccountEvent], horizon: float) -> dict[str, dict[str, float]]:
    """entity key -> {account: last seen} for links last seen after ``horizon`` (exclusive)."""
    last: dict[tuple[str, str], float] = {}
    for e in events:
        for key in e.entity_keys():
            pair = (key, e.account_id)
            if e.ts > last.get(pair, float("-inf")):
                last[pair] = e.ts
    members: dict[str, dict[str, float]] = defaultdict(dict)
    for (key, account), ts in last.items():
        if ts > horizon:
            members[key][account] = ts
    return dict(members)


def as_pairs(links: dict[str, dict[str, float]]) -> list[tuple[str, str]]:
    return sorted((account, entity) for entity, accounts in links.items() for account in accounts)


def owned_groups(members: dict[str, set[str]], config: DetectionConfig) -> dict[str, set[str]]:
    """Owned templates (graph/DETECTION.md): used by >= group_min_accounts accounts, at most
    template_max_degree, of whom >= group_captive_min use no template of their own and >= group_set_min
    also use >= 2 shared ones."""
    templates_of: dict[str, list[str]] = defaultdict(list)
    for entity, accounts in members.items():
        if entity[0] == "t":
            for account in accounts:
                templates_of[account].append(entity)

    def shared(account: str) -> int:  # templates shared with others; 0 with one of its own
        sizes = [len(members[t]) for t in templates_of[account]]
        return len(sizes) if min(sizes) >= 2 else 0

    out = {}
    for entity, accounts in members.items():
        if entity[0] == "t" and max(2, config.group_min_accounts) <= len(accounts) <= config.template_max_degree:
            captive = sum(shared(a) >= 1 for a in accounts)
            on_set = sum(shared(a) >= 2 for a in accounts)
            if captive >= config.group_captive_min * len(accounts) and on_set >= config.group_set_min * len(accounts):
                out["g:" + entity[2:]] = set(accounts)
    return out


def clusters(links: dict[str, dict[str, float]], cohort_links: list[tuple[str, str]],
             config: DetectionConfig) -> list[tuple[str, ...]]:
    members: dict[str, set[str]] = {e: set(accounts) for e, accounts in links.items()}
    for account, entity in cohort_links:
        if entity[0] == "s":  # the engine's owned groups ("g:") are re-derived below, not taken
            members.setdefault(entity, set()).add(account)
    members.update(owned_groups(members, config))
    entities_of: dict[str, set[str]] = defaultdict(set)
    for entity, accounts in members.items():
        for account in accounts:
            entities_of[account].add(entity)

    def has_private(account: str, prefix: str) -> bool:
        own = sum(1 for e in entities_of[account] if e[0] == prefix and len(members[e]) == 1)
        return own >= 1 and (prefix != "d" or own < config.device_rotation_min)

    caps = {"d": config.device_max_degree, "p": config.payment_max_degree}
    binding = set()
    for entity, accounts in members.items():
        if entity[0] in "sg" and len(accounts) >= 2:
            binding.add(entity)
        elif entity[0] in caps and 2 <= len(accounts) <= caps[entity[0]]:
            exclusive = sum(1 for a in accounts if not has_private(a, entity[0]))
            if exclusive >= config.exclusivity_min * len(accounts):
                binding.add(entity)
    strong = nx.Graph()
    strong.add_edges_from((("a", a), ("e", e)) for e in binding for a in members[e])
    cores = [{name for kind, name in comp if kind == "a"} for comp in nx.connected_components(strong)]
    core_of = {a: i for i, core in enumerate(cores) for a in core}

    support: Counter[tuple[object, object]] = Counter()
    for entity, accounts in members.items():
        if entity[0] not in "it" or len(accounts) < 2:
            continue
        on_core = Counter(core_of[a] for a in accounts if a in core_of)
        heavy = sorted(c for c, n in on_core.items()
                       if n >= max(config.weak_min_accounts, config.weak_cover_min * len(cores[c])))
        if not heavy or len(heavy) > config.weak_max_groups:
            continue
        mass = sum(on_core[c] for c in heavy)
        if mass >= config.weak_purity_min * len(accounts):
            for x, y in combinations(heavy, 2):
                support[(("c", x), ("c", y))] += 1
        if mass + 1 >= config.weak_purity_min * len(accounts):
            for a in accounts:
                if a not in core_of:
                    for c in heavy:
                        support[(("c", c), ("a", a))] += 1
    ops = nx.Graph()
    ops.add_nodes_from(("c", i) for i in range(len(cores)))
    ops.add_edges_from(pair for pair, n in support.items() if n >= config.weak_min_entities)
    out = []
    for component in nx.connected_components(ops):
        accounts = sorted(a for kind, x in component for a in (cores[x] if kind == "c" else [x]))  # type: ignore[index]
        if len(accounts) >= config.track_min_size:
            out.append(tuple(accounts))
    return sorted(out)
