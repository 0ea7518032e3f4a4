"""``fraudgraph``: one entry point, one subcommand per job. Every flag shows its env var in --help."""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

from streams import settings as cfg
from streams.kafka_security import KafkaSecurityError

if TYPE_CHECKING:
    import duckdb

    from graph.engine import DetectionEngine
    from streams.runtime.pseudonyms import Pseudonymiser

ENTITY_TYPES = ("device", "payment", "ip", "template")


class CliError(Exception):
    """A mistake on the command line or a missing input: one line on stderr, exit status 2."""


def _engine(settings: cfg.Settings) -> DetectionEngine:
    from graph.engine import DetectionEngine

    return DetectionEngine(settings.detection_config(), clock=time.time, split=True)


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.worker.runner import run

    return run(cfg.from_args(args), local_metrics=args.local_metrics)


def _pseudonymiser(settings: cfg.Settings) -> Pseudonymiser | None:
    from streams.runtime.pseudonyms import from_key_file
    from streams.runtime.keys import KeyFileError

    try:
        return from_key_file(settings.pseudonymise_key_file)
    except KeyFileError as exc:
        raise CliError(str(exc)) from None


def cmd_replay(args: argparse.Namespace) -> int:
    from streams.sinks.audit import AuditStore
    from streams.runtime.pipeline import Pipeline
    from streams.replay import replay

    settings = cfg.from_args(args)
    for name in args.files:
        if not Path(name).is_file():
            raise CliError(f"no such input file: {name}")
    audit = AuditStore(settings.audit_db, settings.retention_days)
    audit.create()
    pipeline = Pipeline(_engine(settings), audit, pseudonymiser=_pseudonymiser(settings), feed=False)
    dlq = Path(str(Path(settings.audit_db).resolve()) + ".dlq.jsonl")
    gc.freeze()  # the modules and settings loaded so far are never garbage: later collections skip them
    gc.set_threshold(20_000, 20, 20)  # a batch makes tens of thousands of short-lived objects, few of them cyclic
    totals = replay([Path(p) for p in args.files], pipeline, dlq, progress=not args.quiet)
    print(f"replay: {totals['records']:,.0f} records in {totals['seconds']:.1f}s, {totals['alerts']:.0f} alert "
          f"publications, {totals['dead']:.0f} invalid (-> {dlq}); audit store {settings.audit_db}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from streams.dev.simulate import (NoBroker, SimConfig, default_rings, generate, produce_events, write_events,
                                  write_labels)

    from streams.dev.sim.families import FAMILIES, HELD_OUT, TUNED

    chosen = {"": (), "all": FAMILIES, "held-out": HELD_OUT, "tuned": TUNED}.get(args.families)
    if chosen is None:
        chosen = tuple(f.strip() for f in args.families.split(","))
        unknown = [f for f in chosen if f not in FAMILIES]
        if unknown:
            raise CliError(f"--families: unknown {', '.join(unknown)}; choose all, held-out, tuned or from "
                           f"{', '.join(FAMILIES)}")
    sim = SimConfig(seed=args.seed, benign_accounts=args.benign, days=args.days,
                    rings=default_rings(args.ring_scale, args.rings),
                    duplicate_rate=args.duplicates, late_rate=args.late, families=chosen,
                    family_instances=args.family_instances, family_max_size=args.family_max_size)
    out = Path(args.out) if args.out else None
    if out is not None and out.is_dir():
        raise CliError(f"--out {out} is a folder; give a file name (events.jsonl or events.jsonl.gz)")
    settings = None
    if out is None:
        from streams.kafka_security import check

        settings = cfg.from_args(args)
        check(settings)  # a security setting that cannot work fails here, before any work
    target = f"{out}" if settings is None else f"topic {settings.events_topic} at {settings.bootstrap}"
    print(f"simulate: {args.benign:,} benign accounts over {args.days:g} days with planted rings -> {target} "
          "(--benign and --days make it smaller)", file=sys.stderr)
    events, labels = generate(sim)
    if out is not None:
        count = write_events(out, events)
        size = f" ({out.stat().st_size / 1e6:,.0f} MB)"
    else:
        assert settings is not None
        try:
            count = produce_events(events, settings)
        except NoBroker as exc:
            raise CliError(f"{exc}; start one (python -m streams.dev.broker run) or write a file with --out") from None
        size = ""
    if args.labels:
        write_labels(Path(args.labels), labels)
    rings = len({r for r, _k in labels.values() if r})
    print(f"simulate: {count:,} events, {len(labels):,} accounts ({rings} planted rings)"
          + (f" -> {out}{size}" if out is not None else " -> kafka") + (f"; labels {args.labels}" if args.labels else ""))
    return 0


def analyst_name(explicit: str | None) -> str:
    """Who gives a verdict: the flag or FRAUDGRAPH_ANALYST, else the OS user, else ``uid-<uid>``
    (a container user with no passwd entry has no name)."""
    if explicit:
        return explicit
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def cmd_verdict(args: argparse.Namespace) -> int:
    from streams.sinks.audit import AuditStore
    from streams.runtime.keys import KeyFileError, load_key, sign

    settings = cfg.from_args(args)
    with open_store(settings.audit_db) as con:
        known = con.execute("SELECT count(*) FROM (SELECT cluster_id FROM clusters UNION ALL "
                            "SELECT cluster_id FROM cluster_lineage) WHERE cluster_id = ?",
                            [args.cluster_id]).fetchall()[0][0]
    if not known:
        raise CliError(f"cluster {args.cluster_id} not found in {settings.audit_db}")
    analyst = analyst_name(settings.analyst)
    at = time.time()
    verdict_id = str(uuid.uuid4())
    if not args.no_publish:
        verdict = {"verdict_id": verdict_id, "cluster_id": args.cluster_id, "verdict": args.verdict,
                   "analyst": analyst, "note": args.note or "", "at": at}
        if settings.verdict_key_file:
            try:
                verdict = sign(verdict, load_key(settings.verdict_key_file))
            except KeyFileError as exc:
                raise CliError(f"{exc}; the verdict was not recorded") from None
        publish_verdict(settings, verdict)
    # Recorded only once published: a retry after a failed publish leaves one row, not two.
    audit = AuditStore(settings.audit_db, settings.retention_days)
    audit.create()
    audit.add_verdict(verdict_id, args.cluster_id, args.verdict, analyst, args.note or "", at)
    audit.flush()
    print(f"verdict {args.verdict} on {args.cluster_id} by {analyst} recorded ({verdict_id})"
          + ("" if args.no_publish else f" and published to {settings.verdicts_topic}"))
    return 0


def publish_verdict(settings: cfg.Settings, verdict: dict[str, Any], timeout_s: float = 10.0) -> None:
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from streams.kafka_security import kafka_python_args

    ms = int(timeout_s * 1000)
    try:
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap, acks="all", max_block_ms=ms,
                                 request_timeout_ms=ms, bootstrap_timeout_ms=ms, **kafka_python_args(settings))
    except KafkaError as exc:
        raise CliError(f"could not reach Kafka at {settings.bootstrap} within {timeout_s:.0f}s ({exc}); "
                       "the verdict was not recorded, run the command again") from None
    try:
        producer.send(settings.verdicts_topic, key=verdict["cluster_id"].encode(),
                      value=orjson.dumps(verdict)).get(timeout=timeout_s)
    except KafkaError as exc:
        raise CliError(f"could not publish to {settings.verdicts_topic} at {settings.bootstrap} ({exc}); "
                       "the verdict was not recorded, run the command again") from None
    finally:
        producer.close(timeout=2)


@contextmanager
def open_store(db_path: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """The audit store, read-only, or one clear error."""
    import duckdb

    from streams.sinks.audit import connect_read_only

    if not Path(db_path).exists():
        raise CliError(f"no audit store at {db_path}: run `fraudgraph worker` or `fraudgraph replay` first, "
                       "or pass --audit-db")
    try:
        con = connect_read_only(db_path)
    except duckdb.Error as exc:
        raise CliError(f"cannot open the audit store {db_path}: {str(exc).splitlines()[0]}") from None
    try:
        yield con
    finally:
        con.close()


def parse_time(text: str | None, flag: str) -> float | None:
    """An RFC 3339 time from a flag, as epoch seconds."""
    from streams.contract import InvalidEvent, parse_ts

    if text is None:
        return None
    try:
        return parse_ts(text)
    except InvalidEvent:
        raise CliError(f"{flag} {text!r} is not an RFC 3339 time (e.g. 2026-01-05T00:00:00Z)") from None


def cmd_export(args: argparse.Namespace) -> int:
    from streams.sinks.audit import EXPORT_TIME_COLUMNS, VIEWS

    settings = cfg.from_args(args)
    tables = [t.strip() for t in args.tables.split(",")] if args.tables else list(VIEWS)
    for name in tables:
        if name not in VIEWS:
            raise CliError(f"unknown table {name!r}; choose from {', '.join(VIEWS)}")
    since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open_store(settings.audit_db) as con:
        for name in tables:
            where = []
            column = EXPORT_TIME_COLUMNS.get(name)
            if column and since is not None:
                where.append(f"{column} >= make_timestamptz({int(since * 1_000_000)})")
            if column and until is not None:
                where.append(f"{column} < make_timestamptz({int(until * 1_000_000)})")
            sql = f"SELECT * FROM {name}" + (" WHERE " + " AND ".join(where) if where else "")
            target = out / f"{name}.parquet"
            con.execute(f"COPY ({sql}) TO '{target}' (FORMAT parquet)")
            rows = con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchall()[0][0]
            print(f"export: {name}: {rows} rows -> {target}")
    return 0


def cmd_investigate(args: argparse.Namespace) -> int:
    from streams.sinks.audit import queries as q

    settings = cfg.from_args(args)
    need = {"worst": (0, 0), "cluster": (1, 1), "account": (1, 1), "entity": (2, 2), "changes": (0, 1)}[args.what]
    usage = {"worst": "investigate worst", "cluster": "investigate cluster CLUSTER_ID",
             "account": "investigate account ACCOUNT_ID", "entity": f"investigate entity {{{','.join(ENTITY_TYPES)}}} VALUE",
             "changes": "investigate changes [HOURS]"}[args.what]
    if not need[0] <= len(args.args) <= need[1]:
        raise CliError(f"usage: fraudgraph {usage}")
    if args.graph:
        from streams.cli.graph_export import GraphExportError, check

        if args.what != "cluster":
            raise CliError("--graph goes with `investigate cluster CLUSTER_ID`")
        try:
            check(Path(args.graph))
        except GraphExportError as exc:
            raise CliError(str(exc)) from None
    with open_store(settings.audit_db) as con:
        if args.what == "worst":
            print(q.render(*q.table(con, q.WORST_CLUSTERS, [args.limit])))
        elif args.what == "cluster":
            cid = args.args[0]
            if not q.table(con, q.CLUSTER_EXISTS, [cid, cid])[1]:
                raise CliError(f"cluster {cid} not found in {settings.audit_db}")
            columns, summary = q.table(con, q.CLUSTER_SUMMARY, [cid])
            if summary:
                row = dict(zip(columns, summary[0]))
                print(q.headline(cid, row["size"], row["requests"], row["tokens_out"], settings.window_days))
                if row.get("summary"):
                    print(f"why one operation: {row['summary']}")
            print(f"cluster {cid}"), print(q.render([c for c in columns if c != "summary"],
                                                     [r[:-1] for r in summary] if summary else summary))
            print("\nevidence (binding devices, cards and lockstep cohorts first; then owned IPs and templates)")
            print(q.render(*q.table(con, q.CLUSTER_EVIDENCE, [cid])))
            shared = q.table(con, q.CLUSTER_LINKS, [cid])[1]
            print("\nshared infrastructure (used by other clusters too; weighed, never joined)")
            print("\n".join(q.shared_lines(shared)) if shared else "(none)")
            print("\ntimeline"), print(q.render(*q.table(con, q.CLUSTER_TIMELINE, [cid, cid])))
            print("\nmembers"), print(q.render(*q.table(con, q.CLUSTER_MEMBERS, [cid]), limit=args.limit))
            if args.graph and Path(args.graph).suffix.lower() == ".html":
                from streams.sinks.audit import page as operation_page

                page = operation_page.write(con, cid, args.graph)
                print(f"\npage: {args.graph} ({operation_page.describe(page)}; open it in a browser, it needs no network)")
            elif args.graph:
                from streams.cli.graph_export import GraphExportError, describe, operation_graph, write

                try:
                    graph = operation_graph(con, cid)
                    write(graph, Path(args.graph))
                except GraphExportError as exc:
                    raise CliError(str(exc)) from None
                print(f"\ngraph: {args.graph} ({describe(graph)})")
        elif args.what == "account":
            acct = args.args[0]
            clusters, links = q.table(con, q.ACCOUNT_CLUSTERS, [acct, acct]), q.table(con, q.ACCOUNT_LINKS, [acct])
            if not clusters[1] and not links[1]:
                raise CliError(f"account {acct} not found in any cluster or alert of {settings.audit_db}")
            print(f"account {acct}"), print(q.render(*clusters))
            print("\nlinks"), print(q.render(*links))
        elif args.what == "entity":
            kind, value = args.args
            if kind not in ENTITY_TYPES:
                raise CliError(f"unknown entity type {kind!r}; choose from {', '.join(ENTITY_TYPES)}")
            pseudonymiser = _pseudonymiser(settings)
            if pseudonymiser is not None:  # the store holds pseudonyms: look the value up by its own
                value = pseudonymiser.value(kind, value)
            columns, rows = q.table(con, q.ENTITY_ACCOUNTS, [kind, value])
            if not rows:
                raise CliError(f"{kind} {value} not found among the links of alerted accounts")
            print(f"{kind} {value}"), print(q.render(columns, rows, limit=args.limit))
        else:
            try:
                hours = int(args.args[0]) if args.args else 1
            except ValueError:
                hours = 0
            if hours <= 0:
                raise CliError(f"HOURS must be a positive whole number, not {args.args[0]!r}")
            print(q.render(*q.table(con, q.RECENT_CHANGES, [hours]), limit=args.limit))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.dev.demo import run_demo

    return run_demo(args)


class OneLineParser(argparse.ArgumentParser):
    """A usage mistake is one line on stderr (and ``--help`` the way to the rest), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="fraudgraph", description="Streaming detector of coordinated fake-account networks.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("worker", help="run the Faust stream job")
    cfg.add_arguments(p, ["bootstrap", "app_id", "events_topic", "dlq_topic", "alerts_topic", "flagged_topic",
                          "verdicts_topic", "changes_topic",
                          "partitions", "instance_id", "broker_wait_seconds", "audit_db", "audit_flush_seconds", "audit_backlog_rows", "retention_days", "metrics_port",
                          "window_days", "lateness_seconds", "tick_seconds", "idle_flush_seconds", "batch_size",
                          "batch_seconds", "log_level", "max_skew_seconds", "stop_grace_seconds", "verdict_key_file", "pseudonymise_key_file",
                          "checkpoint_seconds", "checkpoint_store", "checkpoint_dir", "checkpoint_key_file",
                          *cfg.KAFKA_SECURITY])
    p.add_argument("--local-metrics", action="store_true", help="serve /metrics on 127.0.0.1 only")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("replay", help="run the same engine over event files (.jsonl, .jsonl.gz, .parquet)")
    p.add_argument("files", nargs="+")
    cfg.add_arguments(p, ["audit_db", "retention_days", "window_days", "lateness_seconds", "tick_seconds",
                          "max_skew_seconds", "pseudonymise_key_file"])
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
    p.add_argument("--families", default="", help="also plant red-team families: all, held-out, tuned or a "
                   "comma-separated list (streams/dev/sim/families.py)")
    p.add_argument("--family-instances", type=int, default=2, help="instances per family (default 2)")
    p.add_argument("--family-max-size", type=int, default=3000,
                   help="largest family instance; sizes are drawn log-uniform from 100 (default 3000)")
    cfg.add_arguments(p, ["bootstrap", "events_topic", *cfg.KAFKA_SECURITY])
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("verdict", help="record an analyst verdict and send it to the running worker")
    p.add_argument("cluster_id")
    p.add_argument("verdict", choices=["confirmed", "benign"])
    p.add_argument("--note", default="", help="why")
    p.add_argument("--no-publish", action="store_true", help="record in the audit store only")
    cfg.add_arguments(p, ["analyst", "bootstrap", "verdicts_topic", "audit_db", "verdict_key_file", *cfg.KAFKA_SECURITY])
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
                   help="worst | cluster ID | account ID | entity TYPE VALUE (TYPE: device, payment, ip) | "
                        "changes [HOURS]")
    p.add_argument("args", nargs="*")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--graph", metavar="FILE", help="with `cluster`: also write the operation as a graph "
                   "(.graphml for Cytoscape and yEd, .gexf for Gephi) or as a page to open (.html)")
    cfg.add_arguments(p, ["audit_db", "pseudonymise_key_file"])
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
        code: int = args.func(args)
        return code
    except (CliError, KafkaSecurityError) as exc:
        print(f"fraudgraph {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `fraudgraph investigate ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if os.environ.get("FRAUDGRAPH_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"fraudgraph {args.command}: error: {type(exc).__name__}: {first} (FRAUDGRAPH_DEBUG=1 shows the "
              "traceback)", file=sys.stderr)
        return 1

