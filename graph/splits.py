"""Did a cluster that lost links split? Answered at the cost of the pieces that break off, not of
the cluster.

A tracked cluster is one connected component of the binding graph. When links leave it (expiry, an
entity that stops binding, an account that stops being a member) it may fall apart — but only where
something was removed. So the search starts at the *touch points*: surviving members next to each
removal (the account that lost a link, the other members of the entity it lost, every member of an
entity that stopped binding, the neighbours of an account that stopped being a member). Every piece
the cluster can fall into contains a touch point.

From each touch point a breadth-first search runs, all of them in turn one account at a time
(interleaved). Searches that meet are merged. A search that runs out of accounts before meeting
the others has found a whole piece that broke off; as soon as at most one search is still running,
that one is the rest of the cluster, which is connected (each of its pieces would contain one of
its touch points). Because the searches advance in turn, the work is bounded by the number of
searches times the size of the pieces that broke off — a 24,000-account network that loses a few
accounts at the window's edge costs what those accounts' neighbourhoods cost, not 24,000 accounts.
The search never leaves the cluster's old members: new links out of it are the walk's business
(graph/components.py), which takes the rest over as a block.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from graph.binding import BindingState


@dataclass(slots=True)
class SplitResult:
    pieces: list[set[str]] = field(default_factory=list)  # components that broke off, fully known
    rest_connected: bool = True  # False: no unfinished search was left (the pieces are everything)
    steps: int = 0  # accounts expanded (what the check cost)


def touch_points(members: frozenset[str], binding: BindingState, removed: Iterable[tuple[str, str]],
                 flipped_off: Iterable[str], departed: Iterable[str]) -> set[str]:
    """Surviving members of a cluster next to what it lost.

    ``removed``: (account, entity) links of the cluster's accounts that left the window or left a
    binding entity; ``flipped_off``: entities that stopped binding; ``departed``: members that are
    members no more.
    """
    window = binding.window
    members_of = window.members
    bound = binding.binding
    now = binding.members_now
    touch: set[str] = set()

    def add_members_of(entity: str) -> None:
        for other in members_of.get(entity, ()):
            if other in now and other in members:
                touch.add(other)

    for account, entity in removed:
        if account in now:
            touch.add(account)
        add_members_of(entity)
    for entity in flipped_off:
        add_members_of(entity)
    for account in departed:
        for entity in window.links_of.get(account, ()):
            if entity in bound:
                add_members_of(entity)
    return touch


def split_pieces(touch: Iterable[str], members: frozenset[str], binding: BindingState) -> SplitResult:
    """Interleaved searches from the touch points, inside ``members`` (see the module docstring)."""
    window = binding.window
    members_of = window.members
    links_of = window.links_of
    bound = binding.binding
    now = binding.members_now
    owner: dict[str, int] = {}  # account -> search that reached it
    entity_owner: dict[str, int] = {}
    parent: list[int] = []
    frontier: list[deque[str]] = []
    reached: list[list[str]] = []

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> int:
        i, j = find(i), find(j)
        if i == j:
            return i
        if len(reached[i]) < len(reached[j]):
            i, j = j, i
        parent[j] = i
        reached[i] += reached[j]
        frontier[i] += frontier[j]
        reached[j], frontier[j] = [], deque()
        running.discard(j)
        return i

    for account in sorted(touch):  # sorted: the same searches in every process
        if account in owner or account not in now or account not in members:
            continue
        i = len(parent)
        parent.append(i)
        owner[account] = i
        frontier.append(deque([account]))
        reached.append([account])
    running = set(range(len(parent)))
    result = SplitResult()
    order = sorted(running)
    while len(running) > 1:
        for i in order:
            if i not in running or len(running) <= 1:
                continue
            queue = frontier[i]
            if not queue:
                running.discard(i)
                result.pieces.append(set(reached[i]))
                continue
            account = queue.popleft()
            result.steps += 1
            for entity in links_of.get(account, ()):
                if entity not in bound:
                    continue
                seen_by = entity_owner.get(entity)
                if seen_by is not None:
                    if find(seen_by) != find(i):
                        i = union(i, seen_by)
                    continue
                entity_owner[entity] = i
                for other in members_of[entity]:
                    if other not in now or other not in members:
                        continue
                    g = owner.get(other)
                    if g is None:
                        owner[other] = i
                        frontier[find(i)].append(other)
                        reached[find(i)].append(other)
                    elif find(g) != find(i):
                        i = union(i, g)
        order = sorted(running)
    if not running:
        result.rest_connected = False
    elif len(running) == 1:
        last = next(iter(running))
        if not frontier[last]:  # the last search also ran out: it is a piece, and nothing is left
            result.pieces.append(set(reached[last]))
            result.rest_connected = False
    return result
