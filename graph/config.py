"""Every detection threshold in one frozen object. ``graph/DETECTION.md`` explains why each is set so."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    """A link (account, entity) lives this long after the last event that showed it."""
    allowed_lateness_seconds: float = 300.0
    """Events are held this long (event time) and applied in timestamp order; later ones are
    applied when they arrive and counted as late."""
    tick_seconds: float = 60.0
    """Detection runs each time the watermark crosses a multiple of this (event time)."""
    expiry_bucket_seconds: float = 60.0
    """Granularity of the expiry index; expiry itself is exact to the second. As fine as a tick, so
    an entity is looked at about when its oldest link expires, not at every tick of a coarser bucket."""
    max_clock_skew_seconds: float = 3600.0
    """An event dated more than this ahead of the stream (the watermark and the median of recent
    arrivals) or of the wall clock never moves the watermark: it waits for the stream to catch up
    (a gap) or is rejected (a skewed or forged clock). See graph/ordering.py:ClockGuard."""
    skew_sample: int = 31
    """Arrivals whose median is the stream's event time for the skew bound."""

    # -- which entities bind accounts (graph/binding.py) ---------------------------------------
    device_max_degree: int = 200
    """A device on more live accounts than this is infrastructure (kiosk, test lab), never binding."""
    payment_max_degree: int = 1000
    ip_max_degree: int = 300
    exclusivity_min: float = 0.5
    """A device/card binds only if at least this share of its accounts have no private entity of
    the same kind — a library PC's users all own phones of their own; a farm's accounts do not."""
    ip_cohesion_min: float = 0.6
    """An IP binds only if at least this share of its accounts are already strongly bound."""

    # -- clusters ------------------------------------------------------------------------------
    track_min_size: int = 10
    """Components smaller than this are not tracked as clusters (households, couples)."""
    split_above: int = 50_000
    """Components larger than this are split into communities with Leiden (seeded). Below it a
    component is one cluster: the binding rules already cut benign glue, and a 24k-account network
    is one operation to an investigator."""
    leiden_resolution: float = 1.0
    seed: int = 7

    # -- scoring and severity (graph/scoring.py) ----------------------------------------------
    low_min_size: int = 20
    medium_min_size: int = 50
    high_min_size: int = 100
    medium_min_score: float = 0.5
    high_min_score: float = 0.7
    high_min_strong_entities: int = 4
    hub_copy_overlap: float = 0.8
    """The mesh signal is measured without the largest shared device/card and any entity whose
    accounts are at least this share the hub's (and that is at least this share of its size)."""
    rescore_growth: float = 0.05
    """A tracked cluster is re-scored when its size moved by this share since the last score."""
    rescore_seconds: float = 900.0
    """A tracked cluster whose members saw new links is re-scored at most this often (event time)."""
    alert_regrowth: float = 0.25
    """An open alert is re-published when its cluster grew by this share."""
    datacenter_asns: frozenset[str] = field(default=DEFAULT_DATACENTER_ASNS)
    freemail_domains: frozenset[str] = field(default=DEFAULT_FREEMAIL_DOMAINS)

    def __post_init__(self) -> None:
        if self.window_seconds <= 0 or self.tick_seconds <= 0 or self.expiry_bucket_seconds <= 0:
            raise ValueError("window_seconds, tick_seconds and expiry_bucket_seconds must be > 0")
        if self.allowed_lateness_seconds < 0:
            raise ValueError("allowed_lateness_seconds must be >= 0")
        if self.max_clock_skew_seconds <= 0 or self.skew_sample < 1:
            raise ValueError("max_clock_skew_seconds must be > 0 and skew_sample >= 1")
        if not (self.low_min_size <= self.medium_min_size <= self.high_min_size):
            raise ValueError("severity sizes must satisfy low <= medium <= high")
