"""An independent oracle for the engine's clusters: the window is recomputed from the events, the
binding rules are re-stated from graph/DETECTION.md, and the groups are
``networkx.connected_components`` of the bipartite member–binding-entity graph. Nothing here calls
the code under test."""

from __future__ import annotations

from collections import defaultdict

import networkx as nx

from graph.config import DetectionConfig
from graph.events import AccountEvent


def live_links(events: list[AccountEvent], horizon: float) -> dict[str, dict[str, float]]:
    """entity key -> {account: last seen} for links last seen after ``horizon`` (exclusive)."""
    last: dict[tuple[str, str], float] = {}
    for e in events:
        for key in _keys(e):
            pair = (key, e.account_id)
            if e.ts > last.get(pair, float("-inf")):
                last[pair] = e.ts
    members: dict[str, dict[str, float]] = defaultdict(dict)
    for (key, account), ts in last.items():
        if ts > horizon:
            members[key][account] = ts
    return dict(members)


def _keys(e: AccountEvent) -> list[str]:
    return ([f"d:{e.device_id}"] if e.device_id else []) + ([f"p:{e.payment_id}"] if e.payment_id else []) + \
           ([f"i:{e.ip}"] if e.ip else [])


def clusters(members: dict[str, dict[str, float]], config: DetectionConfig) -> list[tuple[str, ...]]:
    """The tracked groups the rules in DETECTION.md define over a window, canonical order."""
    entities_of: dict[str, set[str]] = defaultdict(set)
    for entity, accounts in members.items():
        for account in accounts:
            entities_of[account].add(entity)

    def has_private(account: str, prefix: str) -> bool:
        return any(e[0] == prefix and len(members[e]) == 1 for e in entities_of[account])

    caps = {"d": config.device_max_degree, "p": config.payment_max_degree, "i": config.ip_max_degree}
    binding: set[str] = set()
    for entity, accounts in members.items():
        if entity[0] == "i" or not 2 <= len(accounts) <= caps[entity[0]]:
            continue
        exclusive = sum(1 for a in accounts if not has_private(a, entity[0]))
        if exclusive >= config.exclusivity_min * len(accounts):
            binding.add(entity)
    member_accounts = {a for a, ents in entities_of.items() if any(e in binding for e in ents)}
    for entity, accounts in members.items():
        if entity[0] != "i" or not 2 <= len(accounts) <= caps["i"]:
            continue
        if sum(1 for a in accounts if a in member_accounts) >= config.ip_cohesion_min * len(accounts):
            binding.add(entity)
    graph = nx.Graph()
    graph.add_nodes_from(("a", a) for a in member_accounts)
    graph.add_edges_from((("a", a), ("e", e)) for e in binding for a in members[e] if a in member_accounts)
    out = []
    for component in nx.connected_components(graph):
        accounts = tuple(sorted(name for kind, name in component if kind == "a"))
        if len(accounts) >= config.track_min_size:
            out.append(accounts)
    return sorted(out)
