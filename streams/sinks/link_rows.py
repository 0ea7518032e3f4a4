"""The audit store's ``account_link_rows`` (the links behind an alert's new members), buffered as the
kernel gives them: little-endian column buffers, turned into Arrow arrays at a flush without a Python
object per link.

An alert that gains members records each new member's live links: the audit store's largest table.
As Python lists (a string per value, then converted to Arrow) they were its largest cost. Here each alert update appends five
byte buffers (``Graph.links_columns``) and two short lists: the accounts and their clusters.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from graph._kernel import LINK_KINDS
from graph.names import Names


class LinkSource(Protocol):
    """Where links come from: the kernel graph (``graph._kernel.Graph``), or a renaming wrapper."""

    def links_columns(self, accounts: list[str], first_account: int, first_byte: int,
                      /) -> tuple[bytes, bytes, bytes, bytes, bytes]: ...


class LinkRows:
    """Buffered link rows; ``columns`` gives them as Arrow arrays, in ``account_link_rows``' order."""

    def __init__(self) -> None:
        self.accounts: list[str] = []  # the rows' accounts, by index
        self.clusters: list[str] = []  # the cluster each of those accounts joined
        self._rows = bytearray()  # u32 per row: index into accounts
        self._kinds = bytearray()  # u8 per row: index into LINK_KINDS
        self._ends = bytearray()  # i64 per row: where its value ends in _data
        self._data = bytearray()  # the values, UTF-8, back to back
        self._seen = bytearray()  # u32 per row: epoch seconds the link was last seen

    def __len__(self) -> int:
        return len(self._seen) // 4

    def add(self, source: LinkSource, cluster_id: str, accounts: list[str]) -> None:
        rows, kinds, ends, data, seen = source.links_columns(accounts, len(self.accounts), len(self._data))
        self.accounts.extend(accounts)
        self.clusters.extend([cluster_id] * len(accounts))
        self._rows += rows
        self._kinds += kinds
        self._ends += ends
        self._data += data
        self._seen += seen

    def columns(self, times: Callable[[pa.Array], pa.Array]) -> list[pa.Array]:
        """account_id, entity_type, entity_value, last_seen (through ``times``: float epoch seconds to the
        store's timestamps), cluster_id."""
        n = len(self)
        rows = pa.Array.from_buffers(pa.uint32(), n, [None, pa.py_buffer(bytes(self._rows))])
        kinds = pa.Array.from_buffers(pa.uint8(), n, [None, pa.py_buffer(bytes(self._kinds))])
        values = packed_strings(bytes(self._ends), bytes(self._data))
        seen = pa.Array.from_buffers(pa.uint32(), n, [None, pa.py_buffer(bytes(self._seen))])
        return [pa.array(self.accounts, pa.string()).take(rows), pa.array(LINK_KINDS, pa.string()).take(kinds),
                values, times(pc.cast(seen, pa.float64())), pa.array(self.clusters, pa.string()).take(rows)]


def packed_strings(ends: bytes, data: bytes) -> pa.Array:
    """Strings packed as the kernel packs them (where each ends, int64 little-endian; their UTF-8 bytes
    back to back: ``graph/names.py``) as an Arrow string array, the bytes used as they are."""
    offsets = pa.py_buffer(bytes(8) + ends)
    return pa.LargeStringArray.from_buffers(len(ends) // 8, offsets, pa.py_buffer(data)).cast(pa.string())


class RenamedLinks:
    """A link source whose values pass through ``rename(entity type, value)`` (pseudonymisation)."""

    def __init__(self, source: LinkSource, rename: Callable[[str, str], str]) -> None:
        self._source = source
        self._rename = rename

    def links_columns(self, accounts: list[str], first_account: int, first_byte: int,
                      /) -> tuple[bytes, bytes, bytes, bytes, bytes]:
        rows, kinds, ends, data, seen = self._source.links_columns(accounts, first_account, 0)
        renamed, new_ends = bytearray(), array("q")
        for kind, value in zip(kinds, Names(ends, data), strict=True):
            renamed += self._rename(LINK_KINDS[kind], value).encode()
            new_ends.append(first_byte + len(renamed))
        if sys.byteorder != "little":
            new_ends.byteswap()
        return rows, kinds, new_ends.tobytes(), bytes(renamed), seen
