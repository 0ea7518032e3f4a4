"""Where the engine's output goes besides the alerts topic: the DuckDB audit store (``audit``, with
the link rows it stores, ``link_rows``) and the Prometheus metrics (``metrics``)."""
