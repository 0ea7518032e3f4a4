"""The event the core consumes, and the columnar batch the kernel reads."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

EVENT_TYPES = ("signup", "login", "api_key_created", "payment_method_added", "api_usage")

# Compact entity keys: devices and payment instruments are "strong" identifiers (hard to share by
# accident); IPs and prompt templates are "weak" (NAT, wifi, proxies and popular prompts put
# strangers on one value); lockstep cohorts and owned template groups are derived by the kernel.
_PREFIX = {"device": "d:", "payment": "p:", "ip": "i:", "template": "t:", "lockstep": "s:", "owned_template": "g:"}
_KIND_OF_PREFIX = {v[0]: k for k, v in _PREFIX.items()}


@dataclass(frozen=True, slots=True)
class AccountEvent:
    """One validated account event. ``ts`` is event time in epoch seconds (UTC)."""

    event_id: str
    type: str
    account_id: str
    ts: float
    device_id: str | None = None
    ip: str | None = None
    payment_id: str | None = None
    email_domain: str | None = None
    user_agent: str | None = None
    asn: str | None = None
    country: str | None = None
    requests: int | None = None
    """API exchanges this event stands for (None: one)."""
    tokens_in: int | None = None
    tokens_out: int | None = None
    model: str | None = None
    prompt_fingerprint: str | None = None
    source: Any = field(default=None, compare=False, repr=False)
    """Where the adapter got the event (e.g. its Kafka record), so a rejected event can be
    dead-lettered with its original bytes; the core never reads it."""

    def entity_keys(self) -> list[str]:
        """The entities this event links its account to, as compact keys (``d:…``, ``p:…``, ``i:…``, ``t:…``)."""
        keys = []
        if self.device_id:
            keys.append("d:" + self.device_id)
        if self.payment_id:
            keys.append("p:" + self.payment_id)
        if self.ip:
            keys.append("i:" + self.ip)
        if self.prompt_fingerprint:
            keys.append("t:" + self.prompt_fingerprint)
        return keys


_COLUMNS = ("event_id", "type", "account_id", "ts", "device_id", "ip", "payment_id", "prompt_fingerprint",
            "email_domain", "asn", "user_agent", "country", "model", "requests", "tokens_in", "tokens_out")


class EventColumns:
    """A batch of events as columns — what the kernel reads (one list per field, plus each event's
    source for dead-lettering). The decoder fills one directly; tests build one from events."""

    __slots__ = (*_COLUMNS, "sources")

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, [])

    event_id: list[str]
    type: list[str]
    account_id: list[str]
    ts: list[float]
    device_id: list[str | None]
    ip: list[str | None]
    payment_id: list[str | None]
    prompt_fingerprint: list[str | None]
    email_domain: list[str | None]
    asn: list[str | None]
    user_agent: list[str | None]
    country: list[str | None]
    model: list[str | None]
    requests: list[int | None]
    tokens_in: list[int | None]
    tokens_out: list[int | None]
    sources: list[Any]

    @classmethod
    def from_events(cls, events: Iterable[AccountEvent]) -> EventColumns:
        batch = cls()
        for e in events:
            batch.append(e)
        return batch

    def append(self, e: AccountEvent) -> None:
        for name in _COLUMNS:
            getattr(self, name).append(getattr(e, name))
        self.sources.append(e if e.source is None else e.source)  # a rejected event comes back as itself

    def __len__(self) -> int:
        return len(self.event_id)

    @staticmethod
    def fields(e: AccountEvent) -> tuple[Any, ...]:
        """One event's 16 fields in column order (what ``Window.feed_json``'s fallback returns)."""
        return tuple(getattr(e, name) for name in _COLUMNS)

    def kernel_columns(self, first_source: int) -> tuple[list[Any], ...]:
        """The 17 columns ``graph._kernel.Window.feed`` takes: a source number per row, then the fields."""
        return (list(range(first_source, first_source + len(self))), *(getattr(self, name) for name in _COLUMNS))


def entity_key(kind: str, value: str) -> str:
    """The compact key of an entity.

    >>> entity_key("device", "abc")
    'd:abc'
    """
    return _PREFIX[kind] + value


def split_entity_key(key: str) -> tuple[str, str]:
    """Kind and value of a compact key.

    >>> split_entity_key("p:card-9")
    ('payment', 'card-9')
    """
    return _KIND_OF_PREFIX[key[0]], key[2:]
