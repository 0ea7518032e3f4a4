"""A real single-node Apache Kafka (KRaft) broker on a free loopback port, for tests and the demo.

The jars come from Maven Central through ``streams/dev/kafka/pom.xml`` (shipped in the wheel) (``mvn dependency:copy-dependencies``)
and are cached under ``~/.cache/fraudgraph/kafka-<version>``; each broker gets a fresh temp dir for its
log and metadata and is stopped (and the dir removed) on ``stop()``.

    python -m streams.dev.broker fetch      # resolve the jars once (CI does this up front)
    python -m streams.dev.broker run        # start a broker in the foreground, print its address
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "kafka"  # package data: present in the wheel too
POM = ASSETS / "pom.xml"
LOG4J_CONFIG = ASSETS / "log4j2.properties"


class DevKafkaError(RuntimeError):
    """The local broker could not be fetched or did not come up."""


def kafka_version() -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    if not match:
        raise DevKafkaError(f"no <kafka.version> in {POM}")
    return match.group(1)


def jar_dir() -> Path:
    cache = Path(os.environ.get("FRAUDGRAPH_CACHE", Path.home() / ".cache" / "fraudgraph"))
    return cache / f"kafka-{kafka_version()}"


def fetch_jars() -> Path:
    """Resolve kafka_2.13 and its runtime dependencies with Maven; a no-op once cached."""
    target = jar_dir()
    marker = target / ".complete"
    if marker.exists():
        return target
    if shutil.which("mvn") is None:
        raise DevKafkaError("Maven (mvn) is not on PATH; it resolves the Kafka jars from Maven Central")
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fraudgraph-mvn-") as work:
        # Maven writes target/ beside the pom: a copy keeps an installed package's folder untouched
        pom = Path(work) / "pom.xml"
        shutil.copyfile(POM, pom)
        cmd = [
            "mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={target}", "-DincludeScope=runtime",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise DevKafkaError(f"mvn failed ({result.returncode}):\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
    marker.write_text(kafka_version())
    return target


def new_cluster_id() -> str:
    """A random KRaft cluster id (22 url-safe base64 characters). Kafka's storage tool reads an id
    that starts with "-" as an option, so those are drawn again (1 draw in 64 would hit it).

    >>> all(not new_cluster_id().startswith("-") for _ in range(2000))
    True
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class DevKafka:
    """One broker process. Use as a context manager or call start()/stop()."""

    def __init__(self, port: int | None = None, heap_mb: int = 512, partitions: int = 1) -> None:
        self.port = port or free_port()
        self.controller_port = free_port()
        self.heap_mb = heap_mb
        self.partitions = partitions
        self.workdir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self, workdir: Path) -> Path:
        props = workdir / "server.properties"
        props.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={workdir / 'data'}",
            f"num.partitions={self.partitions}",
            "auto.create.topics.enable=true",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=-1",
            "",
        ]))
        return props

    def _format_args(self) -> list[str]:
        """Extra arguments for the storage format (e.g. ``--add-scram`` users); none here."""
        return []

    def _java(self, jars: Path, *args: str) -> list[str]:
        return [
            "java", f"-Xmx{self.heap_mb}m", f"-Xms{min(self.heap_mb, 256)}m",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self.workdir}",
            "-cp", f"{jars}/*", *args,
        ]

    def start(self, timeout: float = 90.0) -> DevKafka:
        jars = fetch_jars()
        self.workdir = Path(tempfile.mkdtemp(prefix="fraudgraph-kafka-"))
        props = self._write_config(self.workdir)
        cluster_id = new_cluster_id()
        fmt = subprocess.run(
            self._java(jars, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props),
                       *self._format_args()),
            capture_output=True, text=True,
        )
        if fmt.returncode != 0:
            raise DevKafkaError(f"kafka storage format failed:\n{fmt.stdout}{fmt.stderr}")
        return self._launch(timeout)

    def halt(self) -> None:
        """Stop the broker process and keep its data (``resume`` starts it again, same ports)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def resume(self, timeout: float = 90.0) -> DevKafka:
        """Start a halted broker again on its data."""
        if self.workdir is None:
            raise DevKafkaError("resume: the broker was never started")
        return self._launch(timeout)

    def _launch(self, timeout: float) -> DevKafka:
        assert self.workdir is not None
        jars = fetch_jars()
        log = open(self.workdir / "broker.out", "ab")
        self.process = subprocess.Popen(
            self._java(jars, "kafka.Kafka", str(self.workdir / "server.properties")), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DevKafkaError(f"broker exited with {self.process.returncode}; see {self.workdir}/broker.out")
            if _port_open(self.port) and self._metadata_ready():
                return self
            time.sleep(0.3)
        self.stop()
        raise DevKafkaError(f"broker not ready on {self.bootstrap} after {timeout}s")

    def _metadata_ready(self) -> bool:
        from kafka import KafkaAdminClient  # local import: only the running broker needs it

        try:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
        except Exception:  # noqa: BLE001 - not up yet, any error means "retry"
            return False
        try:
            admin.list_topics()
            return True
        except Exception:  # noqa: BLE001
            return False
        finally:
            admin.close()

    def create_topics(self, names: list[str], partitions: int | None = None) -> None:
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            for name in names:
                try:
                    admin.create_topics([NewTopic(name, partitions or self.partitions, 1)])
                except TopicAlreadyExistsError:
                    pass
        finally:
            admin.close()

    def stop(self) -> None:
        self.halt()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> DevKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.dev.broker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["fetch", "run"])
    parser.add_argument("--port", type=int, default=None, help="broker port (default: a free one)")
    args = parser.parse_args(argv)
    if args.action == "fetch":
        print(fetch_jars())
        return 0
    # SIGTERM (a terminal closed, `kill`, a supervisor) stops the broker and removes its data as Ctrl-C
    # does: the JVM runs in a session of its own and would otherwise outlive this process
    signal.signal(signal.SIGTERM, _stop_on_signal)
    broker = DevKafka(port=args.port)
    try:
        broker.start()
        print(f"kafka {kafka_version()} on {broker.bootstrap} (data in {broker.workdir}; Ctrl-C or SIGTERM stops it)",
              flush=True)
        while broker.process and broker.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    return 0


def _stop_on_signal(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
