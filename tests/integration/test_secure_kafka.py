"""fraudgraph against a secured broker: SASL_SSL with SCRAM users, a CA made by the test, and ACLs.
The worker runs with its own principal; a client without credentials is refused, and only the
analysts' principal may write verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kafka import KafkaProducer

from streams.cli import main as cli
from streams.dev.localrun import wait_for
from tests.integration.conftest import WorkerHandle, contract_json
from tests.integration.secure_kafka import SecureKafka
from tests.integration.test_verdict_loop import cluster_of
from tests.unit.scenarios import farm

ROOT = Path(__file__).resolve().parents[2]
USERS = {"fraudgraph-worker": "worker-pass-6d1f", "fraudgraph-analyst": "analyst-pass-93ab"}


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    with SecureKafka(tmp_path_factory.mktemp("pki"), USERS) as kafka:
        yield kafka


def credentials(secure: SecureKafka, tmp_path, user: str) -> dict[str, str]:
    password_file = tmp_path / f"{user}.password"
    password_file.write_text(USERS[user] + "\n")
    return {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_username": user, "kafka_password_file": str(password_file), "kafka_ca_file": str(secure.ca)}


def manifest_acls(user: str, names: dict[str, str]) -> list[tuple[str, str, str, str]]:
    docs = yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "base" / "kafka-users.yaml").read_text())
    (spec,) = [d["spec"] for d in docs if d["kind"] == "KafkaUser" and d["metadata"]["name"] == user]
    pattern = {"literal": "LITERAL", "prefix": "PREFIXED"}
    return [(acl["resource"]["type"].upper(), names[acl["resource"]["name"]], pattern[acl["resource"]["patternType"]],
             op.upper()) for acl in spec["authorization"]["acls"] for op in acl["operations"]]


def flags(values: dict[str, str]) -> list[str]:
    return [x for k, v in values.items() for x in (f"--{k.replace('_', '-')}", v)]


def test_the_worker_runs_on_sasl_ssl_with_its_acls_and_only_analysts_give_verdicts(secure, tmp_path, capsys):
    w = WorkerHandle(secure, tmp_path, lateness_seconds=5.0, tick_seconds=10.0, bootstrap=secure.secure_bootstrap,
                     **credentials(secure, tmp_path, "fraudgraph-worker"))
    s = w.settings
    # The ACLs are the KafkaUsers' of deploy/kubernetes (topic and group names mapped to this test's).
    names = {"account-events": s.events_topic, "account-events-dlq": s.dlq_topic, "fraud-alerts": s.alerts_topic,
             "fraud-verdicts": s.verdicts_topic, "fraudgraph": s.app_id, "fraudgraph-analysts": f"{s.app_id}-analysts",
             "fraudgraph-intake": f"{s.app_id}-intake", "fraud-flagged-accounts": s.flagged_topic,
             "fraudgraph-changes": s.changes_topic_name}
    for user in USERS:
        secure.allow(user, manifest_acls(user, names))
    secure.create_topics([f"{s.app_id}-__assignor-__leader"])  # declared as a KafkaTopic there, too
    try:
        w.start()
        assert "SASL_SSL, SCRAM-SHA-512 as fraudgraph-worker" in w.log()
        assert USERS["fraudgraph-worker"] not in w.log()
        w.produce([contract_json(e) for e in farm("f", 120, devices=8)])  # the harness's own listener
        w.wait_consumed()
        w.settle()
        alerts = [json.loads(r.value) for r in w.read_topic(s.alerts_topic)]
        assert alerts and alerts[0]["action"] == "opened"
        ring = cluster_of(s.audit_db, "f0")

        # No credentials: the SASL_SSL listener does not talk to a plaintext client.
        with pytest.raises(Exception):  # noqa: B017 - kafka-python raises NoBrokersAvailable or a timeout
            producer = KafkaProducer(bootstrap_servers=secure.secure_bootstrap, max_block_ms=4000,
                                     request_timeout_ms=4000, api_version_auto_timeout_ms=4000)
            producer.send(s.verdicts_topic, b'{"cluster_id": "x", "verdict": "benign"}').get(timeout=4)
        common = ["--bootstrap", secure.secure_bootstrap, "--verdicts-topic", s.verdicts_topic,
                  "--audit-db", s.audit_db, "--analyst", "mallory"]
        capsys.readouterr()
        assert cli(["verdict", ring, "benign", *common]) == 2
        # The worker's principal can read verdicts but not write them.
        assert cli(["verdict", ring, "benign", *common, *flags(credentials(secure, tmp_path, "fraudgraph-worker"))]) == 2
        err = capsys.readouterr().err
        assert err.count("error:") == 2 and "not recorded" in err and "Traceback" not in err
        assert "TopicAuthorizationFailed" in err.splitlines()[-1]
        assert w.metric("fraudgraph_verdicts_total") == 0

        # The analysts' principal can.
        assert cli(["verdict", ring, "benign", *common[:-1], "alice",
                    *flags(credentials(secure, tmp_path, "fraudgraph-analyst"))]) == 0
        wait_for(lambda: w.metric('fraudgraph_verdicts_total{outcome="applied"}') == 1, 60, "the verdict", w.proc)
    finally:
        w.stop()
