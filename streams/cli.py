"""``fraudgraph``: one entry point, one subcommand per job. Every flag shows its env var in --help."""

from __future__ import annotations

import argparse
import csv
import gzip
import logging
import sys
import time
import uuid
from pathlib import Path

import orjson

from streams import settings as cfg


def _engine(settings: cfg.Settings):
    from graph.engine import DetectionEngine

    return DetectionEngine(settings.detection_config(), clock=time.time)


def cmd_worker(args: argparse.Namespace) -> int:
    from faust.worker import Worker
    from prometheus_client import start_http_server

    from streams.app import build_app, consumer_lag
    from streams.audit import AuditStore
    from streams.metrics import Metrics
    from streams.pipeline import Pipeline
    from streams.recovery import reapply_verdicts, rebuild

    settings = cfg.from_args(args)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    metrics = Metrics()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr="127.0.0.1" if args.local_metrics else "0.0.0.0",
                          registry=metrics.registry)
    audit = AuditStore(settings.audit_db, settings.retention_days)
    audit.create()
    pipeline = Pipeline(_engine(settings), audit, metrics)
    rebuilt = rebuild(pipeline, settings)
    if rebuilt:
        reapply_verdicts(pipeline, settings.audit_db)
    pipeline.flush_audit()
    print(f"fraudgraph worker: {settings.bootstrap} {settings.events_topic} -> {settings.alerts_topic}; "
          f"audit {settings.audit_db}; metrics :{settings.metrics_port}/metrics; rebuilt {rebuilt} records",
          flush=True)
    app = build_app(settings, pipeline, lag_probe=consumer_lag)
    Worker(app, loglevel=settings.log_level, quiet=True).execute_from_commandline()
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from streams.audit import AuditStore
    from streams.pipeline import Pipeline
    from streams.replay import replay

    settings = cfg.from_args(args)
    audit = AuditStore(settings.audit_db, settings.retention_days)
    audit.create()
    pipeline = Pipeline(_engine(settings), audit)
    dlq = Path(str(Path(settings.audit_db).resolve()) + ".dlq.jsonl")
    totals = replay([Path(p) for p in args.files], pipeline, dlq, progress=not args.quiet)
    print(f"replay: {totals['records']:,.0f} records in {totals['seconds']:.1f}s, {totals['alerts']:.0f} alert "
          f"publications, {totals['dead']:.0f} invalid (-> {dlq}); audit store {settings.audit_db}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from streams.simulate import SimConfig, default_rings, generate

    sim = SimConfig(seed=args.seed, benign_accounts=args.benign, days=args.days,
                    rings=default_rings(args.ring_scale, args.rings),
                    duplicate_rate=args.duplicates, late_rate=args.late)
    events, labels = generate(sim)
    count = 0
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        opener = gzip.open if out.name.endswith(".gz") else open
        with opener(out, "wb") as handle:
            for event in events:
                handle.write(orjson.dumps(event) + b"\n")
                count += 1
    else:
        from kafka import KafkaProducer

        settings = cfg.from_args(args)
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=20, batch_size=256 * 1024,
                                 acks="all")
        for event in events:
            producer.send(settings.events_topic, key=event["account_id"].encode(), value=orjson.dumps(event))
            count += 1
        producer.flush()
    if args.labels:
        write_labels(Path(args.labels), labels)
    rings = len({r for r, _k in labels.values() if r})
    print(f"simulate: {count:,} events, {len(labels):,} accounts ({rings} planted rings)"
          + (f" -> {args.out}" if args.out else " -> kafka") + (f"; labels {args.labels}" if args.labels else ""))
    return 0


def write_labels(path: Path, labels: dict[str, tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["account_id", "ring_id", "kind"])
        for account, (ring, kind) in sorted(labels.items()):
            writer.writerow([account, ring, kind])


def cmd_verdict(args: argparse.Namespace) -> int:
    from streams.audit import AuditStore

    settings = cfg.from_args(args)
    at = time.time()
    verdict_id = str(uuid.uuid4())
    audit = AuditStore(settings.audit_db, settings.retention_days)
    audit.create()
    audit.add_verdict(verdict_id, args.cluster_id, args.verdict, args.analyst, args.note or "", at)
    audit.flush()
    if not args.no_publish:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
        producer.send(settings.verdicts_topic, key=args.cluster_id.encode(), value=orjson.dumps({
            "verdict_id": verdict_id, "cluster_id": args.cluster_id, "verdict": args.verdict,
            "analyst": args.analyst, "note": args.note or "", "at": at}))
        producer.flush()
    print(f"verdict {args.verdict} on {args.cluster_id} recorded ({verdict_id})"
          + ("" if args.no_publish else f" and published to {settings.verdicts_topic}"))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from streams.audit import VIEWS, connect_read_only

    settings = cfg.from_args(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tables = args.tables.split(",") if args.tables else list(VIEWS)
    time_columns = {"alerts": "detected_at", "alert_history": "created_at", "clusters": "updated_at",
                    "cluster_lineage": "happened_at", "account_links": "last_seen", "verdicts": "decided_at",
                    "cluster_evidence": "last_seen", "alert_members": "added_at"}
    con = connect_read_only(settings.audit_db)
    try:
        for name in tables:
            if name not in VIEWS:
                raise SystemExit(f"unknown table {name!r}; choose from {', '.join(VIEWS)}")
            where, params = [], []
            column = time_columns.get(name)
            if column and args.since:
                where.append(f"{column} >= CAST(? AS TIMESTAMPTZ)")
                params.append(args.since)
            if column and args.until:
                where.append(f"{column} < CAST(? AS TIMESTAMPTZ)")
                params.append(args.until)
            sql = f"SELECT * FROM {name}" + (" WHERE " + " AND ".join(where) if where else "")
            table = con.execute(sql, params).to_arrow_table()
            pq.write_table(table, out / f"{name}.parquet")
            print(f"export: {name}: {table.num_rows} rows -> {out / (name + '.parquet')}")
    finally:
        con.close()
    return 0


def cmd_investigate(args: argparse.Namespace) -> int:
    from streams import queries as q
    from streams.audit import connect_read_only

    settings = cfg.from_args(args)
    con = connect_read_only(settings.audit_db)
    try:
        if args.what == "worst":
            print(q.render(*q.table(con, q.WORST_CLUSTERS, [args.limit])))
        elif args.what == "cluster":
            cid = args.args[0]
            print(f"cluster {cid}: binding entities"), print(q.render(*q.table(con, q.CLUSTER_EVIDENCE, [cid])))
            print("\ntimeline"), print(q.render(*q.table(con, q.CLUSTER_TIMELINE, [cid, cid])))
            print("\nmembers"), print(q.render(*q.table(con, q.CLUSTER_MEMBERS, [cid]), limit=args.limit))
        elif args.what == "account":
            acct = args.args[0]
            print(q.render(*q.table(con, q.ACCOUNT_CLUSTERS, [acct, acct])))
            print(), print(q.render(*q.table(con, q.ACCOUNT_LINKS, [acct])))
        elif args.what == "entity":
            kind, value = args.args[0], args.args[1]
            print(q.render(*q.table(con, q.ENTITY_ACCOUNTS, [kind, value]), limit=args.limit))
        elif args.what == "changes":
            hours = int(args.args[0]) if args.args else 1
            print(q.render(*q.table(con, q.RECENT_CHANGES, [hours]), limit=args.limit))
    finally:
        con.close()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fraudgraph", description="Streaming detector of coordinated fake-account networks.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("worker", help="run the Faust stream job")
    cfg.add_arguments(p, ["bootstrap", "app_id", "events_topic", "dlq_topic", "alerts_topic", "verdicts_topic",
                          "partitions", "audit_db", "audit_flush_seconds", "retention_days", "metrics_port",
                          "window_days", "lateness_seconds", "tick_seconds", "idle_flush_seconds", "batch_size",
                          "batch_seconds", "log_level"])
    p.add_argument("--local-metrics", action="store_true", help="serve /metrics on 127.0.0.1 only")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("replay", help="run the same engine over event files (.jsonl, .jsonl.gz, .parquet)")
    p.add_argument("files", nargs="+")
    cfg.add_arguments(p, ["audit_db", "retention_days", "window_days", "lateness_seconds", "tick_seconds"])
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("simulate", help="seeded traffic with planted rings, to a file or to Kafka")
    p.add_argument("--out", help="write JSON Lines here (.gz compresses); without it, produce to Kafka")
    p.add_argument("--labels", help="write account labels (CSV) here")
    p.add_argument("--benign", type=int, default=100_000, help="benign accounts (default 100000)")
    p.add_argument("--ring-scale", type=float, default=1.0, help="multiply planted ring sizes (default 1.0)")
    p.add_argument("--rings", type=int, default=None,
                   help="how many rings to plant, cycling through the kinds (default 16: every kind, several sizes)")
    p.add_argument("--days", type=float, default=7.0, help="event-time span (default 7)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--duplicates", type=float, default=0.0, help="share of events delivered twice")
    p.add_argument("--late", type=float, default=0.0, help="share of events delivered up to 3 minutes late")
    cfg.add_arguments(p, ["bootstrap", "events_topic"])
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("verdict", help="record an analyst verdict and send it to the running worker")
    p.add_argument("cluster_id")
    p.add_argument("verdict", choices=["confirmed", "benign"])
    p.add_argument("--note", default="", help="why")
    p.add_argument("--analyst", default=__import__("getpass").getuser(), help="who (default: this user)")
    p.add_argument("--no-publish", action="store_true", help="record in the audit store only")
    cfg.add_arguments(p, ["bootstrap", "verdicts_topic", "audit_db"])
    p.set_defaults(func=cmd_verdict)

    p = sub.add_parser("export", help="write audit tables (optionally a time range) as Parquet")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tables", help="comma-separated view names (default: all)")
    p.add_argument("--since", help="RFC 3339 start (inclusive)")
    p.add_argument("--until", help="RFC 3339 end (exclusive)")
    cfg.add_arguments(p, ["audit_db"])
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("investigate", help="answer the common questions as tables")
    p.add_argument("what", choices=["worst", "cluster", "account", "entity", "changes"],
                   help="worst | cluster ID | account ID | entity TYPE VALUE | changes [HOURS]")
    p.add_argument("args", nargs="*")
    p.add_argument("--limit", type=int, default=20)
    cfg.add_arguments(p, ["audit_db"])
    p.set_defaults(func=cmd_investigate)

    p = sub.add_parser("demo", help="end to end on local defaults: Kafka, worker, simulated rings, report")
    p.add_argument("--benign", type=int, default=20_000, help="benign accounts (default 20000)")
    p.add_argument("--ring-scale", type=float, default=0.15, help="planted ring size multiplier (default 0.15)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workdir", default="./data/demo", help="where the demo keeps its files")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `fraudgraph investigate ... | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
