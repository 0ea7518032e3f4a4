"""Every detection threshold in one frozen object. ``graph/DETECTION.md`` explains why each is set so."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Hosting / cloud ASNs: API traffic from these is "datacenter". Real deployments load their own list
# (an ASN database); these defaults are the large public clouds.
DEFAULT_DATACENTER_ASNS = frozenset({
    "AS16509", "AS14618", "AS15169", "AS396982", "AS8075", "AS14061", "AS24940", "AS16276",
    "AS63949", "AS20473", "AS45102", "AS37963", "AS132203", "AS9009", "AS60068", "AS212238",
})

# Free-mail domains: a shared one says nothing; a shared private domain says "one organisation".
DEFAULT_FREEMAIL_DOMAINS = frozenset({
    "gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "proton.me", "protonmail.com",
    "icloud.com", "mail.ru", "yandex.ru", "qq.com", "163.com", "gmx.de", "aol.com", "live.com",
    "mail.com", "tutanota.com",
})


@dataclass(frozen=True, slots=True)
class DetectionConfig:
    # -- rolling window and event-time policy --------------------------------------------------
    window_seconds: float = 7 * 24 * 3600
    """A link (account, entity) lives this long after the last event that showed it (whole seconds)."""
    allowed_lateness_seconds: float = 300.0
    """Events are held this long (event time) and applied in timestamp order; later ones are
    applied when they arrive and counted as late."""
    tick_seconds: float = 60.0
    """Detection runs each time the watermark crosses a multiple of this (whole seconds). Expiry is
    exact: a link dies at the first tick at or after ``last_seen + window_seconds``."""
    max_clock_skew_seconds: float = 3600.0
    """An event dated more than this ahead of the stream (the watermark and the median of recent
    arrivals) or of the wall clock never moves the watermark: it waits for the stream to catch up
    (a gap) or is rejected (a skewed or forged clock)."""
    skew_sample: int = 31
    """Arrivals whose median is the stream's event time for the skew bound."""

    # -- strong binding: devices and cards -------------------------------------------------------
    device_max_degree: int = 200
    """A device on more live accounts than this is infrastructure (kiosk, test lab), never binding."""
    payment_max_degree: int = 1000
    exclusivity_min: float = 0.5
    """A device/card binds only if at least this share of its accounts have no private entity of
    the same kind — a library PC's users all own phones of their own; a farm's accounts do not."""
    device_rotation_min: int = 4
    """An account seen on this many devices no other account uses, within the window, is rotating its
    fingerprint (a new one every session): none of them counts as a device of its own. People use a
    phone, a laptop, perhaps a tablet in a week; an anti-detect browser is new at every login."""

    # -- lockstep: synchronous use of one prompt template -----------------------------------------
    sync_min_accounts: int = 5
    """A (template, minute) bucket is synchronous when at least this many accounts used it ..."""
    sync_min_lift: float = 2.0
    """... at least this many times the template's usual accounts per minute (a burst: a steady crowd
    of always-on scripts on a framework's default prompt never is one) ..."""
    sync_min_overlap: float = 0.5
    """... and at least this share of it (and ``sync_min_accounts`` accounts) also used the template
    together in one of its recent crowded minutes (the same crowd again: a popular template's rush
    hour is a different crowd every minute). Those accounts get a synchronous minute."""
    sync_recent_buckets: int = 8
    """Crowded minutes per template kept for that comparison."""
    sync_min_buckets: int = 3
    """An account joins a template's lockstep cohort after this many synchronous minutes ..."""
    sync_min_ratio: float = 0.5
    """... that are at least this share of its minutes on that template."""

    # -- weak evidence: IPs and templates are weighed, never unioned -------------------------------
    weak_min_entities: int = 3
    """Two cores (or a loose account and a core) are joined only by at least this many distinct weak
    entities, each heavy for both and owned by the cores heavy on it."""
    weak_cover_min: float = 0.3
    """Heavy: used by at least this share of the core's members ..."""
    weak_min_accounts: int = 5
    """... and by at least this many of them."""
    weak_purity_min: float = 0.8
    """Owned: the cores heavy on an entity hold at least this share of its accounts ..."""
    weak_max_groups: int = 64
    """... and there are at most this many of them (a bound on the work per entity; commodity
    infrastructure fails the share long before)."""

    # -- owned templates: a set of prompts a group uses and nobody else (graph/kernel/src/owned.rs) --
    group_min_accounts: int = 10
    """A template is owned by its users when at least this many accounts use it ..."""
    group_captive_min: float = 0.8
    """... and at least this share of them write no prompt of their own (every template they use is
    shared): an operation runs its templates, a crowd also writes its own prompts ..."""
    group_set_min: float = 0.4
    """... and at least this share use two or more shared templates: an operation runs a set of
    prompts; a crowd on one framework prompt is not a group."""
    template_max_degree: int = 100_000
    """... and at most this many use it (a bound on the work of a status flip, which links or unlinks
    every user once). Well above the largest operations (tens of thousands of accounts on a handful of
    templates): at 5,000 an operation that grew past it lost its templates' groups, and its alert."""

    # -- clusters ------------------------------------------------------------------------------
    track_min_size: int = 10
    """Operations smaller than this are not tracked as clusters (households, couples)."""

    # -- scoring and severity (graph/scoring.py) ----------------------------------------------
    low_min_size: int = 20
    medium_min_size: int = 50
    high_min_size: int = 100
    medium_min_score: float = 0.5
    high_min_score: float = 0.7
    high_min_evidence: int = 4
    """A high alert needs at least this many distinct entities of evidence (binding devices and cards,
    lockstep cohorts, owned IPs and templates)."""
    hub_copy_overlap: float = 0.8
    """The mesh signal is measured without the largest shared device/card and any entity whose
    accounts are at least this share the hub's (and that is at least this share of its size)."""
    owned_established_discount: float = 0.8
    """The owned-template term keeps (1 - this x share of members with no signup in the window)."""
    owned_uncorroborated: float = 0.35
    """The owned-template term keeps this much when nothing but the templates ties the members: no card
    or device shared among them, no lockstep cohort, no IPs used by them and little else, no calls from
    hosting providers' networks (servers, datacenter exits). Content
    alone is a group (a course's students, an app's users), not yet an operation: a low lead at most,
    bursty signups (+0.1) included. Each share of members tied by one of those channels raises it to
    the full term."""
    prefarm_max: float = 0.6
    """The most a farm's structure alone (no identity of their own, bound off the hub) scores: medium,
    whatever it has spent; spending raises it through the other terms."""
    extraction_floor: float = 5.0
    """A cluster whose median member draws up to this many times the population's median output tokens
    is not extracting ..."""
    extraction_full: float = 50.0
    """... and from this many times it is fully (log scale between)."""
    org_discount: float = 0.5
    """Score kept is (1 - d x share of members on one organisation's mail domain), d this for a group
    that extracts ..."""
    org_idle_discount: float = 0.9
    """... and this for one that draws ordinary volume (d moves between the two with extraction): a
    company's own accounts on its test phones or shared desks are the company's ..."""
    payer_discount: float = 0.8
    """... times (1 - this x how fully one card pays for the members x share of long-standing accounts) ..."""
    established_discount: float = 1.0
    """... times (1 - this x share of long-standing accounts x how little they extract)."""
    rescore_growth: float = 0.05
    """A tracked cluster is re-scored when its size moved by this share since the last score ..."""
    rescore_min_change: int = 5
    """... and by at least this many accounts (or crossed a severity size; membership deltas of an
    alerted cluster reach the audit store at every tick regardless)."""
    rescore_seconds: float = 1800.0
    """A tracked cluster whose members saw new links is re-scored at most this often (event time)."""
    alert_regrowth: float = 0.25
    """An open alert is re-published when its cluster grew by this share ..."""
    damage_regrowth: float = 0.1
    """... or when its damage (API exchanges or output tokens in the window, kept current at every
    tick) moved by this share since the last publication; at the end of input (and idle flushes)
    any change is published, so the last version states the damage as of the last tick."""
    evidence_limit: int = 50
    datacenter_asns: frozenset[str] = field(default=DEFAULT_DATACENTER_ASNS)
    freemail_domains: frozenset[str] = field(default=DEFAULT_FREEMAIL_DOMAINS)

    def __post_init__(self) -> None:
        for name in ("window_seconds", "tick_seconds"):
            value = getattr(self, name)
            if value <= 0 or float(value) != int(value):
                raise ValueError(f"{name} must be a positive whole number of seconds, not {value}")
        if self.allowed_lateness_seconds < 0:
            raise ValueError("allowed_lateness_seconds must be >= 0")
        if self.max_clock_skew_seconds <= 0 or self.skew_sample < 1:
            raise ValueError("max_clock_skew_seconds must be > 0 and skew_sample >= 1")
        if not (self.low_min_size <= self.medium_min_size <= self.high_min_size):
            raise ValueError("severity sizes must satisfy low <= medium <= high")
        if self.track_min_size < 2 or self.weak_min_entities < 1 or self.sync_min_buckets < 1:
            raise ValueError("track_min_size must be >= 2, weak_min_entities and sync_min_buckets >= 1")
        if self.sync_min_accounts < 2 or self.sync_recent_buckets < 1 or not 0 < self.sync_min_overlap <= 1:
            raise ValueError("sync_min_accounts must be >= 2, sync_recent_buckets >= 1, 0 < sync_min_overlap <= 1")

    def kernel(self, partition: int = 0) -> dict[str, Any]:
        """The settings the Rust kernel reads (graph/kernel/src/lib.rs)."""
        names = ("window_seconds", "tick_seconds", "allowed_lateness_seconds", "max_clock_skew_seconds",
                 "skew_sample", "device_max_degree", "payment_max_degree", "exclusivity_min", "sync_min_accounts",
                 "sync_min_lift", "sync_min_overlap", "sync_recent_buckets", "sync_min_buckets", "sync_min_ratio",
                 "weak_cover_min", "weak_min_accounts", "weak_purity_min", "weak_min_entities", "weak_max_groups", "track_min_size", "hub_copy_overlap",
                 "evidence_limit", "group_min_accounts", "group_captive_min", "group_set_min", "device_rotation_min",
                 "template_max_degree")
        out: dict[str, Any] = {name: getattr(self, name) for name in names}
        out["datacenter_asns"] = sorted(self.datacenter_asns)
        out["freemail_domains"] = sorted(self.freemail_domains)
        out["partition"] = partition
        return out
