"""A real broker with a SASL_SSL (SCRAM-SHA-512) listener, a certificate from a CA made here, and
ACLs enforced by KRaft's StandardAuthorizer — what a production Kafka looks like to fraudgraph.

The harness itself (topic creation, ACLs, producing test traffic) uses a second, PLAINTEXT listener
on loopback whose anonymous principal is a super user; fraudgraph's clients only see the SASL_SSL one.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from streams.dev.broker import DevKafka, free_port

MECHANISM = "SCRAM-SHA-512"


def make_pki(directory: Path) -> tuple[Path, Path]:
    """A self-signed CA and a broker certificate for 127.0.0.1 signed by it: (ca.pem, broker keystore .pem)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "broker.key", "broker.csr", "broker.pem"))

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
            "-subj", "/CN=fraudgraph-test-ca")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key))
    openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(cert), "-days", "2", "-extfile", str(ext))
    keystore = directory / "broker-keystore.pem"  # Kafka's PEM keystore: PKCS#8 key, then the chain
    keystore.write_text(key.read_text() + cert.read_text() + ca.read_text())
    return ca, keystore


class SecureKafka(DevKafka):
    def __init__(self, pki_dir: Path, users: dict[str, str]) -> None:
        super().__init__()
        self.secure_port = free_port()
        self.users = users
        self.ca, self.keystore = make_pki(pki_dir)

    @property
    def secure_bootstrap(self) -> str:
        return f"127.0.0.1:{self.secure_port}"

    def _write_config(self, workdir: Path) -> Path:
        props = super()._write_config(workdir)
        lines = [line for line in props.read_text().splitlines()
                 if not line.startswith(("listeners=", "advertised.listeners=", "listener.security.protocol.map="))]
        lines += [
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},SASL_SSL://127.0.0.1:{self.secure_port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port},SASL_SSL://127.0.0.1:{self.secure_port}",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            f"sasl.enabled.mechanisms={MECHANISM}",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={self.keystore}",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:ANONYMOUS",  # the harness's loopback PLAINTEXT listener and the controller
            "allow.everyone.if.no.acl.found=false",
            "",
        ]
        props.write_text("\n".join(lines))
        return props

    def _format_args(self) -> list[str]:
        args = []
        for name, password in sorted(self.users.items()):
            args += ["--add-scram", f"{MECHANISM}=[name={name},password={password}]"]
        return args

    def allow(self, principal: str, grants: list[tuple[str, str, str, str]]) -> None:
        """ACLs for ``User:principal``: (resource type, name, pattern LITERAL|PREFIXED, operation)."""
        from kafka import KafkaAdminClient
        from kafka.admin import (ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourcePattern,
                                 ResourceType)

        acls = [ACL(f"User:{principal}", "*", ACLOperation[op], ACLPermissionType.ALLOW,
                    ResourcePattern(ResourceType[kind], name, ACLResourcePatternType[pattern]))
                for kind, name, pattern, op in grants]
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            result = admin.create_acls(acls)
            if result.get("failed"):
                raise RuntimeError(f"ACLs refused: {result['failed']}")
        finally:
            admin.close()
