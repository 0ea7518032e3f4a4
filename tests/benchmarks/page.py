"""How long an operation's page takes to write and to render, by the operation's size.

    .venv/bin/python -m tests.benchmarks.page [--sizes 1000,20000] [--repeats 5]

For each size N: an operation of N accounts (groups of 10-40 on a shared card, a phone each, the only
users of 30 prompt templates at distillation volume, through 200 shared exits) beside 5,000 ordinary
accounts is replayed into an audit store; the largest cluster's page is written by ``investigate cluster
ID --graph FILE.html`` (timed in-process: read from the store + layout + render) and rendered by headless
Chromium to a screenshot (timed as a process, from start to the PNG). The baseline is the same browser
rendering a blank page in the same run: what the page itself costs is the difference. Medians of
``--repeats``. Prints markdown; --out appends it to a file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, UTC
from pathlib import Path

import duckdb
import orjson

from streams.cli import main as cli
from streams.sinks.audit import page

T0 = 1_767_571_200.0  # 2026-01-05


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stream(size: int, seed: int, path: Path) -> None:
    rng = random.Random(seed)
    templates = [f"tpl-op-{j}" for j in range(30)]
    exits = [f"203.0.{j // 250}.{j % 250 + 1}" for j in range(200)]
    events = []

    def emit(t: float, kind: str, account: str, **fields: object) -> None:
        events.append({"event_id": f"e{len(events):09d}", "type": kind, "account_id": account, "ts": _ts(t), **fields})

    card, left = 0, 0
    for i in range(size):
        if left == 0:
            card, left = card + 1, rng.randint(10, 40)
        left -= 1
        a, t = f"op{i:06d}", T0 + rng.uniform(0, 2 * 86400)
        emit(t, "signup", a, device_id=f"ph{i:06d}", ip=rng.choice(exits), email_domain="gmail.com", asn="AS7922")
        emit(t + 60, "payment_method_added", a, device_id=f"ph{i:06d}", ip=rng.choice(exits), payment_id=f"pool{card:05d}",
             asn="AS7922")
        for k in range(rng.randint(2, 5)):
            n = rng.randint(20, 200)
            emit(t + 600 + k * rng.uniform(300, 3000), "api_usage", a, ip=rng.choice(exits), asn="AS7922", requests=n,
                 tokens_in=n * 500, tokens_out=n * 2500, model="m-large", prompt_fingerprint=rng.choice(templates))
    for i in range(5000):
        a, t = f"u{i:06d}", T0 + rng.uniform(0, 3 * 86400)
        home = f"98.{i // 250 % 250}.{i % 250}.7"
        emit(t, "signup", a, device_id=f"d{i:06d}", ip=home, email_domain="gmail.com", asn="AS3215")
        for k in range(rng.randint(1, 6)):
            emit(t + 300 + k * 900, "api_usage", a, ip=home, asn="AS3215", requests=rng.randint(1, 4), tokens_in=400,
                 tokens_out=600, model="m-small", prompt_fingerprint=f"tpl-own-{rng.randrange(10**9)}")
    events.sort(key=lambda e: (e["ts"], e["event_id"]))
    with open(path, "wb") as out:
        for e in events:
            out.write(orjson.dumps(e) + b"\n")


def browse(chromium: str, url: str, shot: Path, profile: Path) -> float:
    started = time.perf_counter()
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                    f"--user-data-dir={profile}", "--window-size=1000,1400", f"--screenshot={shot}", url],
                   capture_output=True, check=True, timeout=120)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,20000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        parser.error("needs Chromium (bash .ci/setup installs it)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        blank = work / "blank.html"
        blank.write_text("<!DOCTYPE html><html><body></body></html>")
        for size in (int(s) for s in args.sizes.split(",")):
            events, db = work / f"events-{size}.jsonl", work / f"audit-{size}.duckdb"
            stream(size, args.seed, events)
            with contextlib.redirect_stdout(sys.stderr):  # replay's summary line is not the table's
                cli(["replay", str(events), "--audit-db", str(db), "--quiet"])
            with duckdb.connect(str(db), read_only=True) as con:
                cluster, accounts = con.execute("SELECT cluster_id, size FROM clusters WHERE status = 'live' "
                                                "ORDER BY size DESC, cluster_id LIMIT 1").fetchone()
                html = work / f"{cluster}.html"
                writes = []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    data = page.write(con, cluster, str(html))
                    writes.append(time.perf_counter() - started)
            nodes = len(page.picture(data).graph)
            renders = [browse(chromium, html.as_uri(), work / "page.png", work / "profile") for _ in range(args.repeats)]
            blanks = [browse(chromium, blank.as_uri(), work / "blank.png", work / "profile") for _ in range(args.repeats)]
            rows.append((size, accounts, nodes, html.stat().st_size, statistics.median(writes), statistics.median(renders),
                         statistics.median(blanks)))
            print(f"size {size}: operation of {accounts:,} accounts, {nodes} nodes drawn", file=sys.stderr, flush=True)
    lines = [f"## The operation page — `python -m tests.benchmarks.page --sizes {args.sizes} --repeats {args.repeats}`",
             "", f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; Chromium headless "
             "(`--screenshot`, a process per load). Medians.", "",
             "| operation (accounts) | nodes drawn | page size | write (store → HTML) | browser: page → PNG | browser: blank page → PNG | page's own render cost |",
             "|---|---|---|---|---|---|---|"]
    for _size, accounts, nodes, nbytes, write, render, blank_s in rows:
        lines.append(f"| {accounts:,} | {nodes} | {nbytes / 1024:.0f} KiB | {write:.2f} s | {render:.2f} s | {blank_s:.2f} s "
                     f"| {render - blank_s:+.2f} s |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as out:
            out.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
