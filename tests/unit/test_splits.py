"""The split check costs what breaks off, not what the cluster weighs: counted in accounts the
kernel expanded (``split_steps``), not timed."""

from graph import DetectionEngine

from tests.conftest import T0, ev, small_config


def mesh(prefix: str, n: int, t: float, devices: int):
    """n accounts hopping between neighbouring shared phones: one connected cluster."""
    return [e for i in range(n) for e in (ev(f"{prefix}{i:05d}", t + i * 0.01, device=f"{prefix}-d{i % devices}"),
                                          ev(f"{prefix}{i:05d}", t + i * 0.01 + 0.005,
                                             device=f"{prefix}-d{(i + 1) % devices}"))]


def refresh(prefix: str, n: int, t: float, devices: int):
    """The mesh seen again (its links stay live); what is not seen again expires."""
    return [ev(f"{prefix}{i:05d}", t, device=f"{prefix}-d{i % devices}") for i in range(n)] + \
           [ev(f"{prefix}{i:05d}", t, device=f"{prefix}-d{(i + 1) % devices}") for i in range(n)]


def expire_one_link(n: int, leaf_events, config):
    engine = DetectionEngine(config, clock=lambda: 0.0)
    engine.process(leaf_events + mesh("m", n, T0 + 60, devices=n // 10))
    engine.flush()
    (cluster_id,) = engine.clusters
    assert len(engine.members(cluster_id)) == n + len({e.account_id for e in leaf_events})
    # the mesh is seen again just before the leaf's links reach the window's edge
    engine.process(refresh("m", n, T0 + config.window_seconds - 60, devices=n // 10))
    engine.flush()
    before = engine.stats()["split_steps"]
    engine.process([ev("clock", T0 + config.window_seconds + 200, ip="203.0.113.1")])
    engine.flush()
    return engine, engine.stats()["split_steps"] - before


def test_a_peripheral_departure_costs_its_neighbourhood_whatever_the_cluster_size():
    config = small_config(track_min_size=3)
    steps = {}
    for n in (200, 2000):
        leaf = [ev("leaf", T0 + 30, device="leaf-own"), ev("leaf", T0 + 30.5, device="m-d0")]
        engine, steps[n] = expire_one_link(n, leaf, config)
        (cluster_id,) = engine.clusters
        assert "leaf" not in engine.members(cluster_id) and len(engine.members(cluster_id)) == n
    assert steps[2000] <= 2 * steps[200] + 5, steps


def test_a_bridge_that_expires_splits_off_the_smaller_side_found_whole():
    config = small_config(track_min_size=3)
    small = mesh("s", 12, T0 + 20, devices=3)
    bridge = [ev("bridge", T0 + 1, device="s-d0"), ev("bridge", T0 + 1.5, device="m-d0")]
    engine = DetectionEngine(config, clock=lambda: 0.0)
    engine.process(bridge + small + mesh("m", 300, T0 + 60, devices=30))
    engine.flush()
    assert len(engine.clusters) == 1
    engine.process(refresh("m", 300, T0 + config.window_seconds - 60, devices=30) +
                   refresh("s", 12, T0 + config.window_seconds - 60, devices=3))
    engine.flush()
    before = engine.stats()["split_steps"]
    out = engine.process([ev("clock", T0 + config.window_seconds + 200, ip="203.0.113.1")])
    out.extend(engine.flush())
    assert sorted(len(engine.members(c)) for c in engine.clusters) == [12, 300]
    assert [e.kind for e in out.lineage if e.kind == "split"] == ["split"]
    assert engine.stats()["split_steps"] - before < 4 * 12 + 10, "the large side is not walked"
