"""Re-clustering of the dirty region only.

The region is every account a change can reach through binding entities: the dirty accounts, the
members of entities whose binding flipped, and all members of the clusters they belonged to (so a
cluster that lost a link is recomputed whole and can split). Within the region, groups are the
connected components of the binding graph; a component larger than ``split_above`` is split into
communities with igraph's Leiden (modularity, weighted, seeded), which is how a network of weakly
bridged cells comes out as cells. Because a region is always a union of whole components, the
incremental result equals a full recompute over the whole graph.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Protocol

import igraph

from graph.binding import BindingState
from graph.config import DetectionConfig


class Blocks(Protocol):
    """Tracked clusters the walk may take over whole: ``id in blocks`` and ``blocks[id]`` (members)."""

    def __contains__(self, cluster_id: object, /) -> bool: ...

    def __getitem__(self, cluster_id: str, /) -> frozenset[str]: ...


@dataclass(slots=True)
class Group:
    """One new cluster: ``blocks`` are old clusters taken over whole, ``loose`` every other account."""

    blocks: list[str] = field(default_factory=list)
    loose: list[str] = field(default_factory=list)
    size: int = 0
    from_split: bool = False


def components_from(seeds: Iterable[str], binding: BindingState, blocks: Blocks | None = None,
                    block_of: Mapping[str, str] | None = None, detached: AbstractSet[str] = frozenset()
                    ) -> list[Group]:
    """Connected components of the binding graph (accounts only) that contain a seed member.

    ``blocks`` are tracked clusters known to be still connected (nothing was removed from them):
    reaching one member adds the whole block without walking its inside, so a growing 24k-account
    ring costs what its new links cost, not what its size costs. New links out of a block are seeds,
    so they are walked.

    Because a block's inside is not walked, a walk can meet a block (or an account) that an earlier
    walk of the same call already claimed: the two are one component, so their groups are merged.
    The answer is therefore the same whatever order seeds, entities and members are visited in.
    ``detached`` accounts left their block this tick (graph/splits.py): they are walked as loose.
    """
    window = binding.window
    members_of = window.members
    links_of = window.links_of
    bound = binding.binding
    members_now = binding.members_now  # settled by the binding update that ran first
    blocks = blocks or {}
    block_of = block_of or {}
    seeds = sorted(seeds)
    seed_set = set(seeds)
    seeds_in_block: dict[str, list[str]] = {}  # seeds carry the new links: always walk them
    is_block: dict[str, bool] = {}

    def in_blocks(block: str) -> bool:
        known = is_block.get(block)
        if known is None:
            known = is_block[block] = block in blocks
        return known

    for seed in seeds:
        block = None if seed in detached else block_of.get(seed)
        if block is not None and in_blocks(block):
            seeds_in_block.setdefault(block, []).append(seed)

    groups: list[Group] = []
    parent: list[int] = []  # union-find over group indices: merged groups point at the survivor

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> int:
        """Merge two groups into the one created first; return the survivor."""
        i, j = find(i), find(j)
        if i == j:
            return i
        keep, gone = (i, j) if i < j else (j, i)
        survivor, other = groups[keep], groups[gone]
        survivor.blocks += other.blocks
        survivor.loose += other.loose
        survivor.size += other.size
        other.blocks, other.loose, other.size = [], [], 0
        parent[gone] = keep
        return keep

    seen: dict[str, int] = {}  # walked account -> the group that reached it
    owner: dict[str, int] = {}  # claimed block -> the group that took it
    visited_entities: set[str] = set()

    def reach(account: str, gi: int, stack: list[str]) -> int:
        g = seen.get(account)
        if g is None:
            seen[account] = gi
            stack.append(account)
            return gi
        return union(gi, g)

    def claim(block: str, gi: int, stack: list[str]) -> int:
        held = owner.get(block)
        if held is not None:
            return union(gi, held)
        owner[block] = gi
        group = groups[gi]
        group.blocks.append(block)
        group.size += len(blocks[block])
        for inner in seeds_in_block.get(block, ()):
            if inner in members_now:
                gi = reach(inner, gi, stack)
        return gi

    for seed in seeds:
        if seed in seen or seed not in members_now:
            continue
        block = None if seed in detached else block_of.get(seed)
        if block is not None and block in owner:
            continue  # claimed already: its seeds were reached through the block
        gi = len(groups)
        groups.append(Group())
        parent.append(gi)
        seen[seed] = gi
        stack = [seed]
        while stack:
            account = stack.pop()
            gi = find(gi)
            block = None if account in detached else block_of.get(account)
            if block is not None and in_blocks(block):
                gi = claim(block, gi, stack)
            else:
                group = groups[gi]
                group.loose.append(account)
                group.size += 1
            for entity in links_of.get(account, ()):
                if entity not in bound or entity in visited_entities:
                    continue
                visited_entities.add(entity)
                for other in members_of[entity]:
                    if other not in members_now:
                        continue
                    other_block = block_of.get(other)
                    if other_block is not None and other not in seed_set and other not in detached:
                        held = owner.get(other_block)
                        if held is not None:  # a block this walk (or an earlier one) took already
                            if held != gi and find(held) != gi:
                                gi = union(gi, held)
                            continue
                        if in_blocks(other_block):
                            gi = claim(other_block, gi, stack)  # an intact block: taken whole, not walked
                            continue
                    g = seen.get(other)
                    if g is None:
                        seen[other] = gi
                        stack.append(other)
                    elif g != gi and find(g) != gi:
                        gi = union(gi, g)
    return [group for i, group in enumerate(groups) if parent[i] == i]


def group_members(group: Group, blocks: Blocks) -> frozenset[str]:
    if len(group.blocks) == 1 and not group.loose:
        return blocks[group.blocks[0]]
    out: set[str] = set(group.loose)
    for block in group.blocks:
        out |= blocks[block]
    return frozenset(out)


def split_large(component: list[str], binding: BindingState, config: DetectionConfig) -> list[list[str]]:
    """Leiden on the bipartite account–entity graph of one large component; seeded, canonical order."""
    accounts = sorted(component)
    index = {a: i for i, a in enumerate(accounts)}
    entity_index: dict[str, int] = {}
    edges: list[tuple[int, int]] = []
    weights: list[float] = []
    bound = binding.binding
    links_of = binding.window.links_of
    n = len(accounts)
    for account in accounts:
        for entity in sorted(links_of.get(account, ())):
            if entity not in bound:
                continue
            node = entity_index.get(entity)
            if node is None:
                node = entity_index[entity] = n + len(entity_index)
            edges.append((index[account], node))
            weights.append(binding.weight(entity))
    graph = igraph.Graph(n=n + len(entity_index), edges=edges)
    igraph.set_random_number_generator(random.Random(config.seed))
    try:
        partition = graph.community_leiden(
            objective_function="modularity", weights=weights,
            resolution=config.leiden_resolution, n_iterations=-1,
        )
    finally:
        igraph.set_random_number_generator(random)
    groups: dict[int, list[str]] = {}
    for node, community in enumerate(partition.membership[:n]):
        groups.setdefault(community, []).append(accounts[node])
    return list(groups.values())


def cluster_region(seeds: Iterable[str], binding: BindingState, config: DetectionConfig,
                   blocks: Blocks | None = None, block_of: Mapping[str, str] | None = None,
                   detached: AbstractSet[str] = frozenset()) -> list[tuple[frozenset[str], Group]]:
    """The groups of at least ``track_min_size`` accounts reachable from the seeds, largest first."""
    blocks = blocks or {}
    groups: list[tuple[frozenset[str], Group]] = []
    for group in components_from(seeds, binding, blocks, block_of, detached):
        if group.size > config.split_above:
            members = sorted(group_members(group, blocks))
            for part in split_large(members, binding, config):
                if len(part) >= config.track_min_size:
                    groups.append((frozenset(part), Group([], sorted(part), len(part), True)))
        elif group.size >= config.track_min_size:
            groups.append((group_members(group, blocks), group))
    groups.sort(key=lambda g: (-len(g[0]), min(g[1].loose) if g[1].loose else min(g[1].blocks)))
    return groups
