"""The investigators' audit store: append-only Parquet segments behind a DuckDB file of views.

DuckDB allows one writing process or many reading ones, never both. So the worker never holds the
DuckDB file: it appends batched Parquet segments under ``<audit-db>.parts/<table>/`` (one file per
flush, written to a temp name and renamed, so a reader never sees half a file), and the DuckDB file
at ``--audit-db`` holds only views over them. An investigator opens that file read-only, for as long
as they like, while the worker writes; each query sees every segment renamed into place before it
started (at most one flush interval old).

Idempotent: every row carries its natural key and version; the views keep one row per key (the
newest version), so replaying the same events or restarting the worker adds no visible duplicates.
``compact()`` rewrites each table as one segment (dropping superseded and expired rows); a reader
that races a compaction may get "file not found" once — retry the query (docs/investigators.md).
"""

from streams.sinks.audit.schema import SCHEMAS
from streams.sinks.audit.views import EXPORT_TIME_COLUMNS, VIEWS, connect_read_only
from streams.sinks.audit.writer import AuditStore

__all__ = ["EXPORT_TIME_COLUMNS", "SCHEMAS", "VIEWS", "AuditStore", "connect_read_only"]
