"""A snapshot's packed member names behave as the sorted tuple of names they replace."""

from graph.names import Names

from tests.conftest import run, small_config
from tests.unit.scenarios import farm


def test_packed_members_are_the_sorted_members():
    engine, _ = run(sorted(farm("f", 30, devices=5), key=lambda e: e.ts), small_config())
    graph = engine.detector.graph
    (number,) = graph.clusters()
    names = Names(*graph.members_packed(number))
    want = tuple(graph.members(number))
    assert len(want) == 30 and want == tuple(sorted(want))
    assert names == want and tuple(names) == want and len(names) == len(want)
    assert [names[i] for i in range(-len(want), len(want))] == list(want + want)
    assert names[3:7] == want[3:7]
    assert names == Names.of(want) and hash(names) == hash(Names.of(want))
    assert names != Names.of(want[:-1]) and names != want[:-1]


def test_names_of_any_text():
    words = ["", "a", "ünï", "ĉ🙂", "x" * 300]
    names = Names.of(words)
    assert list(names) == words and names[-1] == "x" * 300 and names[0] == ""
