"""Rolling window with true deletions; stable cluster ids and recorded lineage."""

from graph import DetectionEngine

from tests.conftest import T0, ev, small_config
from tests.unit.scenarios import farm


def heartbeat(t: float):
    """An event that only moves event time forward (a lone IP links nothing)."""
    return ev("clock", t, ip="203.0.113.1")


def mesh(prefix: str, n: int, t: float):
    return [ev(f"{prefix}{i}", t + i, device=f"{prefix}-dev{i % 3}", kind="login") for i in range(n)] + \
           [ev(f"{prefix}{i}", t + i + 0.5, device=f"{prefix}-dev{(i + 1) % 3}") for i in range(n)]


def test_link_expires_exactly_at_the_window_edge_and_the_cluster_splits():
    config = small_config()
    engine = DetectionEngine(config, clock=lambda: 0.0)
    a, b = mesh("a", 6, T0 + 100), mesh("b", 6, T0 + 100)
    bridge = [ev("x", T0 + 5, device="a-dev0"), ev("x", T0 + 5, device="b-dev0")]
    engine.process(bridge + a + b)
    # keep both groups alive; only the bridge goes stale
    for k in range(1, 36):
        engine.process([ev(f"{p}{i}", T0 + 100 * k + i, device=f"{p}-dev{i % 3}") for p in "ab" for i in range(6)])
    engine.process([heartbeat(T0 + 3600 + config.allowed_lateness_seconds + 1)])
    assert len(engine.clusters) == 1, "at T0+3600 the bridge (seen at T0+5) is still inside the window"
    out = engine.process([heartbeat(T0 + 3610 + config.allowed_lateness_seconds)])
    assert len(engine.clusters) == 2
    splits = [e for e in out.lineage if e.kind == "split"]
    assert len(splits) == 1 and splits[0].at == T0 + 3610
    assert not engine.graph.links_of("x"), "the bridge account's links are gone, not just hidden"


def test_memory_follows_the_window():
    config = small_config()
    engine = DetectionEngine(config, clock=lambda: 0.0)
    engine.process(farm("f", 20, devices=4))
    engine.flush()
    assert engine.stats()["links"] > 0 and engine.clusters
    engine.process([heartbeat(T0 + 2 * config.window_seconds)])
    engine.flush()
    stats = engine.stats()
    assert (stats["accounts"], stats["entities"], stats["links"]) == (1, 1, 1)  # only the heartbeat
    assert not engine.clusters
    assert stats["remembered_event_ids"] < 5


def test_ids_are_stable_through_growth_and_merges_are_recorded():
    engine = DetectionEngine(small_config(), clock=lambda: 0.0)
    out = engine.process(mesh("a", 6, T0) + [heartbeat(T0 + 100)])
    (first,) = engine.clusters
    grown = engine.process(mesh("a", 12, T0 + 200)[6:12] + mesh("a", 12, T0 + 200)[18:] + [heartbeat(T0 + 400)])
    assert list(engine.clusters) == [first]
    assert any(e.kind == "grew" and e.cluster_id == first for e in grown.lineage)
    engine.process(mesh("b", 4, T0 + 500) + [heartbeat(T0 + 600)])
    second = next(c for c in engine.clusters if c != first)
    merged = engine.process([ev("bridge", T0 + 700, device="a-dev0"), ev("bridge", T0 + 701, device="b-dev0"),
                             heartbeat(T0 + 800)])
    assert list(engine.clusters) == [first], "the larger cluster keeps its id"
    kinds = {(e.cluster_id, e.kind, e.other) for e in merged.lineage}
    assert (first, "merged", second) in kinds and (second, "merged_into", first) in kinds
    assert engine.resolve(second).cluster_id == first
    assert out.lineage[0].kind == "born"


def test_a_new_link_from_inside_a_large_cluster_merges_it_with_another():
    # Two tracked clusters; two members of the first gain links in the same tick, one of them to the
    # second cluster's device: the merge is found whatever order the changes come in.
    engine = DetectionEngine(small_config(), clock=lambda: 0.0)
    engine.process(mesh("a", 6, T0) + mesh("b", 4, T0) + [heartbeat(T0 + 100)])
    assert len(engine.clusters) == 2
    engine.process([ev("a0", T0 + 200, device="a-dev2"), ev("a5", T0 + 200, device="b-dev1"),
                    ev("a0", T0 + 201, payment="fresh-card"), heartbeat(T0 + 300)])
    assert len(engine.clusters) == 1
    assert engine.partition() == engine.full_recompute_partition()
