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
fingerprint, configuration fingerprint, partitions, section lengths, facts), the sections, and the
SHA-256 of everything before it. A blob that does not check out is ``corrupt``; one written by a
build or a configuration that would read it differently is ``incompatible`` — never wrong state.
The policy section is a pickle read by an unpickler that builds only fraudgraph's own record types
and plain containers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import pickle
import struct
import time
from collections.abc import Callable
from typing import Any

from graph import _kernel
from graph.alerts import _OpenAlert
from graph.config import DetectionConfig
from graph.engine import DetectionEngine
from graph.identity import ClusterRecord
from graph.scoring import ClusterScore, Evidence
from graph.window import PartitionWindow

MAGIC = b"FRAUDGRAPH-CHECKPOINT\n"
FORMAT = 1
POLICY_VERSION = 2  # bump when a policy record's meaning changes without its fields changing
_DIGEST = 32


class CheckpointError(Exception):
    """A checkpoint that cannot be restored: ``kind`` is ``corrupt`` or ``incompatible``."""

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


def dump(engine: DetectionEngine, facts: dict[str, Any] | None = None) -> bytes:
    """The engine's state; ``facts`` (JSON-able: e.g. the input offsets it covers) is stored beside it."""
    windows = [w.kernel.to_state() for w in engine.windows]
    graph = engine.detector.graph.to_state()
    policy = pickle.dumps(engine.policy_state(), protocol=5)
    sections = [*windows, graph, policy]
    header = json.dumps({
        "format": FORMAT, "kernel": _kernel.STATE_FORMAT, "policy": policy_fingerprint(),
        "config": config_fingerprint(engine.config), "partitions": engine.partitions, "split": engine.split,
        "sections": [len(s) for s in sections], "facts": facts or {},
    }, sort_keys=True).encode()
    body = b"".join([MAGIC, struct.pack("<I", len(header)), header, *sections])
    return body + hashlib.sha256(body).digest()


def read_header(data: bytes) -> dict[str, Any]:
    """The header of a checkpoint whose checksum holds (CheckpointError otherwise)."""
    return _header(data)[0]


def _header(data: bytes) -> tuple[dict[str, Any], int]:
    if len(data) < len(MAGIC) + 4 + _DIGEST or not data.startswith(MAGIC):
        raise CheckpointError("corrupt", "not a fraudgraph checkpoint")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError("corrupt", "checksum mismatch (truncated or damaged)")
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
         split: bool | None = None) -> tuple[DetectionEngine, dict[str, Any]]:
    """The engine ``dump`` stored, and its facts. ``partitions``: the count the caller needs (the input
    topic's); a checkpoint of another count is incompatible. ``split``: the topology the caller needs
    (``DetectionEngine(split=...)``); a checkpoint of the other one is incompatible."""
    header, offset = _header(data)
    expected = {"format": FORMAT, "kernel": _kernel.STATE_FORMAT, "policy": policy_fingerprint(),
                "config": config_fingerprint(config)}
    for key, want in expected.items():
        if header.get(key) != want:
            raise CheckpointError("incompatible", f"{key} is {header.get(key)!r}, this build needs {want!r}")
    count = header.get("partitions")
    if not isinstance(count, int) or count < 1 or (partitions is not None and count != partitions):
        raise CheckpointError("incompatible", f"written for {count} input partition(s), the input has {partitions}")
    stored_split = bool(header.get("split", False))
    if split is not None and stored_split != split:
        raise CheckpointError("incompatible", f"written by a {'split' if stored_split else 'single-process'} engine")
    sizes = header.get("sections")
    if not isinstance(sizes, list) or len(sizes) != count + 2:
        raise CheckpointError("corrupt", "section table does not match the partitions")
    sections = []
    for size in sizes:
        sections.append(data[offset:offset + size])
        offset += size
    if offset != len(data) - _DIGEST:
        raise CheckpointError("corrupt", "sections do not add up to the checkpoint's length")
    try:
        kernels = [_kernel.Window.from_state(s) for s in sections[:count]]
        graph = _kernel.Graph.from_state(sections[count], kernels[0] if count == 1 and not stored_split else None)
        policy = _PolicyUnpickler(io.BytesIO(sections[count + 1])).load()
        engine = DetectionEngine(config, clock, partitions=count, idle_seconds=idle_seconds, split=stored_split,
                                 restored=([PartitionWindow(config, p, k) for p, k in enumerate(kernels)], graph))
        engine.restore_policy_state(policy)
    except (ValueError, KeyError, TypeError, pickle.UnpicklingError, EOFError) as exc:
        kind = "incompatible" if str(exc).startswith("incompatible") else "corrupt"
        raise CheckpointError(kind, str(exc)) from None
    facts = header.get("facts")
    return engine, facts if isinstance(facts, dict) else {}


_SAFE_BUILTINS = frozenset({"set", "frozenset", "dict", "list", "tuple", "bytes", "bytearray", "float", "int",
                            "str", "bool", "complex", "slice", "range"})


class _PolicyUnpickler(pickle.Unpickler):
    """Builds fraudgraph's own record types and plain containers, nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module == "builtins" and name in _SAFE_BUILTINS) or (module == "copyreg" and name == "_reconstructor"):
            return super().find_class(module, name)
        if module.startswith(("graph.", "streams.")) and "." not in name:
            found = super().find_class(module, name)
            if isinstance(found, type) and found.__module__ == module:  # a class of ours, not a function
                return found
        raise pickle.UnpicklingError(f"a checkpoint may not build {module}.{name}")
