"""fraudgraph's pure detection core: events in, graph changes, clusters and alerts out.

Nothing here imports faust, kafka, duckdb or prometheus_client; the adapters in ``streams/`` call
:class:`graph.engine.DetectionEngine`, and so do ``replay`` and the benchmarks.
"""

from graph.config import DetectionConfig
from graph.engine import DetectionEngine
from graph.events import AccountEvent

__all__ = ["AccountEvent", "DetectionConfig", "DetectionEngine"]
