"""The ``fraudgraph`` command: one entry point for the worker, ``replay``, the investigators' commands
(``investigate``, ``verdict``) and the developer tooling it dispatches to (``simulate``, ``demo``)."""

from streams.cli.main import analyst_name, main

__all__ = ["analyst_name", "main"]
