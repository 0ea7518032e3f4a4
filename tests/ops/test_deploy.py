"""The deployment files are checked by real tools here: Kubernetes manifests rendered by kustomize
(kubectl) and the core kinds validated against Kubernetes' own schemas; the compose file parsed and
validated by docker-compose; the generated PrometheusRule and dashboard identical to their sources.
The custom resources (Strimzi, Prometheus operator) get structural checks of the fields we rely on:
their CRD schemas are not available offline here."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from streams.dev.broker import kafka_version
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("small", "large")
KUBERNETES_VERSION = "1.32.0"
CUSTOM = {"KafkaTopic", "KafkaUser", "ServiceMonitor", "PrometheusRule"}


def render(overlay: str) -> list[dict]:
    if shutil.which("kubectl"):
        tool = ["kubectl", "kustomize"]
    else:  # .ci/setup builds kustomize into the venv when there is no kubectl
        kustomize = shutil.which("kustomize") or shutil.which("kustomize", path=str(Path(sys.executable).parent))
        assert kustomize, "kubectl or kustomize renders the overlays (.ci/setup installs one)"
        tool = [kustomize, "build"]
    out = subprocess.run([*tool, str(K8S / "overlays" / overlay)], check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module", params=OVERLAYS)
def docs(request) -> list[dict]:
    return render(request.param)


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return doc


def test_core_kinds_validate_against_the_kubernetes_schemas(docs):
    core = [d for d in docs if d["kind"] not in CUSTOM]
    assert {d["kind"] for d in core} == {"ConfigMap", "StatefulSet", "Service", "NetworkPolicy", "PersistentVolumeClaim"}
    for doc in core:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert all(d["metadata"]["namespace"] == "fraudgraph" for d in docs)


def test_the_worker_runs_locked_down_with_probes_on_its_health_endpoints(docs):
    worker = one(docs, "StatefulSet", "fraudgraph-worker")
    assert worker["spec"]["replicas"] == 2, "two workers share the input; one of them holds stage B"
    pod = worker["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    (port,) = container["ports"]
    config = one(docs, "ConfigMap", "fraudgraph-config")["data"]
    assert port["containerPort"] == int(config["FRAUDGRAPH_METRICS_PORT"])
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["memory"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    for key in ("FRAUDGRAPH_KAFKA_PASSWORD_FILE", "FRAUDGRAPH_KAFKA_CA_FILE", "FRAUDGRAPH_VERDICT_KEY_FILE"):
        assert str(Path(config[key]).parent) in mounts, key
    assert str(Path(config["FRAUDGRAPH_AUDIT_DB"]).parent) in mounts and "/tmp" in mounts


def test_the_config_map_names_real_settings_and_every_topic_has_a_kafka_topic(docs):
    envs = {f.metadata["env"]: f for f in fields(Settings)}
    config = one(docs, "ConfigMap", "fraudgraph-config")["data"]
    assert set(config) <= set(envs), set(config) - set(envs)
    assert not any(envs[k].metadata["secret"] for k in config), "secrets are files, not config values"
    topics = {d["spec"].get("topicName", d["metadata"]["name"]): d["spec"] for d in docs if d["kind"] == "KafkaTopic"}
    for key in ("FRAUDGRAPH_EVENTS_TOPIC", "FRAUDGRAPH_DLQ_TOPIC", "FRAUDGRAPH_ALERTS_TOPIC", "FRAUDGRAPH_VERDICTS_TOPIC"):
        assert config[key] in topics, key
    assert f"{config['FRAUDGRAPH_APP_ID']}-__assignor-__leader" in topics
    changes = topics[config["FRAUDGRAPH_CHANGES_TOPIC"]]
    assert changes["partitions"] == 1 and int(changes["config"]["retention.ms"]) == -1, "stage B replays it whole"
    window = float(config["FRAUDGRAPH_WINDOW_DAYS"]) * 86400 + float(config["FRAUDGRAPH_LATENESS_SECONDS"])
    assert int(topics[config["FRAUDGRAPH_EVENTS_TOPIC"]]["config"]["retention.ms"]) >= window * 1000, \
        "a restarted worker rebuilds its window from the input topic"
    for spec in topics.values():
        assert isinstance(spec["partitions"], int) and spec["partitions"] >= 1 and spec["replicas"] >= 1


def test_each_component_has_a_kafka_user_and_only_analysts_write_verdicts(docs):
    users = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "KafkaUser"}
    assert set(users) == {"fraudgraph-worker", "fraudgraph-analyst", "fraudgraph-event-producer"}
    config = one(docs, "ConfigMap", "fraudgraph-config")["data"]
    assert config["FRAUDGRAPH_KAFKA_USERNAME"] in users
    writers = {name for name, spec in users.items() for acl in spec["authorization"]["acls"]
               if acl["resource"]["name"] == config["FRAUDGRAPH_VERDICTS_TOPIC"] and "Write" in acl["operations"]}
    assert writers == {"fraudgraph-analyst"}
    for spec in users.values():
        assert spec["authentication"]["type"] == "scram-sha-512"
        assert all(acl["resource"]["patternType"] in ("literal", "prefix") for acl in spec["authorization"]["acls"])


def test_monitoring_resources_select_the_worker_and_carry_the_rules_file(docs):
    service = one(docs, "Service", "fraudgraph-worker")
    monitor = one(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "fraudgraph.rules.yml").read_text())
    assert one(docs, "PrometheusRule")["spec"] == rules, "PrometheusRule and the rules file drifted apart"
    board = one(docs, "ConfigMap", "fraudgraph-dashboard")["data"]["fraudgraph.json"]
    assert json.loads(board) == json.loads((ROOT / "deploy" / "grafana" / "fraudgraph.json").read_text())


def test_the_generated_manifests_are_up_to_date():
    result = subprocess.run([sys.executable, str(K8S / "generate.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_every_pod_writes_one_audit_store_and_keeps_checkpoints_in_kafka(docs):
    """Any pod takes over any partition or stage B from the checkpoints topic (no volume of the dead pod
    needed); every pod appends to the one audit store investigators open, on a ReadWriteMany claim."""
    claim = one(docs, "PersistentVolumeClaim", "fraudgraph-audit")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    assert "volumeClaimTemplates" not in one(docs, "StatefulSet")["spec"], "no per-pod state to keep"
    (volume,) = [v for v in pod["volumes"] if v.get("persistentVolumeClaim")]
    assert volume["persistentVolumeClaim"]["claimName"] == "fraudgraph-audit"
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    config = one(docs, "ConfigMap", "fraudgraph-config")["data"]
    assert config["FRAUDGRAPH_AUDIT_DB"].startswith(mount["mountPath"] + "/")
    assert config["FRAUDGRAPH_CHECKPOINT_STORE"] == "kafka"
    topic = one(docs, "KafkaTopic", "fraudgraph-checkpoints")
    assert topic["spec"]["partitions"] == 1 and topic["spec"]["config"]["cleanup.policy"] == "compact"
    assert int(topic["spec"]["config"]["max.message.bytes"]) >= 2 * 512 * 1024  # a chunk and its overhead


def test_the_overlays_size_the_worker_differently():
    small, large = (one(render(o), "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["resources"]
                    for o in OVERLAYS)
    assert small != large


def test_compose_validates_and_runs_the_tests_kafka_version():
    assert shutil.which("docker-compose"), "docker-compose validates the compose file (.ci/setup installs it)"
    compose = ROOT / "docker" / "compose.yaml"
    result = subprocess.run(["docker-compose", "-f", str(compose), "config"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version()}"
    workers = [services[name] for name in services if name.startswith("worker")]
    assert len(workers) == 2, "the compose file runs two workers in one group"
    assert all(w["read_only"] is True and w["cap_drop"] == ["ALL"] for w in workers)
    assert workers[0]["volumes"] == workers[1]["volumes"], "one audit store for both workers"
    flags = [dict(zip(w["command"][1::2], w["command"][2::2], strict=False)) for w in workers]
    assert flags[0]["--audit-db"] == flags[1]["--audit-db"]
    assert flags[0]["--instance-id"] != flags[1]["--instance-id"], "each names its own segments"


def test_compose_validation_would_catch_a_mistake(tmp_path):
    broken = tmp_path / "compose.yaml"
    broken.write_text((ROOT / "docker" / "compose.yaml").read_text().replace("read_only: true", "read_only: sometimes"))
    result = subprocess.run(["docker-compose", "-f", str(broken), "config", "-q"], capture_output=True, text=True)
    assert result.returncode != 0


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*healthz", dockerfile, re.M)
    assert "cargo" in dockerfile, "the kernel is Rust: the build stage needs the toolchain"
