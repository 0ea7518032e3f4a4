"""The event the core consumes, and the entity keys it links accounts through."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

EVENT_TYPES = ("signup", "login", "api_key_created", "payment_method_added", "api_usage")

# Entity kinds. Devices and payment instruments are "strong" identifiers (hard to share by
# accident); IPs are "weak" (NAT, wifi and VPNs put strangers on one address).
DEVICE = "device"
PAYMENT = "payment"
IP = "ip"
_PREFIX = {DEVICE: "d:", PAYMENT: "p:", IP: "i:"}
_KIND_OF_PREFIX = {"d": DEVICE, "p": PAYMENT, "i": IP}


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

    def digest(self) -> bytes:
        """A stable 8-byte fingerprint of the content (same in every process; ``source`` excluded)."""
        text = "\x1f".join("" if v is None else str(v) for v in (
            self.event_id, self.type, self.account_id, repr(self.ts), self.device_id, self.ip, self.payment_id,
            self.email_domain, self.user_agent, self.asn, self.country, self.requests, self.tokens_in,
            self.tokens_out, self.model, self.prompt_fingerprint))
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()

    def entity_keys(self) -> list[str]:
        """The entities this event links its account to, as compact keys (``d:…``, ``p:…``, ``i:…``)."""
        keys = []
        if self.device_id:
            keys.append("d:" + self.device_id)
        if self.payment_id:
            keys.append("p:" + self.payment_id)
        if self.ip:
            keys.append("i:" + self.ip)
        return keys


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


def kind_of(key: str) -> str:
    return _KIND_OF_PREFIX[key[0]]
