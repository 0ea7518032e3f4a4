"""What the simulator plants, and its knobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

START = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
DAY = 86400.0
FREEMAIL = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "proton.me", "icloud.com")
RESIDENTIAL_ASNS = ("AS7922", "AS701", "AS3320", "AS2856", "AS12322", "AS3215", "AS6830")
MOBILE_ASNS = ("AS21928", "AS22394", "AS20057")
CLOUD_ASNS = ("AS16509", "AS14061", "AS24940", "AS16276", "AS15169")
Usage = tuple[int, int, int, str, str]  # requests, tokens_in, tokens_out, model, prompt fingerprint

RING_KINDS = ("device_farm", "card_pool", "card_only", "slow_drip", "camouflage", "cells", "lockstep")


@dataclass(frozen=True)
class RingSpec:
    kind: str  # one of RING_KINDS
    size: int
    proxy: bool = False  # logins and part of the API traffic through the shared residential proxy network
    stops: bool = False  # in a long stream: the operation stops after SimConfig.stop_after_days


def default_rings(scale: float = 1.0, count: int | None = None) -> list[RingSpec]:
    """The planted rings; ``scale`` multiplies their sizes, ``count`` cycles through the kinds to plant
    that many (default: the list below, every hard case at several sizes). Six operations route through
    one residential proxy network; a third of the others stop early in a long stream."""
    def s(n: int) -> int:
        return max(30, int(n * scale))
    rings = [RingSpec("device_farm", s(120), stops=True), RingSpec("device_farm", s(300), proxy=True),
             RingSpec("device_farm", s(800))]
    rings += [RingSpec("card_pool", s(150)), RingSpec("card_pool", s(400), proxy=True),
              RingSpec("card_pool", s(1000), stops=True)]
    rings += [RingSpec("card_only", s(110), stops=True), RingSpec("card_only", s(500), proxy=True)]
    rings += [RingSpec("slow_drip", s(140), proxy=True), RingSpec("slow_drip", s(600))]
    rings += [RingSpec("camouflage", s(200), proxy=True), RingSpec("camouflage", s(700))]
    rings += [RingSpec("lockstep", s(150), stops=True), RingSpec("lockstep", s(400), proxy=True),
              RingSpec("lockstep", s(900))]
    rings += [RingSpec("device_farm", s(40)), RingSpec("card_pool", s(60))]  # small ones
    rings.append(RingSpec("cells", s(24000)))
    if count is not None:
        rings = [rings[i % len(rings)] for i in range(count)]
    return rings


@dataclass
class SimConfig:
    seed: int = 42
    benign_accounts: int = 100_000
    days: float = 7.0
    rings: list[RingSpec] = field(default_factory=default_rings)
    duplicate_rate: float = 0.0  # share of events delivered twice
    late_rate: float = 0.0  # share of events delivered up to ``max_late_seconds`` late
    max_late_seconds: float = 180.0
    stop_after_days: float = 2.0  # rings with ``stops`` emit nothing after this (visible in long streams)
    lookalikes: bool = True  # resellers, CI fleets, university classes
    families: tuple[str, ...] = ()  # red-team families to plant (streams/dev/sim/families.py)
    family_instances: int = 2  # instances of each, each with its own parameters
    family_max_size: int = 3000  # instance sizes are drawn log-uniformly from 100 to this
