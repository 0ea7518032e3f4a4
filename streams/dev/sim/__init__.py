"""Simulated traffic (tooling, not the product): a benign population that shares a lot, planted rings
that share differently, and benign groups that look like rings. ``streams/dev/simulate.py`` is the entry."""
