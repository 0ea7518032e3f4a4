"""The split check costs what breaks off, not what the cluster weighs: counted in accounts expanded,
not timed."""

from graph import DetectionEngine
from graph.splits import split_pieces, touch_points

from tests.conftest import T0, ev, small_config


def mesh(prefix: str, n: int, t: float, devices: int):
    """n accounts hopping between neighbouring shared phones: one connected cluster."""
    return [e for i in range(n) for e in (ev(f"{prefix}{i:05d}", t + i * 0.01, device=f"{prefix}-d{i % devices}"),
                                          ev(f"{prefix}{i:05d}", t + i * 0.01 + 0.005,
                                             device=f"{prefix}-d{(i + 1) % devices}"))]


def engine_with(events):
    engine = DetectionEngine(small_config(track_min_size=3), clock=lambda: 0.0)
    engine.process(events)
    engine.flush()
    return engine


def test_a_peripheral_departure_costs_its_neighbourhood_whatever_the_cluster_size():
    steps = {}
    for n in (200, 2000):
        events = mesh("m", n, T0, devices=n // 10) + [ev("leaf", T0 + 30, device="leaf-own"),
                                                      ev("leaf", T0 + 30.5, device="m-d0")]
        engine = engine_with(events)
        (cluster,) = engine.registry.clusters.values()
        assert "leaf" in cluster.members
        # The leaf leaves: drop its link by hand, as expiry would.
        engine.window.members["d:m-d0"].pop("leaf")
        engine.window.links_of["leaf"].discard("d:m-d0")
        engine.binding.members_now.discard("leaf")
        touch = touch_points(cluster.members, engine.binding, [("leaf", "d:m-d0")], [], ["leaf"])
        result = split_pieces(touch, cluster.members, engine.binding)
        assert result.rest_connected and result.pieces == []
        steps[n] = result.steps
    assert steps[2000] <= 2 * steps[200] + 5, steps


def test_a_bridge_that_expires_splits_off_the_smaller_side_found_whole():
    small = mesh("s", 12, T0, devices=3)
    large = mesh("l", 300, T0, devices=30)
    bridge = [ev("bridge", T0 + 1, device="s-d0"), ev("bridge", T0 + 1.5, device="l-d0")]
    engine = engine_with(small + large + bridge)
    (cluster,) = engine.registry.clusters.values()
    for entity in ("d:s-d0", "d:l-d0"):
        engine.window.members[entity].pop("bridge")
        engine.window.links_of["bridge"].discard(entity)
    engine.binding.members_now.discard("bridge")
    touch = touch_points(cluster.members, engine.binding, [("bridge", "d:s-d0"), ("bridge", "d:l-d0")], [],
                         ["bridge"])
    result = split_pieces(touch, cluster.members, engine.binding)
    assert result.rest_connected
    assert [sorted(p) for p in result.pieces] == [sorted(f"s{i:05d}" for i in range(12))]
    assert result.steps < 4 * 12 + 10, "the large side is not walked"
