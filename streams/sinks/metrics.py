"""Prometheus metrics of the worker (prefix ``fraudgraph_``, base units, ``_total`` counters).
No account, device, IP or card ids in labels: those live in the audit store."""

from __future__ import annotations

import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.registry = r
        self.events_in = Counter("fraudgraph_events_in_total", "Records entering a stage", ["stage"], registry=r)
        self.events_out = Counter("fraudgraph_events_out_total",
                                  "Records a stage passed on: decode, valid events; engine, events taken into the "
                                  "window (not refused as clock_skew or id_conflict)", ["stage"], registry=r)
        self.errors = Counter("fraudgraph_stage_errors_total", "Records a stage rejected", ["stage", "reason"], registry=r)
        self.dead_letters = Counter("fraudgraph_dead_letters_total", "Records sent to the dead-letter topic", registry=r)
        self.duplicates = Counter("fraudgraph_duplicate_events_total", "Events dropped as duplicate deliveries", registry=r)
        self.late = Counter("fraudgraph_late_events_total", "Events behind the watermark (applied, counted)", registry=r)
        self.too_old = Counter("fraudgraph_too_old_events_total",
                               "Events older than the window when applied (nothing left to link them to)", registry=r)
        self.held_events = Gauge("fraudgraph_held_events",
                                 "Events held for lateness or waiting for the stream to reach their timestamp", registry=r)
        self.recovering = Gauge("fraudgraph_recovering", "1 while the worker rebuilds its state (nothing is published)",
                                registry=r)
        self.assigned_partitions = Gauge("fraudgraph_assigned_partitions",
                                         "Input partitions assigned to this worker (stage A runs for each)", registry=r)
        self.recovered_records = Gauge("fraudgraph_recovered_records",
                                       "Input records re-read since start to bring windows up to the committed offsets",
                                       registry=r)
        self.recovered_changes = Gauge("fraudgraph_recovered_changes",
                                       "Changes-topic records re-read since start to bring stage B up to its committed "
                                       "offset", registry=r)
        self.global_owner = Gauge("fraudgraph_global_stage_owner",
                                  "1 while this worker owns stage B (the graph, clusters and alerts: the changes "
                                  "topic's one partition)", registry=r)
        self.change_records = Counter("fraudgraph_change_records_total",
                                      "Records of the changes topic this worker sent (stage A) or applied (stage B)",
                                      ["direction"], registry=r)
        self.duplicate_batches = Counter("fraudgraph_duplicate_change_batches_total",
                                         "Change batches stage B already had (sent again by a partition's new owner)",
                                         registry=r)
        self.restore = Gauge("fraudgraph_restore",
                             "How the last partition or stage B this worker took got its state (a refusal stays): 1 on its outcome "
                             "(restored from a checkpoint; missing, corrupt, incompatible or forged: rebuilt from the "
                             "topic)", ["outcome"], registry=r)
        self.checkpoints = Counter("fraudgraph_checkpoints_total", "Checkpoints taken, by outcome (written, failed)",
                                   ["outcome"], registry=r)
        self.last_checkpoint = Gauge("fraudgraph_last_checkpoint_timestamp_seconds",
                                     "Wall time of the last checkpoint written", registry=r)
        self.checkpoint_seconds = Gauge("fraudgraph_checkpoint_duration_seconds",
                                        "Seconds the last checkpoint took (detection paused for the capture part)",
                                        ["part"], registry=r)
        self.checkpoint_bytes = Gauge("fraudgraph_checkpoint_bytes", "Size of the last checkpoint (all units held)",
                                      registry=r)
        self.stage_b_blocked = Gauge("fraudgraph_stage_b_blocked",
                                     "1 while stage B is assigned here but cannot run: no checkpoint of it could be "
                                     "adopted and the changes topic no longer holds its history (detection is blind)",
                                     registry=r)
        self.changes_start = Gauge("fraudgraph_changes_start_offset",
                                   "The changes topic's records before this offset were deleted by stage B's owner "
                                   "(covered by its checkpoints)", registry=r)
        self.ownership_conflict = Gauge(
            "fraudgraph_ownership_conflict",
            "1 when the input topic's partition count changed under the running worker (it stops)", registry=r)
        self.verdicts = Counter("fraudgraph_verdicts_total", "Verdicts consumed, by outcome", ["outcome"], registry=r)
        self.publish_errors = Counter("fraudgraph_publish_errors_total", "Failed sends to Kafka (retried)", ["topic_kind"],
                                      registry=r)
        self.last_processed = Gauge("fraudgraph_last_processed_timestamp_seconds",
                                    "Wall time a stage last processed a record", ["stage"], registry=r)
        self.watermark = Gauge("fraudgraph_event_time_watermark_seconds", "Event-time watermark", registry=r)
        self.consumer_lag = Gauge("fraudgraph_consumer_lag_messages", "Input records not yet consumed", registry=r)
        self.changes_lag = Gauge("fraudgraph_changes_lag_messages",
                                 "Changes-topic records stage B has not applied yet (on its owner; growing: stage B "
                                 "is the bottleneck)", registry=r)
        self.live_accounts = Gauge("fraudgraph_live_accounts", "Accounts with a live link", registry=r)
        self.live_links = Gauge("fraudgraph_live_links", "Live account-entity links", registry=r)
        self.live_entities = Gauge("fraudgraph_live_entities", "Devices, IPs and payment ids with a live link", registry=r)
        self.live_clusters = Gauge("fraudgraph_live_clusters", "Tracked clusters", registry=r)
        self.alerts = Counter("fraudgraph_alerts_total", "Alert publications", ["severity", "action"], registry=r)
        self.alerted_requests = Counter(
            "fraudgraph_alerted_requests_total",
            "API exchanges (within the window) of accounts in alerted clusters, counted as alerts are published",
            ["severity"], registry=r)
        self.open_alerts = Gauge("fraudgraph_open_alerts", "Open alerts", ["severity"], registry=r)
        self.members_added = Counter("fraudgraph_alerted_members_added_total",
                                     "Accounts added to clusters under an open alert", ["severity"], registry=r)
        self.detection_latency = Histogram(
            "fraudgraph_detection_latency_seconds",
            "Wall time from receiving the batch that made a cluster alert-worthy to publishing its alert",
            buckets=LATENCY_BUCKETS, registry=r)
        self.detection_event_lag = Histogram(
            "fraudgraph_detection_event_time_lag_seconds",
            "Event time from the event that made a cluster alert-worthy to the tick that alerted",
            buckets=LATENCY_BUCKETS, registry=r)
        self.batch_seconds = Histogram("fraudgraph_engine_batch_seconds", "Engine time per batch",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.audit_rows = Counter("fraudgraph_audit_rows_written_total", "Rows written to the audit store", registry=r)
        self.audit_errors = Counter("fraudgraph_audit_write_errors_total", "Failed audit flushes (rows kept, retried)",
                                    registry=r)
        for outcome in ("applied", "unknown_cluster", "malformed", "unsigned", "forged"):
            self.verdicts.labels(outcome)
        for severity in ("low", "medium", "high"):
            self.open_alerts.labels(severity)
            for action in ("opened", "escalated", "updated", "closed"):
                self.alerts.labels(severity, action)

    def live(self) -> bool:
        """Ready: recovery over, something assigned (input partitions or stage B), no partition-count change."""
        def value(gauge: Gauge) -> float:
            return float(next(iter(gauge.collect())).samples[0].value)

        return (value(self.recovering) == 0 and (value(self.assigned_partitions) > 0 or value(self.global_owner) > 0)
                and value(self.ownership_conflict) == 0)


def serve(metrics: Metrics, port: int, addr: str, ready: Callable[[], bool]) -> None:
    """``/metrics`` plus the probes Kubernetes and Docker use, on one port, in a daemon thread:
    ``/healthz`` is 200 while the process serves; ``/readyz`` is 200 only once the worker is live
    (recovery over, input partitions or stage B assigned, no partition-count change), else 503."""
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    metrics_app = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path in ("/healthz", "/readyz"):
            ok = path == "/healthz" or ready()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ok\n" if ok else b"not ready\n"]
        return metrics_app(environ, start_response)

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            pass

    server = make_server(addr, port, app, Server, handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, name="fraudgraph-http", daemon=True).start()
