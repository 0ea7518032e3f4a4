"""`replay`'s reader: lines in file order with their line numbers, blank lines skipped but counted,
\\r\\n endings stripped, however the file falls into blocks."""

import gzip

import pytest

from streams import replay


def numbered(path, batch=3):  # (line number, line) of every line handed out
    return [(first + i, line) for lines, first in replay.read_batches(path, batch) for i, line in enumerate(lines)]


@pytest.mark.parametrize("block", [1, 2, 5, 7, 4 << 20])
@pytest.mark.parametrize("gz", [False, True])
def test_lines_keep_their_numbers(tmp_path, monkeypatch, block, gz):
    monkeypatch.setattr(replay, "BLOCK_BYTES", block)
    text = b"\na1\r\nb2\n\n\nc3\nd4\r\n\r\ne5\nf6"  # leading, repeated and \r\n blank lines; no final newline
    path = tmp_path / ("events.jsonl.gz" if gz else "events.jsonl")
    path.write_bytes(gzip.compress(text) if gz else text)
    assert numbered(path) == [(2, b"a1"), (3, b"b2"), (6, b"c3"), (7, b"d4"), (9, b"e5"), (10, b"f6")]


@pytest.mark.parametrize("block", [3, 7, 4 << 20])
def test_batches_are_full_across_blocks(tmp_path, monkeypatch, block):
    monkeypatch.setattr(replay, "BLOCK_BYTES", block)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(b"line%d\n" % i for i in range(10)))
    assert [(first, len(lines)) for lines, first in replay.read_batches(path, 4)] == [(1, 4), (5, 4), (9, 2)]


def test_a_gzip_of_several_members_is_read_whole(tmp_path):
    # `cat day1.jsonl.gz day2.jsonl.gz > week.jsonl.gz` is a valid gzip file of two members
    path = tmp_path / "week.jsonl.gz"
    path.write_bytes(gzip.compress(b"a1\nb2\n") + gzip.compress(b"c3\n", compresslevel=1) + gzip.compress(b"d4"))
    assert numbered(path) == [(1, b"a1"), (2, b"b2"), (3, b"c3"), (4, b"d4")]
