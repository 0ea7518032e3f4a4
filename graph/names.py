"""A cluster's members as the kernel packs them: two byte buffers, not a Python string per member.

Every re-score snapshots its cluster's members (``ClusterSnapshot.members``), and a 24,000-account
ring is re-scored many times; the audit store keeps only the newest snapshot per flush, and alerts
read the members only when they open. So the names stay packed — where each ends (little-endian
int64) and their UTF-8 bytes back to back, sorted — and are decoded only when something iterates
them. The audit store hands the two buffers to Arrow as they are (``buffers``).

    >>> names = Names.of(["a1", "b22", "c"])
    >>> len(names), names[1], list(names), names == ("a1", "b22", "c")
    (3, 'b22', ['a1', 'b22', 'c'], True)
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import overload


class Names(Sequence[str]):
    __slots__ = ("_ends", "_data", "_count")

    def __init__(self, ends: bytes, data: bytes) -> None:
        """``ends``: where each name ends in ``data``, int64 little-endian."""
        self._ends = ends
        self._data = data
        self._count = len(ends) // 8

    @classmethod
    def of(cls, names: Iterable[str]) -> Names:
        data, ends = bytearray(), array("q")
        for name in names:
            data += name.encode()
            ends.append(len(data))
        if sys.byteorder != "little":
            ends.byteswap()
        return cls(ends.tobytes(), bytes(data))

    def buffers(self) -> tuple[bytes, bytes]:
        """(ends, data) as given."""
        return self._ends, self._data

    def __len__(self) -> int:
        return self._count

    def _offsets(self) -> array[int]:
        offsets = array("q", [0])
        offsets.frombytes(self._ends)
        if sys.byteorder != "little":
            offsets.byteswap()
        return offsets

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return tuple(self)[index]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError("name index out of range")
        start = 0 if index == 0 else int.from_bytes(self._ends[8 * index - 8:8 * index], "little")
        end = int.from_bytes(self._ends[8 * index:8 * index + 8], "little")
        return self._data[start:end].decode()

    def __iter__(self) -> Iterator[str]:
        data, offsets = self._data, self._offsets()
        return (data[offsets[i]:offsets[i + 1]].decode() for i in range(self._count))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Names):
            return self._ends == other._ends and self._data == other._data
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == self._count and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._ends, self._data))

    def __repr__(self) -> str:
        return f"Names({list(self)!r})"
