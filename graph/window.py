"""The rolling account–entity link store, with true deletions and its own expiry index.

A link (account, entity) carries the event time it was last seen. ``expire(cutoff)`` removes every
link with ``last_seen <= cutoff`` — exactly, not approximately — and reports which accounts and
entities changed, so clusters can shrink, split or dissolve. Memory follows the live window:
an entity is registered in one expiry bucket only (the bucket of its oldest live link), and is
re-registered when that bucket comes due. Faust's windowed-table expiry is not used
(faust-streaming #385, #118; robinhood/faust #44).
"""

from __future__ import annotations

import heapq

USAGE_BUCKET_SECONDS = 3600.0  # damage figures are exact to the hour at the window's edge


class AccountInfo:
    """What scoring needs about an account beyond its links; expires with its last link."""

    __slots__ = ("signup_ts", "email_domain", "datacenter_ts", "last_ts", "usage")

    def __init__(self) -> None:
        self.signup_ts: float | None = None
        self.email_domain: str | None = None
        self.datacenter_ts: float | None = None  # last API use from a datacenter ASN
        self.last_ts = float("-inf")
        self.usage: list[list[int]] | None = None  # [hour, requests, output tokens], oldest first

    def add_usage(self, ts: float, requests: int, tokens_out: int) -> None:
        hour = int(ts // USAGE_BUCKET_SECONDS)
        usage = self.usage
        if usage is None:
            self.usage = [[hour, requests, tokens_out]]
            return
        for bucket in reversed(usage):  # late events land a few buckets back at most
            if bucket[0] == hour:
                bucket[1] += requests
                bucket[2] += tokens_out
                return
            if bucket[0] < hour:
                break
        usage.append([hour, requests, tokens_out])
        usage.sort(key=lambda b: b[0])

    def usage_since(self, horizon: float) -> tuple[int, int]:
        """(API exchanges, output tokens) in hourly buckets after ``horizon``; older buckets are dropped."""
        usage = self.usage
        if not usage:
            return 0, 0
        first = int(horizon // USAGE_BUCKET_SECONDS) + 1  # whole hours inside the window
        while usage and usage[0][0] < first:
            usage.pop(0)
        return sum(b[1] for b in usage), sum(b[2] for b in usage)


class LinkWindow:
    def __init__(self, bucket_seconds: float) -> None:
        self.bucket_seconds = bucket_seconds
        self.members: dict[str, dict[str, float]] = {}  # entity -> {account: last_seen}
        self.links_of: dict[str, set[str]] = {}  # account -> entity keys
        self.info: dict[str, AccountInfo] = {}
        self._buckets: dict[int, set[str]] = {}  # bucket -> entities whose oldest link is in it
        self._due: list[int] = []  # heap of the bucket ids in _buckets
        self.link_count = 0
        self._frontier = float("-inf")  # newest ts touched; only late links land behind it
        # What changed since the engine last drained it: links added or removed, and entities that
        # went 1 <-> 2 accounts (their accounts' "has a private one" answers changed).
        self.changed_links: list[tuple[str, str]] = []
        self.private_flips: set[str] = set()

    def _bucket(self, ts: float) -> int:
        return int(ts // self.bucket_seconds)

    def touch(self, account: str, entity: str, ts: float) -> None:
        """Record that ``account`` used ``entity`` at event time ``ts``."""
        if ts > self._frontier:
            self._frontier = ts
        accounts = self.members.get(entity)
        if accounts is None:
            self.members[entity] = {account: ts}
            self._register(entity, ts)
            self._link_account(account, entity)
            if entity[0] == "i":
                # A new single-account IP (a rotating proxy, a home line) binds nothing and feeds no
                # rule; it only matters once a second account shows up on it (1 -> 2 below).
                return
        else:
            previous = accounts.get(account)
            if previous is not None:
                if ts > previous:
                    accounts[account] = ts  # refresh: the graph's shape is unchanged
                return
            accounts[account] = ts
            if len(accounts) == 2:
                self.private_flips.add(entity)  # 1 -> 2: no longer private to the first account
            if ts < self._frontier:
                # A late link may be older than the entity's registered oldest: register it too
                # (a second registration is harmless; the scan re-registers at the true oldest).
                self._register(entity, ts)
            self._link_account(account, entity)
        self.changed_links.append((account, entity))

    def _link_account(self, account: str, entity: str) -> None:
        self.link_count += 1
        entities = self.links_of.get(account)
        if entities is None:
            self.links_of[account] = {entity}
        else:
            entities.add(entity)

    def _register(self, entity: str, ts: float) -> None:
        bucket_id = self._bucket(ts)
        entities = self._buckets.get(bucket_id)
        if entities is None:
            self._buckets[bucket_id] = {entity}
            heapq.heappush(self._due, bucket_id)
        else:
            entities.add(entity)

    def note_account(self, account: str, ts: float, *, signup: bool, email_domain: str | None,
                     datacenter: bool, requests: int = 0, tokens_out: int = 0) -> None:
        """Keep scoring facts for accounts that have links (others are in no cluster)."""
        info = self.info.get(account)
        if info is None:
            if account not in self.links_of:
                return
            info = self.info[account] = AccountInfo()
        if ts > info.last_ts:
            info.last_ts = ts
        if signup and (info.signup_ts is None or ts > info.signup_ts):
            info.signup_ts = ts
        if email_domain:
            info.email_domain = email_domain
        if datacenter and (info.datacenter_ts is None or ts > info.datacenter_ts):
            info.datacenter_ts = ts
        if requests or tokens_out:
            info.add_usage(ts, requests, tokens_out)

    def expire(self, cutoff: float) -> int:
        """Remove every link with last_seen <= cutoff; return how many were removed."""
        removed = 0
        last_due = self._bucket(cutoff)
        due = self._due
        bucket_ids = []
        while due and due[0] <= last_due:  # taken first: an entity re-registered in a due bucket waits a tick
            bucket_ids.append(heapq.heappop(due))
        for bucket_id in bucket_ids:
            for entity in self._buckets.pop(bucket_id, ()):
                removed += self._expire_entity(entity, cutoff)
        return removed

    def _expire_entity(self, entity: str, cutoff: float) -> int:
        accounts = self.members.get(entity)
        if accounts is None:
            return 0
        gone = [a for a, seen in accounts.items() if seen <= cutoff]
        quiet = entity[0] == "i" and len(accounts) == 1  # a lone IP link: nothing depended on it
        for account in gone:
            del accounts[account]
            entities = self.links_of[account]
            entities.discard(entity)
            if not entities:
                del self.links_of[account]
                self.info.pop(account, None)
            if not quiet:
                self.changed_links.append((account, entity))
        self.link_count -= len(gone)
        if gone and len(accounts) == 1 and not quiet:
            self.private_flips.add(entity)  # 2 -> 1: private to the survivor again
        if accounts:
            self._register(entity, min(accounts.values()))
        else:
            del self.members[entity]
        return len(gone)

    # -- read side ------------------------------------------------------------------------------
    def degree(self, entity: str) -> int:
        accounts = self.members.get(entity)
        return len(accounts) if accounts else 0

    def has_private(self, account: str, kind: str) -> bool:
        """Does the account use an entity of ``kind`` that no other live account uses?"""
        members = self.members
        prefix = kind[0]
        for entity in self.links_of.get(account, ()):
            if entity[0] == prefix and len(members[entity]) == 1:
                return True
        return False

    def drain_changes(self) -> tuple[list[tuple[str, str]], set[str]]:
        links, flips = self.changed_links, self.private_flips
        self.changed_links, self.private_flips = [], set()
        return links, flips

    def stats(self) -> dict[str, int]:
        return {"accounts": len(self.links_of), "entities": len(self.members), "links": self.link_count}
