"""Pseudonymised identifiers, on request (``--pseudonymise-key-file``): raw IPs, device ids and payment
fingerprints never reach the audit store or the alerts topic. Each is replaced, where the engine's
output leaves the process, by a keyed hash — HMAC-SHA256 of type and value under the operator's key,
truncated to 96 bits and prefixed by type — so the same value gets the same pseudonym in every
process and after every restart, and investigators holding the key can still look a value up
(``fraudgraph investigate entity ip 203.0.113.7`` hashes its argument the same way).

Detection is unchanged: the engine works on the raw values in memory (they are opaque keys to it),
only what it writes out is renamed. Prompt-template fingerprints (already hashes of prompts) and
lockstep cohort ids (made by the engine) are kept. The dead-letter topic keeps the refused record as
it arrived, so a producer can fix and re-send it: restrict who reads it.

    >>> p = Pseudonymiser(b"k" * 32)
    >>> p.value("ip", "203.0.113.7")
    'ip_6c8956d6e349db2ddc1a9973'
    >>> p.value("ip", p.value("ip", "203.0.113.7")) == p.value("ip", "203.0.113.7")  # idempotent
    True
    >>> p.value("template", "tpl-9f2c")
    'tpl-9f2c'
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace

import orjson

from graph.detector import EngineOutput
from graph.scoring import Evidence
from streams.sinks.link_rows import LinkSource, RenamedLinks

PREFIXES = {"ip": "ip_", "device": "dev_", "payment": "pay_", "email_domain": "dom_"}
DIGEST_HEX = 24  # 96 bits: no collision among billions of values in any real window



class Pseudonymiser:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def value(self, kind: str, value: str) -> str:
        prefix = PREFIXES.get(kind)
        if prefix is None or self.is_pseudonym(kind, value):
            return value
        digest = hmac.new(self._key, f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()
        return prefix + digest[:DIGEST_HEX]

    @staticmethod
    def is_pseudonym(kind: str, value: str) -> bool:
        prefix = PREFIXES.get(kind, "\0")
        digest = value[len(prefix):]
        return value.startswith(prefix) and len(digest) == DIGEST_HEX and all(c in "0123456789abcdef" for c in digest)

    def evidence(self, evidence: tuple[Evidence, ...]) -> tuple[Evidence, ...]:
        return tuple(e._replace(entity_value=self.value(e.entity_type, e.entity_value)) for e in evidence)

    def output(self, out: EngineOutput) -> None:
        """Rename every raw identifier in one engine output, in place, before anything is written."""
        out.alerts = [replace(a, evidence=ev, evidence_json=_json(ev))
                      for a in out.alerts for ev in (self.evidence(a.evidence),)]
        out.clusters = [replace(s, scored=replace(s.scored, evidence=ev, evidence_json=_json(ev)))
                        for s in out.clusters for ev in (self.evidence(s.scored.evidence),)]

    def link_source(self, source: LinkSource) -> LinkSource:
        """``source``'s links with their values renamed."""
        return RenamedLinks(source, self.value)


def _json(evidence: tuple[Evidence, ...]) -> str:
    return orjson.dumps([e._asdict() for e in evidence]).decode()


def from_key_file(path: str) -> Pseudonymiser | None:
    """The pseudonymiser for ``--pseudonymise-key-file`` (None without one); KeyFileError names a bad file."""
    from streams.runtime.keys import load_key

    return Pseudonymiser(load_key(path, "pseudonymisation key file")) if path else None
