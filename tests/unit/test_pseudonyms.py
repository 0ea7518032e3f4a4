"""--pseudonymise-key-file: the same alerts, and no raw IP, device or payment id in the audit store or
the alert messages; the same pseudonym in every process; investigators look values up by their raw form."""

from __future__ import annotations

import json

import duckdb

from streams.cli import main as cli
from streams.runtime.pseudonyms import Pseudonymiser

RAW_FIELDS = {"ip": "ip", "device_id": "device", "payment_id": "payment"}


def replay(events, db, *extra):
    assert cli(["replay", str(events), "--audit-db", str(db), "--quiet", *extra]) == 0
    con = duckdb.connect(str(db), read_only=True)
    try:
        alerts = con.execute("SELECT alert_id, version, cluster_id, severity, member_count FROM alerts "
                             "ORDER BY alert_id, version").fetchall()
        evidence = con.execute("SELECT entity_type, entity_value FROM cluster_evidence ORDER BY ALL").fetchall()
        links = con.execute("SELECT entity_type, entity_value FROM account_links ORDER BY ALL").fetchall()
        blobs = [r[0] for r in con.execute("SELECT evidence FROM alerts ORDER BY ALL").fetchall()]
    finally:
        con.close()
    return alerts, evidence, links, blobs


def test_pseudonymised_store_has_the_same_alerts_and_no_raw_identifier(tmp_path, capsys):
    events = tmp_path / "events.jsonl"
    cli(["simulate", "--benign", "800", "--ring-scale", "0.05", "--days", "2", "--seed", "5", "--out", str(events)])
    raw: dict[str, set[str]] = {kind: set() for kind in RAW_FIELDS.values()}
    for line in events.read_text().splitlines():
        event = json.loads(line)
        for field, kind in RAW_FIELDS.items():
            if event.get(field):
                raw[kind].add(str(event[field]))
    key = tmp_path / "pseudonym.key"
    key.write_text("an-operator-held-secret-key-0042\n")

    plain = replay(events, tmp_path / "plain.duckdb")
    hashed = replay(events, tmp_path / "hashed.duckdb", "--pseudonymise-key-file", str(key))
    again = replay(events, tmp_path / "again.duckdb", "--pseudonymise-key-file", str(key))

    assert plain[0] and hashed[0] == plain[0], "detection is unchanged"
    assert hashed == again, "the same pseudonyms in another process"
    for kind, value in hashed[1] + hashed[2]:
        if kind in raw:
            assert value not in raw[kind] and Pseudonymiser.is_pseudonym(kind, value), (kind, value)
    assert {k for k, _ in hashed[1]} & set(raw), "the alerts do carry device/card/IP evidence"
    every_raw = set().union(*raw.values())
    for blob in hashed[3]:
        assert not any(e["entity_value"] in every_raw for e in json.loads(blob))
    p = Pseudonymiser(key.read_bytes().strip())
    assert sorted((k, p.value(k, v)) for k, v in plain[1]) == sorted(hashed[1])

    # An investigator with the key looks a raw value up; the output shows only its pseudonym.
    kind, value = next((k, v) for k, v in plain[2] if k in ("device", "payment"))
    capsys.readouterr()
    assert cli(["investigate", "entity", kind, value, "--audit-db", str(tmp_path / "hashed.duckdb"),
                "--pseudonymise-key-file", str(key)]) == 0
    out = capsys.readouterr().out
    assert p.value(kind, value) in out and value not in out
