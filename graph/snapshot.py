"""Checkpoints: the engine's whole state as one self-checking blob, so that a restarted worker
restores it and re-reads only the input that came after it (``streams/worker/checkpoint_files.py`` stores the
blob and replays the tail).

    data = dump(engine, {"offsets": {...}})     # bytes; the adapter's JSON-able facts ride along
    engine, facts = load(data, config, clock)   # CheckpointError("corrupt" | "incompatible", why)

What is in it: each partition window's kernel state (links, de-duplication, held events, counters,
names), the graph's kernel state (binding, cores, weak edges, operations, identity, lineage), the
change batches waiting for other partitions, and the policy's records (clusters, open alerts and
their versions, verdicts). Restoring gives an engine whose next outputs are exactly those of the
engine that was dumped (``tests/unit/test_checkpoint.py`` cuts random streams at random points).

Layout: ``MAGIC``, a 4-byte header length, the header (JSON: format, kernel state format, policy
fingerprint, configuration fingerprint, partitions, section lengths, facts, signed), the sections,
and a trailer: the SHA-256 of everything before it, or — with a ``key`` — its HMAC-SHA256. A blob
that does not check out is ``corrupt``; one written by a build or a configuration that would read it
differently is ``incompatible``; with a key, an unsigned blob or one whose signature does not match
is ``forged`` (whoever can write where checkpoints are kept cannot plant state) — never wrong state.

No section can run code when read: the kernel's states are its own serde encoding, checked as they
are read; the policy's records are MessagePack decoded into their declared types (msgspec), which
builds dataclasses, tuples, sets and scalars and nothing else. A held event's source is kept as an
int (a replayed line) or a record of plain fields, rebuilt by the caller's ``source`` type.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import struct
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec

from graph import _kernel
from graph.alerts import _OpenAlert
from graph.config import DetectionConfig
from graph.engine import DetectionEngine
from graph.identity import ClusterRecord
from graph.scoring import ClusterScore, Evidence
from graph.window import PartitionWindow

MAGIC = b"FRAUDGRAPH-CHECKPOINT\n"
FORMAT = 2  # 2: the policy as typed MessagePack (no pickle), HMAC-signed with a key
POLICY_VERSION = 2  # bump when a policy record's meaning changes without its fields changing
_DIGEST = 32


class CheckpointError(Exception):
    """A checkpoint that cannot be restored: ``kind`` is ``corrupt``, ``incompatible`` or ``forged``."""

    def __init__(self, kind: str, why: str) -> None:
        super().__init__(f"{kind} checkpoint: {why}")
        self.kind = kind
        self.why = why


def policy_fingerprint() -> str:
    """The policy records' layout: a checkpoint of another layout is incompatible, not misread."""
    layout: list[Any] = [POLICY_VERSION]
    for cls in (ClusterRecord, _OpenAlert, ClusterScore):
        layout.append([cls.__module__, cls.__qualname__, [f.name for f in dataclasses.fields(cls)]])
    layout.append([Evidence.__module__, Evidence.__qualname__, list(Evidence._fields)])
    return hashlib.sha256(json.dumps(layout).encode()).hexdigest()[:16]


def config_fingerprint(config: DetectionConfig) -> str:
    """Every detection setting: state built under other thresholds is not this configuration's."""
    values = {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return value


class HeldSource(NamedTuple):
    """A held event's source as a checkpoint keeps it (a replayed line is an int instead)."""

    value: bytes | None
    key: bytes | None
    partition: int
    offset: int
    topic: str
    headers: tuple[tuple[str, bytes], ...]


class _Detector(msgspec.Struct):
    clusters: dict[str, ClusterRecord]
    merged_into: dict[str, str]
    open_alerts: dict[str, _OpenAlert]
    alert_generations: dict[str, int]
    wall: float


class _Merge(msgspec.Struct):
    pending: list[list[bytes]]
    closed: list[int | None]
    applied: int | None
    idle: list[int]


class _Policy(msgspec.Struct):
    windows: list[tuple[int, dict[int, int | HeldSource]]]
    detector: _Detector
    merge: _Merge


class _GlobalPolicy(msgspec.Struct):
    detector: _Detector
    merge: _Merge


_POLICY_DECODER = msgspec.msgpack.Decoder(_Policy)
_WINDOW_DECODER = msgspec.msgpack.Decoder(tuple[int, dict[int, int | HeldSource]])
_GLOBAL_DECODER = msgspec.msgpack.Decoder(_GlobalPolicy)


def _held(source: Any) -> int | HeldSource:
    if isinstance(source, int):
        return source
    try:
        return HeldSource(source.value, source.key, int(source.partition), int(source.offset), str(source.topic),
                          tuple((str(k), bytes(v)) for k, v in (source.headers or ())))
    except AttributeError:
        raise TypeError(f"a held event's source must be a line number or a record, not {type(source).__name__}") from None


def _policy_bytes(state: dict[str, Any]) -> bytes:
    windows = [(n, {k: _held(v) for k, v in held.items()}) for n, held in state["windows"]]
    return msgspec.msgpack.encode(_Policy(windows, _Detector(**state["detector"]), _Merge(**state["merge"])))


def _policy_state(data: bytes, source: Callable[..., Any] | None) -> dict[str, Any]:
    p = _POLICY_DECODER.decode(data)

    def rebuild(h: int | HeldSource) -> Any:
        return h if isinstance(h, int) or source is None else source(*h)

    return {"windows": [(n, {k: rebuild(v) for k, v in held.items()}) for n, held in p.windows],
            "detector": msgspec.structs.asdict(p.detector), "merge": msgspec.structs.asdict(p.merge)}


def _trailer(body: bytes, key: bytes | None) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest() if key else hashlib.sha256(body).digest()


def dump(engine: DetectionEngine, facts: dict[str, Any] | None = None, key: bytes | None = None) -> bytes:
    """The engine's state; ``facts`` (JSON-able: e.g. the input offsets it covers) is stored beside it.
    ``key``: sign it (HMAC-SHA256) instead of checksumming it."""
    windows = [w.kernel.to_state() for w in engine.windows]
    graph = engine.detector.graph.to_state()
    policy = _policy_bytes(engine.policy_state())
    return _blob(engine, "engine", [*windows, graph, policy], facts, key)


def dump_unit(engine: DetectionEngine, unit: str, facts: dict[str, Any] | None = None, key: bytes | None = None) -> bytes:
    """One stage's part of a split engine's state, so that another process can adopt just that part
    (``DetectionEngine.adopt_window`` / ``adopt_global``): ``unit`` is ``window-<p>`` (partition
    ``p``'s window: stage A) or ``global`` (graph, policy records, tick merge: stage B)."""
    state = engine.policy_state()
    if unit == GLOBAL:
        sections = [engine.detector.graph.to_state(),
                    msgspec.msgpack.encode(_GlobalPolicy(_Detector(**state["detector"]), _Merge(**state["merge"])))]
    else:
        p = window_partition(unit, engine.partitions)
        n, held = state["windows"][p]
        sections = [engine.windows[p].kernel.to_state(), msgspec.msgpack.encode((n, {k: _held(v) for k, v in held.items()}))]
    return _blob(engine, unit, sections, facts, key)


GLOBAL = "global"


def window_unit(partition: int) -> str:
    return f"window-{partition}"


def window_partition(unit: str, partitions: int) -> int:
    """The partition of a ``window-<p>`` unit (ValueError for another name or a partition out of range)."""
    prefix, _, number = unit.partition("-")
    if prefix != "window" or not number.isdigit() or int(number) >= partitions:
        raise ValueError(f"no unit {unit!r} in an engine of {partitions} partition(s)")
    return int(number)


def _blob(engine: DetectionEngine, unit: str, sections: list[bytes], facts: dict[str, Any] | None,
          key: bytes | None) -> bytes:
    header = json.dumps({
        "format": FORMAT, "kernel": _kernel.STATE_FORMAT, "policy": policy_fingerprint(),
        "config": config_fingerprint(engine.config), "partitions": engine.partitions, "split": engine.split,
        "unit": unit, "sections": [len(s) for s in sections], "facts": facts or {}, "signed": key is not None,
    }, sort_keys=True).encode()
    body = b"".join([MAGIC, struct.pack("<I", len(header)), header, *sections])
    return body + _trailer(body, key)


def read_header(data: bytes, key: bytes | None = None) -> dict[str, Any]:
    """The header of a checkpoint whose checksum (signature, with ``key``) holds (CheckpointError otherwise)."""
    return _header(data, key)[0]


def _header(data: bytes, key: bytes | None = None) -> tuple[dict[str, Any], int]:
    if len(data) < len(MAGIC) + 4 + _DIGEST or not data.startswith(MAGIC):
        raise CheckpointError("corrupt", "not a fraudgraph checkpoint")
    body, trailer = data[:-_DIGEST], data[-_DIGEST:]
    if key is not None:
        if not hmac.compare_digest(_trailer(body, key), trailer):
            why = "unsigned" if hashlib.sha256(body).digest() == trailer else "its signature does not match the key"
            raise CheckpointError("forged", f"{why} (a checkpoint must be signed with this worker's key)")
    elif hashlib.sha256(body).digest() != trailer:
        raise CheckpointError("corrupt", "checksum mismatch (truncated or damaged, or signed: configure its key)")
    (size,) = struct.unpack_from("<I", data, len(MAGIC))
    try:
        header = json.loads(data[len(MAGIC) + 4:len(MAGIC) + 4 + size])
    except ValueError as exc:
        raise CheckpointError("corrupt", f"unreadable header: {exc}") from None
    if not isinstance(header, dict):
        raise CheckpointError("corrupt", "unreadable header")
    return header, len(MAGIC) + 4 + size


def load(data: bytes, config: DetectionConfig, clock: Callable[[], float] = time.time,
         idle_seconds: float = 5.0, partitions: int | None = None,
         split: bool | None = None, key: bytes | None = None,
         source: Callable[..., Any] | None = None) -> tuple[DetectionEngine, dict[str, Any]]:
    """The engine ``dump`` stored, and its facts. ``partitions``: the count the caller needs (the input
    topic's); a checkpoint of another count is incompatible. ``split``: the topology the caller needs
    (``DetectionEngine(split=...)``); a checkpoint of the other one is incompatible. ``key``: the
    checkpoint must be signed with it. ``source``: the type held events' sources are rebuilt as (from
    the fields of :class:`HeldSource`; default: HeldSource itself)."""
    header, sections, count, stored_split = _checked(data, config, "engine", partitions, split, key)
    try:
        kernels = [_kernel.Window.from_state(s) for s in sections[:count]]
        graph = _kernel.Graph.from_state(sections[count], kernels[0] if count == 1 and not stored_split else None)
        policy = _policy_state(sections[count + 1], source)
        engine = DetectionEngine(config, clock, partitions=count, idle_seconds=idle_seconds, split=stored_split,
                                 restored=([PartitionWindow(config, p, k) for p, k in enumerate(kernels)], graph))
        engine.restore_policy_state(policy)
    except (ValueError, KeyError, TypeError, msgspec.DecodeError) as exc:
        kind = "incompatible" if str(exc).startswith("incompatible") else "corrupt"
        raise CheckpointError(kind, str(exc)) from None
    return engine, _facts(header)


def _facts(header: dict[str, Any]) -> dict[str, Any]:
    facts = header.get("facts")
    return facts if isinstance(facts, dict) else {}


def _checked(data: bytes, config: DetectionConfig, unit: str, partitions: int | None, split: bool | None,
             key: bytes | None) -> tuple[dict[str, Any], list[bytes], int, bool]:
    """The header and sections of a blob that checks out as ``unit`` for this build and configuration."""
    header, offset = _header(data, key)
    expected = {"format": FORMAT, "kernel": _kernel.STATE_FORMAT, "policy": policy_fingerprint(),
                "config": config_fingerprint(config)}
    for name, want in expected.items():
        if header.get(name) != want:
            raise CheckpointError("incompatible", f"{name} is {header.get(name)!r}, this build needs {want!r}")
    count = header.get("partitions")
    if not isinstance(count, int) or count < 1 or (partitions is not None and count != partitions):
        raise CheckpointError("incompatible", f"written for {count} input partition(s), the input has {partitions}")
    stored_split = bool(header.get("split", False))
    if split is not None and stored_split != split:
        raise CheckpointError("incompatible", f"written by a {'split' if stored_split else 'single-process'} engine")
    stored_unit = header.get("unit", "engine")
    if stored_unit != unit:
        raise CheckpointError("incompatible", f"it holds {stored_unit!r}, not {unit!r}")
    sizes = header.get("sections")
    wanted = count + 2 if unit == "engine" else 2
    if not isinstance(sizes, list) or len(sizes) != wanted or not all(isinstance(n, int) and n >= 0 for n in sizes):
        raise CheckpointError("corrupt", "section table does not match its unit")
    sections = []
    for size in sizes:
        sections.append(data[offset:offset + size])
        offset += size
    if offset != len(data) - _DIGEST:
        raise CheckpointError("corrupt", "sections do not add up to the checkpoint's length")
    return header, sections, count, stored_split


def load_window(data: bytes, config: DetectionConfig, partition: int, partitions: int, key: bytes | None = None,
                source: Callable[..., Any] | None = None) -> tuple[PartitionWindow, dict[str, Any]]:
    """Partition ``partition``'s window as ``dump_unit`` stored it (split engines only), and its facts."""
    header, sections, _count, _split = _checked(data, config, window_unit(partition), partitions, True, key)
    try:
        window = PartitionWindow(config, partition, _kernel.Window.from_state(sections[0]))
        n, held = _WINDOW_DECODER.decode(sections[1])

        def rebuild(h: int | HeldSource) -> Any:
            return h if isinstance(h, int) or source is None else source(*h)

        window.restore_policy_state((n, {k: rebuild(v) for k, v in held.items()}))
    except (ValueError, KeyError, TypeError, msgspec.DecodeError) as exc:
        raise CheckpointError("incompatible" if str(exc).startswith("incompatible") else "corrupt", str(exc)) from None
    return window, _facts(header)


def load_global(data: bytes, config: DetectionConfig, partitions: int,
                key: bytes | None = None) -> tuple[tuple[_kernel.Graph, dict[str, Any]], dict[str, Any]]:
    """Stage B's state as ``dump_unit`` stored it, for ``DetectionEngine.adopt_global``, and its facts."""
    header, sections, _count, _split = _checked(data, config, GLOBAL, partitions, True, key)
    try:
        graph = _kernel.Graph.from_state(sections[0], None)
        p = _GLOBAL_DECODER.decode(sections[1])
        policy = {"detector": msgspec.structs.asdict(p.detector), "merge": msgspec.structs.asdict(p.merge)}
        if len(policy["merge"]["closed"]) != partitions or len(policy["merge"]["pending"]) != partitions:
            raise ValueError("its tick merge does not match the partitions")
    except (ValueError, KeyError, TypeError, msgspec.DecodeError) as exc:
        raise CheckpointError("incompatible" if str(exc).startswith("incompatible") else "corrupt", str(exc)) from None
    return (graph, policy), _facts(header)
