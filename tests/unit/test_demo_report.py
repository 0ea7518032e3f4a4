"""The demo reports what it caught per severity: a ring caught only by a low alert is not "0 caught"
and not "caught" either; messages are tied to the alerts they belong to; next steps name the store."""

from streams.dev.demo import report


def test_rings_are_reported_per_severity_and_messages_per_alert(capsys):
    labels = {"r1": ("ring00", "device_farm"), "r2": ("ring00", "device_farm"), "r3": ("ring01", "card_pool"),
              "r4": ("ring01", "card_pool"), "r5": ("ring02", "card_only"), "u1": ("", "benign")}
    alerts = [("A-C1", "C1", "low", "open", 2, ["r1", "r2"], "structure score", 10, 100),
              ("A-C2", "C2", "high", "open", 2, ["r3", "r4"], "structure score", 5000, 9_000_000),
              ("A-C3", "C3", "high", "closed", 0, [], "merged into C2", 0, 0)]
    messages = [{"alert_id": "A-C1", "action": "opened"}, {"alert_id": "A-C2", "action": "opened"},
                {"alert_id": "A-C2", "action": "escalated"}, {"alert_id": "A-C3", "action": "opened"},
                {"alert_id": "A-C3", "action": "closed"}]
    shared = [("C2", "C7", "ip", 1204, 2, 180)]
    report(1000, 3.0, messages, {}, alerts, {"C2": ["payment:pp1 x2"]}, labels, "/data/demo/audit.duckdb", shared)
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[2:] for line in out.splitlines() if line.strip().startswith("ring0")}
    assert rows["ring00"] == ["2", "0", "0", "2", "0"]  # size, high, medium, low, missed
    assert rows["ring01"] == ["2", "2", "0", "0", "0"]
    assert rows["ring02"] == ["1", "0", "0", "0", "1"]
    assert "5 messages for 3 alerts" in out
    assert "closed: merged into C2" in out and "9,000,000" in out
    assert "--audit-db /data/demo/audit.duckdb" in out
    assert "C2: 2 accounts, 5,000 exchanges, 9.0M output tokens in 7 days" in out, "operations with their damage"
    assert "shares 1,204 IPs with C7 (2 accounts here, 180 there)" in out
    assert "C1: " not in out, "a low alert is not an operation to act on"
