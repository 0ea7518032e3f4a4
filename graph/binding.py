"""Which shared entities bind accounts into one group, and how much each weighs.

Sharing alone proves nothing: a carrier NAT IP, a library PC or a company card is shared by people
who never met. An entity binds only when *how* it is shared looks like one operator:

* device / payment instrument (strong): shared by 2..max accounts, and at least
  ``exclusivity_min`` of those accounts have no private entity of the same kind. A farm account
  lives on the farm's phone; a library visitor also has a phone of their own.
* IP (weak): shared by 2..max accounts, and at least ``ip_cohesion_min`` of them are already bound
  by a strong entity. A datacenter IP that only farm accounts use binds their device stars
  together; a NAT IP with three ring accounts among five hundred commuters does not.
* An account is a cluster member only if it has a binding strong entity: an IP never pulls an
  otherwise unlinked account into a cluster (camouflage logins from benign hubs stay outside).

Weights (for Leiden splits and evidence): type weight divided by log2(1 + degree), so a card shared
by 40 counts more than an office IP shared by 300. See graph/DETECTION.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from graph.config import DetectionConfig
from graph.events import DEVICE, IP, PAYMENT, kind_of
from graph.window import LinkWindow

TYPE_WEIGHT = {DEVICE: 1.0, PAYMENT: 1.0, IP: 0.4}


class BindingState:
    def __init__(self, window: LinkWindow, config: DetectionConfig) -> None:
        self.window = window
        self.config = config
        self.max_degree = {DEVICE: config.device_max_degree, PAYMENT: config.payment_max_degree,
                           IP: config.ip_max_degree}
        self.binding: set[str] = set()
        # Per-tick memos: the window does not change while a tick evaluates it.
        self._member: dict[str, bool] = {}
        self.members_now: set[str] = set()  # accounts that are members, as of the last update
        self._private: dict[tuple[str, str], bool] = {}

    # -- the rules --------------------------------------------------------------------------
    def _strong_binds(self, entity: str) -> bool:
        accounts = self.window.members.get(entity)
        if not accounts:
            return False
        kind = kind_of(entity)
        degree = len(accounts)
        if degree < 2 or degree > self.max_degree[kind]:
            return False
        exclusive = sum(1 for a in accounts if not self.has_private(a, kind))
        return exclusive >= self.config.exclusivity_min * degree

    def has_private(self, account: str, kind: str) -> bool:
        """``LinkWindow.has_private``, memoised for the tick (the window does not change within it)."""
        key = (account, kind)
        known = self._private.get(key)
        if known is None:
            known = self._private[key] = self.window.has_private(account, kind)
        return known

    def _ip_binds(self, entity: str) -> bool:
        accounts = self.window.members.get(entity)
        if not accounts:
            return False
        degree = len(accounts)
        if degree < 2 or degree > self.max_degree[IP]:
            return False
        members_now = self.members_now
        bound = sum(1 for a in accounts if a in members_now)
        return bound >= self.config.ip_cohesion_min * degree

    def is_member(self, account: str) -> bool:
        """An account can join a cluster only through a binding device or payment instrument."""
        known = self._member.get(account)
        if known is None:
            binding = self.binding
            known = any(e[0] != "i" and e in binding for e in self.window.links_of.get(account, ()))
            self._member[account] = known
        return known

    def weight(self, entity: str) -> float:
        return TYPE_WEIGHT[kind_of(entity)] / math.log2(1 + max(2, self.window.degree(entity)))

    # -- updates ----------------------------------------------------------------------------
    def _set(self, entity: str, binds: bool, flipped: set[str]) -> None:
        if binds != (entity in self.binding):
            (self.binding.add if binds else self.binding.discard)(entity)
            flipped.add(entity)

    def update(self, changed_links: list[tuple[str, str]], private_flips: set[str]) -> set[str]:
        """Re-evaluate exactly what the changes can affect; return the entities whose binding flipped.

        A device/card is re-evaluated when its accounts changed, or when one of its accounts gained
        or lost a private entity of the same kind. An IP is re-evaluated when its accounts changed,
        or when one of its accounts became or stopped being a member (see ``is_member``).
        """
        self._member.clear()
        self._private.clear()
        window = self.window
        links_of = window.links_of
        members_of = window.members
        strong: set[str] = set()
        ips: set[str] = set()
        kinds_moved: set[tuple[str, str]] = set()  # (account, kind prefix) whose private answer may differ
        status_maybe: set[str] = set()  # accounts whose membership may differ
        for account, entity in changed_links:
            if entity[0] == "i":
                ips.add(entity)
            else:
                strong.add(entity)
                kinds_moved.add((account, entity[0]))
                status_maybe.add(account)
        for entity in private_flips:
            if entity[0] != "i":
                for account in members_of.get(entity, ()):
                    kinds_moved.add((account, entity[0]))
        for account, prefix in kinds_moved:
            strong.update(e for e in links_of.get(account, ()) if e[0] == prefix)

        flipped: set[str] = set()
        for entity in sorted(strong):
            self._set(entity, self._strong_binds(entity), flipped)
        self._member.clear()  # membership follows the strong bindings just settled

        for entity in flipped:
            status_maybe.update(members_of.get(entity, ()))
        was = self.members_now
        for account in status_maybe:
            now = self.is_member(account)
            if now != (account in was):
                (was.add if now else was.discard)(account)
                ips.update(e for e in links_of.get(account, ()) if e[0] == "i")
        for entity in sorted(ips):
            self._set(entity, self._ip_binds(entity), flipped)
        return flipped

    def recompute_all(self) -> set[str]:
        """The full (non-incremental) evaluation, for the fallback and for tests."""
        self._member.clear()
        self._private.clear()
        flipped: set[str] = set()
        for entity in sorted(e for e in self.window.members if e[0] != "i"):
            self._set(entity, self._strong_binds(entity), flipped)
        self._member.clear()
        self.members_now = {a for a in self.window.links_of if self.is_member(a)}
        for entity in sorted(e for e in self.window.members if e[0] == "i"):
            self._set(entity, self._ip_binds(entity), flipped)
        return flipped

    def binding_entities_of(self, account: str) -> Iterable[str]:
        binding = self.binding
        return (e for e in self.window.links_of.get(account, ()) if e in binding)
