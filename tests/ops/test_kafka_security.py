"""Kafka client security settings: checked up front, one clear line on a mistake, secrets never shown."""

import os
import subprocess
import sys

import pytest

from streams.cli import main as cli
from streams.kafka_security import KafkaSecurityError, check, describe, kafka_python_args
from streams.settings import Settings


def test_the_password_is_never_shown(tmp_path):
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_username="w", kafka_password="hunter2-secret")
    assert "hunter2-secret" not in repr(settings) and "hunter2-secret" not in describe(settings)
    env = dict(os.environ, FRAUDGRAPH_KAFKA_PASSWORD="hunter2-secret")
    helptext = subprocess.run([sys.executable, "-m", "streams.cli", "worker", "--help"], env=env,
                              capture_output=True, text=True, check=True).stdout
    assert "--kafka-password" in helptext and "FRAUDGRAPH_KAFKA_PASSWORD" in helptext
    assert "hunter2-secret" not in helptext


def test_the_password_file_wins_and_sasl_ssl_gets_a_verified_tls_context(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("from-the-file\n")
    args = kafka_python_args(Settings(kafka_security_protocol="sasl_ssl", kafka_username="w",
                                      kafka_password="from-env", kafka_password_file=str(secret)))
    assert args["sasl_plain_password"] == "from-the-file" and args["security_protocol"] == "SASL_SSL"
    assert args["sasl_mechanism"] == "SCRAM-SHA-512" and args["ssl_context"].check_hostname


@pytest.mark.parametrize("overrides, message", [
    ({"kafka_security_protocol": "TLS"}, "must be one of PLAINTEXT, SSL"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_username": "w", "kafka_password": "p",
      "kafka_sasl_mechanism": "GSSAPI"}, "--kafka-sasl-mechanism must be one of"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_username": "w"}, "needs --kafka-username and a password"),
    ({"kafka_security_protocol": "SSL", "kafka_ca_file": "/nonexistent/ca.pem"}, "--kafka-ca-file /nonexistent/ca.pem: no such file"),
    ({"kafka_security_protocol": "SSL", "kafka_cert_file": "c.pem"}, "go together"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_username": "w", "kafka_password_file": "/nonexistent/pw"},
     "cannot read --kafka-password-file"),
])
def test_mistakes_are_named(overrides, message):
    with pytest.raises(KafkaSecurityError, match=message):
        check(Settings(**overrides))


def test_a_cli_mistake_is_one_line(capsys):
    assert cli(["simulate", "--benign", "10", "--days", "1", "--kafka-security-protocol", "SASL_SSL"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fraudgraph simulate: error: SASL_SSL needs --kafka-username")
