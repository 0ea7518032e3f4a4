"""The investigators' common questions as SQL over the audit store's views (also in docs/investigators.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

WORST_CLUSTERS = """
SELECT c.cluster_id, a.alert_id, a.severity, c.size, c.requests, c.tokens_out, c.score, a.detected_at, c.updated_at,
       c.verdict
FROM clusters c LEFT JOIN alerts a ON a.cluster_id = c.cluster_id AND a.status = 'open'
WHERE c.status = 'live' AND c.severity IS NOT NULL
ORDER BY CASE a.severity WHEN 'high' THEN 3 WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END DESC,
         c.size DESC
LIMIT ?"""

CLUSTER_EXISTS = """
SELECT 1 FROM clusters WHERE cluster_id = ? UNION ALL SELECT 1 FROM cluster_lineage WHERE cluster_id = ? LIMIT 1"""

CLUSTER_MEMBERS = "SELECT account_id FROM cluster_members WHERE cluster_id = ? ORDER BY account_id"

CLUSTER_EVIDENCE = """
SELECT entity_type, entity_value, members_sharing, first_seen, last_seen
FROM cluster_evidence WHERE cluster_id = ?
ORDER BY entity_type IN ('ip', 'template'), members_sharing DESC, entity_value  -- strong first; weak corroborates"""

CLUSTER_TIMELINE = """
SELECT happened_at, cluster_id, kind, size, other_cluster_id FROM cluster_lineage
WHERE cluster_id = ? OR other_cluster_id = ? ORDER BY happened_at, kind"""

ENTITY_ACCOUNTS = """
SELECT account_id, last_seen, cluster_ids FROM account_links
WHERE entity_type = ? AND entity_value = ? ORDER BY last_seen DESC"""

ACCOUNT_CLUSTERS = """
SELECT m.cluster_id, c.size, c.severity, c.status FROM cluster_members m JOIN clusters c USING (cluster_id)
WHERE m.account_id = ?
UNION ALL
SELECT a.cluster_id, a.member_count, a.severity, a.status FROM alert_members am JOIN alerts a USING (alert_id)
WHERE am.account_id = ?"""

CLUSTER_SUMMARY = """
SELECT cluster_id, status, size, requests, tokens_out, score, severity, verdict, born_at, updated_at, summary
FROM clusters WHERE cluster_id = ?"""

CLUSTER_LINKS = """
SELECT other_cluster_id, entity_type, shared_entities, accounts_here, accounts_there
FROM cluster_links WHERE cluster_id = ?
ORDER BY shared_entities DESC, other_cluster_id, entity_type"""

ACCOUNT_LINKS = """
SELECT entity_type, entity_value, last_seen FROM account_links WHERE account_id = ? ORDER BY last_seen DESC"""

RECENT_CHANGES = """
SELECT happened_at, cluster_id, kind, size, other_cluster_id FROM cluster_lineage
WHERE happened_at >= (SELECT max(happened_at) FROM cluster_lineage) - to_hours(CAST(? AS BIGINT))
ORDER BY happened_at DESC, cluster_id LIMIT 200"""


PLURAL = {"ip": "IPs", "template": "prompt templates"}


def compact(n: float) -> str:
    """A count as people say it: 950, 12,400, 4.1M, 18B.

    >>> compact(950), compact(12_400), compact(4_130_000), compact(18_200_000_000)
    ('950', '12,400', '4.1M', '18B')
    """
    for size, unit in ((1e9, "B"), (1e6, "M")):
        if abs(n) >= size:
            value = n / size
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return f"{n:,.0f}"


def headline(cluster_id: str, size: int, requests: int | None, tokens_out: int | None, window_days: float) -> str:
    """'C0000015: 3,599 accounts, 4.1M exchanges, 18B output tokens in 7 days'."""
    return (f"{cluster_id}: {size:,} accounts, {compact(requests or 0)} exchanges, {compact(tokens_out or 0)} "
            f"output tokens in {window_days:g} days")


def shared_lines(rows: list[tuple[Any, ...]]) -> list[str]:
    """cluster_links rows as sentences: 'shares 1,204 IPs with C0000031 (212 accounts here, 180 there)'."""
    return [f"shares {n:,} {PLURAL.get(kind, kind + 's')} with {other} ({here:,} accounts here, {there:,} there)"
            for other, kind, n, here, there in rows]


def table(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()
          ) -> tuple[list[str], list[tuple[Any, ...]]]:
    cursor = con.execute(sql, list(params))
    return [d[0] for d in cursor.description], cursor.fetchall()


def render(columns: list[str], rows: list[tuple[Any, ...]], limit: int = 50) -> str:
    """A plain fixed-width table."""
    shown = [tuple("" if v is None else str(v) for v in row) for row in rows[:limit]]
    widths = [max(len(c), *(len(r[i]) for r in shown)) if shown else len(c) for i, c in enumerate(columns)]
    widths = [min(w, 60) for w in widths]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v[:w].ljust(w) for v, w in zip(r, widths)) for r in shown]
    if len(rows) > limit:
        out.append(f"... {len(rows) - limit} more rows")
    if not rows:
        out.append("(no rows)")
    return "\n".join(out)
