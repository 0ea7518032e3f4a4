"""``fraudgraph worker``: metrics endpoint, topics, checkpoint restore, then the Faust app.

Operational guarantees kept here:

* **any number of workers** — workers with the same ``--app-id`` share the input partitions (stage A)
  and one of them holds stage B (``streams/worker/app.py``); a worker stops (exit status 3) if the input
  topic's partition count changes under it;
* **restart and takeover bounded by state** — a partition or stage B handed to this worker adopts its
  newest checkpoint, whichever worker wrote it, and only the records after it are re-read
  (``streams/worker/checkpoints.py``); a graceful stop writes a last one;
* **recovery pages nobody** — while the state is restored and a partition's gap re-read,
  ``fraudgraph_recovering`` is 1 and no metric moves (``Pipeline.recovering``); nothing is published;
* **a bounded stop** — SIGTERM/SIGINT start Faust's graceful stop; if it has not finished after
  ``--stop-grace-seconds`` (a broker that is down can hold it for a minute), buffered audit rows are
  flushed and the process exits anyway: offsets not committed are re-read on the next start;
* **a quiet log** — a line repeated faster than once per ``RepeatFilter.interval`` (a broker that is
  down makes aiokafka log ~100 errors a second) is logged once per interval with a count.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from faust.worker import Worker

from streams.settings import Settings

log = logging.getLogger("fraudgraph")


class RepeatFilter(logging.Filter):
    """Lets a repeated line (same logger, level and message template) through once per ``interval``."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._last: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval:
            self._last[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.msg = f"{record.msg} [{last[1]} similar lines suppressed in the last {self.interval:.0f}s]"
        if len(self._last) > 10_000:
            self._last.clear()
        self._last[key] = (now, 0)
        return True


class RetriedErrorFilter(logging.Filter):
    """The Kafka client logs conditions it retries by itself as ERROR — a fresh broker's group coordinator
    not ready yet, a topic not created yet. Nothing is wrong, so they are logged as WARNING: an ERROR line
    in the worker's log means something an operator should look at."""

    RETRIED = ("GroupCoordinatorNotAvailable", "NotCoordinatorForGroup", "CoordinatorLoadInProgress",
               "UnknownTopicOrPartition", "LeaderNotAvailable")
    NOT_FOUND = re.compile(r"Topic \S+ not found")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and record.name.startswith(("aiokafka", "faust", "kafka", "mode")):
            text = record.getMessage()
            if any(name in text for name in self.RETRIED) or self.NOT_FOUND.search(text):
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class FraudgraphWorker(Worker):
    """Faust's worker with a bounded stop and a rate-limited log."""

    def __init__(self, app: Any, *, stop_grace: float, on_forced_exit: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        # A service, not a terminal session: Faust's progress spinner writes cursor codes ("\x1b[?25l")
        # even to a file or a pipe, which then sit in the log
        self.spinner = None
        self.stop_grace = stop_grace
        self.on_forced_exit = on_forced_exit
        self.exit_code = 0
        self._watchdog: threading.Timer | None = None

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        retried, repeat = RetriedErrorFilter(), RepeatFilter()
        for handler in logger.handlers:
            handler.addFilter(retried)
            handler.addFilter(repeat)

    def _schedule_shutdown(self, signal: signal.Signals) -> None:  # noqa: A002 - Faust's name
        if self._watchdog is None:
            self._watchdog = threading.Timer(self.stop_grace, self._force_exit)
            self._watchdog.daemon = True
            self._watchdog.start()
        super()._schedule_shutdown(signal)

    def request_stop(self, exit_code: int) -> None:
        self.exit_code = exit_code
        self._schedule_shutdown(signal.SIGTERM)

    def _force_exit(self) -> None:
        log.warning("graceful stop took longer than %.0fs (is the broker reachable?); exiting now", self.stop_grace)
        try:
            self.on_forced_exit()
        finally:
            logging.shutdown()
            os._exit(self.exit_code)


def run(settings: Settings, local_metrics: bool = False) -> int:
    from graph.engine import DetectionEngine
    from streams.worker.app import EXIT_OWNERSHIP, Topology
    from streams.sinks.audit import AuditStore
    from streams.sinks.metrics import Metrics, serve
    from streams.kafka_security import KafkaSecurityError, check, describe
    from streams.runtime.pipeline import Pipeline
    from streams.runtime.pseudonyms import from_key_file
    from streams.worker.checkpoint_topic import TopicStore
    from streams.worker.checkpoints import DirectoryStore, Store
    from streams.worker.recovery import BrokerUnreachable, TopologyError, ensure_topics, input_partitions, wait_for_broker
    from streams.worker.stages import GlobalStage
    from streams.runtime.keys import KeyFileError, load_key

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # The loop thread runs the kernel with the GIL released; the intake thread's Python work fits in
    # between. A 1 ms switch interval (CPython's default is 5 ms) keeps the loop from waiting long for it.
    sys.setswitchinterval(0.001)
    try:
        check(settings)
        if settings.checkpoint_store not in ("kafka", "disk"):
            raise KafkaSecurityError(f"--checkpoint-store must be kafka or disk, not {settings.checkpoint_store!r}")
        pseudonymiser = from_key_file(settings.pseudonymise_key_file)
        verdict_key = load_key(settings.verdict_key_file) if settings.verdict_key_file else None
        checkpoint_key = load_key(settings.checkpoint_key_file, "checkpoint key file") if settings.checkpoint_key_file else None
        wait_for_broker(settings, settings.broker_wait_seconds)
    except (KafkaSecurityError, KeyFileError, BrokerUnreachable) as exc:
        print(f"fraudgraph worker: error: {exc}", file=sys.stderr, flush=True)
        return 2
    if verdict_key is None:
        log.warning("verdicts are not authenticated (no --verdict-key-file): anyone who can write to %s can "
                    "mute an alert", settings.verdicts_topic)
    metrics = Metrics()
    if settings.metrics_port:
        serve(metrics, settings.metrics_port, "127.0.0.1" if local_metrics else "0.0.0.0", metrics.live)
    metrics.recovering.set(1)  # starting: nothing is live until the assigned partitions are checked
    try:
        ensure_topics(settings)
    except TopologyError as exc:
        print(f"fraudgraph worker: error: {exc}", file=sys.stderr, flush=True)
        return 2
    audit = AuditStore(settings.audit_db, settings.retention_days, writer=settings.instance_id)
    audit.create()
    partitions = input_partitions(settings)
    store: Store | None = None
    if settings.checkpoint_seconds > 0:
        store = (TopicStore(settings, checkpoint_key) if settings.checkpoint_store == "kafka"
                 else DirectoryStore(settings.checkpoint_path, checkpoint_key))
    # Every unit starts empty: a partition or stage B adopts its checkpoint when the group assigns it
    # (streams/worker/app.py, Topology.ensure), whichever worker wrote it.
    engine = DetectionEngine(settings.detection_config(), clock=time.time, partitions=partitions,
                             idle_seconds=settings.idle_flush_seconds, split=True)
    pipeline = Pipeline(engine, audit, metrics, live=True, pseudonymiser=pseudonymiser)
    pipeline.published = audit.published_versions()
    pipeline.feed_key = verdict_key  # flagged-account records are signed like verdicts
    global_stage = GlobalStage(pipeline, settings.changes_topic_name, verdict_key)
    state = f"checkpoints in {store.describe()}" if store is not None else "no checkpoints"
    print(f"fraudgraph worker: {settings.bootstrap} ({describe(settings)}) {settings.events_topic} -> "
          f"{settings.changes_topic_name} -> {settings.alerts_topic}; {partitions} input partition(s), a window each; "
          f"audit {settings.audit_db}; metrics :{settings.metrics_port}/metrics; {state}", flush=True)

    holder: dict[str, FraudgraphWorker] = {}
    stopping: list[str] = []

    def on_conflict(why: str, code: int = EXIT_OWNERSHIP) -> None:
        if stopping:
            return
        stopping.append(why)
        if code == EXIT_OWNERSHIP:
            metrics.ownership_conflict.set(1)
        log.critical("stopping: %s", why)
        pipeline.flush_audit()
        holder["worker"].request_stop(code)

    def flush_before_exit() -> None:
        try:
            pipeline.flush_audit()
        except Exception as exc:  # noqa: BLE001 - exiting anyway
            log.error("audit flush at exit failed: %s", exc)

    def final_checkpoint() -> None:
        """At a graceful stop (the agents have stopped, offsets are committed): the next start
        re-reads nothing."""
        if store is None or stopping:
            return
        if pipeline.step_open or global_stage.mid_batch:  # a step cut short: what it emitted may be unsent
            log.warning("no checkpoint at stop (a batch was cut short); the next start re-reads from the last one")
            return
        try:
            for unit, data, offset in topology.capture_held(final=True):
                store.save(unit, data, offset)
        except Exception as exc:  # noqa: BLE001 - exiting anyway; the last periodic checkpoint stands
            log.error("checkpoint at stop not written: %s", exc)
        finally:
            close = getattr(store, "close", None)
            if close is not None:
                close()

    topology = Topology(settings, pipeline, on_conflict, global_stage, store)
    app = topology.app
    worker = holder["worker"] = FraudgraphWorker(app, loglevel=settings.log_level, quiet=True,
                                                 stop_grace=settings.stop_grace_seconds,
                                                 on_forced_exit=flush_before_exit)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        final_checkpoint()
        return worker.exit_code or code
    final_checkpoint()
    return worker.exit_code
