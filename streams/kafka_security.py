"""How every Kafka client of fraudgraph authenticates: one place turns the ``kafka_*`` settings into
kafka-python keyword arguments, librdkafka configuration and Faust (aiokafka) credentials, and checks them first so a
mistake is one clear line, not a client's stack trace. The password never appears in a message.

    >>> from streams.settings import Settings
    >>> kafka_python_args(Settings())
    {'security_protocol': 'PLAINTEXT'}
    >>> describe(Settings(kafka_security_protocol="SASL_SSL", kafka_username="w", kafka_password="s3cret"))
    'SASL_SSL, SCRAM-SHA-512 as w, system CAs'
    >>> check(Settings(kafka_security_protocol="SASL_SSL"))
    Traceback (most recent call last):
    ...
    streams.kafka_security.KafkaSecurityError: SASL_SSL needs --kafka-username and a password (--kafka-password-file or FRAUDGRAPH_KAFKA_PASSWORD)
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from streams.settings import Settings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSecurityError(ValueError):
    """The Kafka security settings are inconsistent or name files that cannot be read."""


def password(settings: Settings) -> str:
    if settings.kafka_password_file:
        try:
            return Path(settings.kafka_password_file).read_text().strip()
        except OSError as exc:
            raise KafkaSecurityError(f"cannot read --kafka-password-file {settings.kafka_password_file}: "
                                     f"{exc.strerror or exc}") from None
    return settings.kafka_password


def check(settings: Settings) -> None:
    protocol = settings.kafka_security_protocol.upper()
    if protocol not in PROTOCOLS:
        raise KafkaSecurityError(f"--kafka-security-protocol must be one of {', '.join(PROTOCOLS)}, "
                                 f"not {settings.kafka_security_protocol!r}")
    if protocol.startswith("SASL"):
        if settings.kafka_sasl_mechanism.upper() not in MECHANISMS:
            raise KafkaSecurityError(f"--kafka-sasl-mechanism must be one of {', '.join(MECHANISMS)}, "
                                     f"not {settings.kafka_sasl_mechanism!r}")
        if not settings.kafka_username or not password(settings):
            raise KafkaSecurityError(f"{protocol} needs --kafka-username and a password "
                                     "(--kafka-password-file or FRAUDGRAPH_KAFKA_PASSWORD)")
    if bool(settings.kafka_cert_file) != bool(settings.kafka_key_file):
        raise KafkaSecurityError("--kafka-cert-file and --kafka-key-file go together (mutual TLS)")
    for flag, path in (("--kafka-ca-file", settings.kafka_ca_file), ("--kafka-cert-file", settings.kafka_cert_file),
                       ("--kafka-key-file", settings.kafka_key_file)):
        if path and not Path(path).is_file():
            raise KafkaSecurityError(f"{flag} {path}: no such file")


def uses_tls(settings: Settings) -> bool:
    return settings.kafka_security_protocol.upper() in ("SSL", "SASL_SSL")


def ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.kafka_ca_file or None)
    if settings.kafka_cert_file:
        context.load_cert_chain(settings.kafka_cert_file, settings.kafka_key_file)
    return context


def kafka_python_args(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for kafka-python's KafkaProducer / KafkaConsumer / KafkaAdminClient."""
    check(settings)
    protocol = settings.kafka_security_protocol.upper()
    args: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL"):
        args.update(sasl_mechanism=settings.kafka_sasl_mechanism.upper(), sasl_plain_username=settings.kafka_username,
                    sasl_plain_password=password(settings))
    if uses_tls(settings):
        args["ssl_context"] = ssl_context(settings)
    return args


def librdkafka_config(settings: Settings) -> dict[str, Any]:
    """Configuration for a librdkafka client (confluent-kafka): the worker's batch intake.

    >>> librdkafka_config(Settings(bootstrap="k:9092"))
    {'bootstrap.servers': 'k:9092', 'security.protocol': 'plaintext'}
    """
    check(settings)
    protocol = settings.kafka_security_protocol.upper()
    config: dict[str, Any] = {"bootstrap.servers": settings.bootstrap, "security.protocol": protocol.lower()}
    if protocol.startswith("SASL"):
        config.update({"sasl.mechanism": settings.kafka_sasl_mechanism.upper(), "sasl.username": settings.kafka_username,
                       "sasl.password": password(settings)})
    if uses_tls(settings):
        config["ssl.ca.location"] = settings.kafka_ca_file or "probe"  # probe: the system's CA store
        if settings.kafka_cert_file:
            config.update({"ssl.certificate.location": settings.kafka_cert_file,
                           "ssl.key.location": settings.kafka_key_file})
    return config


def faust_credentials(settings: Settings) -> Any:
    """``broker_credentials`` for the Faust app (None for PLAINTEXT)."""
    import faust

    check(settings)
    protocol = settings.kafka_security_protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(settings))
    return faust.SASLCredentials(username=settings.kafka_username, password=password(settings),
                                 mechanism=settings.kafka_sasl_mechanism.upper(),
                                 ssl_context=ssl_context(settings) if uses_tls(settings) else None)


def describe(settings: Settings) -> str:
    """For the start-up line and logs: protocol, mechanism, principal, CA; never the password."""
    protocol = settings.kafka_security_protocol.upper()
    parts = [protocol]
    if protocol.startswith("SASL"):
        parts.append(f"{settings.kafka_sasl_mechanism.upper()} as {settings.kafka_username or '?'}")
    if uses_tls(settings):
        parts.append(f"CA {settings.kafka_ca_file}" if settings.kafka_ca_file else "system CAs")
    return ", ".join(parts)
