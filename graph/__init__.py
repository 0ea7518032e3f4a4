"""fraudgraph's pure detection core: events in, graph changes, clusters and alerts out.

Nothing here imports faust, kafka, duckdb or prometheus_client; the adapters in ``streams/`` call
:class:`graph.engine.DetectionEngine` (or its two stages apart), and so do ``replay`` and the
benchmarks. The state lives in a compiled kernel (``graph/kernel/``, Rust, built by ``pip install``).
"""

from graph.config import DetectionConfig
from graph.engine import DetectionEngine
from graph.events import AccountEvent, EventColumns

__all__ = ["AccountEvent", "DetectionConfig", "DetectionEngine", "EventColumns"]
