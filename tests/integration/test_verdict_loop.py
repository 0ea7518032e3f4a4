"""`fraudgraph verdict` records who/when/why and the running worker applies it: benign mutes the
cluster, confirmed turns any newcomer into a high alert."""

from __future__ import annotations

import json
import os
import signal
import time

from streams.sinks.audit import connect_read_only
from streams.cli import main as cli
from streams.dev.localrun import wait_for
from tests.conftest import T0, ev
from tests.integration.conftest import contract_json
from tests.unit.scenarios import farm


def cluster_of(db, account: str) -> str:
    con = connect_read_only(db)
    try:
        return con.execute("SELECT cluster_id FROM cluster_members WHERE account_id = ?", [account]).fetchone()[0]
    finally:
        con.close()


def newcomer(prefix: str, name: str, t: float):
    return [ev(name, t, device=f"{prefix}-dev0"), ev(name, t + 1, device=f"{prefix}-dev1")]


def test_benign_and_confirmed_verdicts_reach_the_running_worker(worker):
    w = worker(lateness_seconds=5.0, tick_seconds=10.0).start()
    w.produce([contract_json(e) for e in farm("f", 120, devices=8) + farm("g", 60, devices=6, t=T0 + 200, dc_ip="45.0.0.2")])
    w.wait_consumed()
    w.settle()
    f_cluster, g_cluster = cluster_of(w.settings.audit_db, "f0"), cluster_of(w.settings.audit_db, "g0")
    assert f_cluster != g_cluster

    common = ["--bootstrap", w.settings.bootstrap, "--verdicts-topic", w.settings.verdicts_topic,
              "--audit-db", w.settings.audit_db, "--analyst", "alice"]
    cli(["verdict", f_cluster, "benign", "--note", "company test accounts", *common])
    cli(["verdict", g_cluster, "confirmed", "--note", "chargebacks", *common])

    def alerts():
        return [json.loads(r.value) for r in w.read_topic(w.settings.alerts_topic)]

    wait_for(lambda: any(a["cluster_id"] == f_cluster and a["action"] == "closed" for a in alerts()), 60,
             "the benign verdict to close the alert", w.proc)
    before = len(alerts())
    later = T0 + 2000
    w.produce([contract_json(e) for e in newcomer("f", "f-new", later) + newcomer("g", "g-new", later + 5)])
    w.wait_consumed()
    w.settle()

    after = alerts()[before:]
    g_updates = [a for a in after if a["cluster_id"] == g_cluster]
    assert g_updates and g_updates[-1]["severity"] == "high" and "g-new" in g_updates[-1]["members_added"]
    assert not [a for a in after if a["cluster_id"] == f_cluster], "one newcomer is nothing materially new"

    # The verdicts survive a crash: the restarted worker rebuilds its window and re-applies them.
    time.sleep(4)  # let Faust commit the offsets
    os.killpg(w.proc.pid, signal.SIGKILL)
    w.proc.wait()
    w.start()
    before = len(alerts())
    w.produce([contract_json(e) for e in newcomer("g", "g-new2", later + 500) + newcomer("f", "f-new2", later + 505)])
    w.wait_consumed()
    w.settle()
    after = alerts()[before:]
    assert [a["severity"] for a in after if a["cluster_id"] == g_cluster][-1:] == ["high"]
    assert not [a for a in after if a["cluster_id"] == f_cluster and a["action"] != "members"]

    con = connect_read_only(w.settings.audit_db)
    try:
        rows = con.execute("SELECT cluster_id, verdict, analyst, note FROM verdicts ORDER BY verdict").fetchall()
    finally:
        con.close()
    assert rows == [(f_cluster, "benign", "alice", "company test accounts"),
                    (g_cluster, "confirmed", "alice", "chargebacks")]


def test_a_forged_benign_verdict_for_a_live_ring_changes_nothing(worker, tmp_path):
    from streams.runtime.keys import sign

    key_file = tmp_path / "verdict.key"
    key_file.write_text("analysts-shared-secret-0123456789\n")
    w = worker(lateness_seconds=5.0, tick_seconds=10.0, verdict_key_file=str(key_file)).start()
    w.produce([contract_json(e) for e in farm("f", 120, devices=8)])
    w.wait_consumed()
    w.settle()
    ring = cluster_of(w.settings.audit_db, "f0")

    def alerts():
        return [json.loads(r.value) for r in w.read_topic(w.settings.alerts_topic)]

    assert any(a["cluster_id"] == ring and a["action"] == "opened" for a in alerts())
    base = {"cluster_id": ring, "verdict": "benign", "analyst": "alice", "note": "looks fine", "at": time.time()}
    w.produce_to(w.settings.verdicts_topic, [
        json.dumps({**base, "verdict_id": "v-unsigned"}).encode(),                              # no signature
        json.dumps(sign({**base, "verdict_id": "v-wrong-key"}, b"not-the-analysts-key!")).encode(),
        json.dumps({**sign({**base, "verdict_id": "v-edited", "verdict": "confirmed"},
                           key_file.read_bytes().strip()), "verdict": "benign"}).encode(),     # signed, then edited
    ])
    wait_for(lambda: (w.metric('fraudgraph_verdicts_total{outcome="forged"}') or 0) >= 2 and
             (w.metric('fraudgraph_verdicts_total{outcome="unsigned"}') or 0) >= 1, 60, "the refusals", w.proc)
    assert not w.metric('fraudgraph_verdicts_total{outcome="applied"}')
    assert "refused verdict (" in w.log()

    # The ring is not muted: it keeps growing and its alert follows.
    before = len(alerts())
    w.produce([contract_json(e) for i in range(80) for e in newcomer("f", f"f-new{i}", T0 + 2000 + 10 * i)])
    w.wait_consumed()
    w.settle()
    after = alerts()[before:]
    assert any(a["cluster_id"] == ring and a["action"] != "closed" for a in after)
    assert not any(a["action"] == "closed" for a in alerts())

    # The analysts' own command signs with the key; that verdict is applied.
    cli(["verdict", ring, "benign", "--note", "company test accounts", "--bootstrap", w.settings.bootstrap,
         "--verdicts-topic", w.settings.verdicts_topic, "--audit-db", w.settings.audit_db, "--analyst", "alice",
         "--verdict-key-file", str(key_file)])
    wait_for(lambda: any(a["cluster_id"] == ring and a["action"] == "closed" for a in alerts()), 60,
             "the signed verdict to close the alert", w.proc)
    assert w.metric('fraudgraph_verdicts_total{outcome="applied"}') == 1
