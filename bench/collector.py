#!/usr/bin/env python3
"""Benchmark the collector and print figures.

1. Ingest: `dropsonde collector serve` (SQLite, durable commits; installed as
   an operator installs it, tests/support/operator_venv.py) receiving
   realistic reports — `dev example` rows turned into the envelope `submit`
   sends — with wrk (Debian's `wrk`, if installed) and from 50 concurrent
   Python clients; reports/s and latency.
2. Aggregation: 100,000 stored reports (bulk-loaded `dev example` rows over
   20,000 sites), `collector aggregate` wall time and peak RSS.

Usage: bench/collector.py [--reports 5000] [--stored 100000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.collector_process import CollectorProcess, releases_of, write_forge_cache  # noqa: E402

SKELETON = {"message_id", "site_id", "product", "version", "timestamp", "ip"}


def example_rows(size: int, tmp: Path) -> list:
    out = tmp / "rows.jsonl"
    subprocess.run([shutil.which("dropsonde"), "--confdir", str(REPO / "examples/site/puppet"), "--cachepath",
                    str(REPO / "examples/site/cache"), "dev", "example", "--size", str(size), "--filename", str(out)],
                   check=True)
    return [json.loads(line) for line in out.read_text().splitlines()]


def envelope(row: dict, site: int) -> bytes:
    stamp = row["timestamp"]
    snapshots = {k: {"value": v, "timestamp": stamp} for k, v in row.items() if k not in SKELETON}
    return json.dumps({"product": "popularity-module", "version": "1.0.0",
                       "site_id": hashlib.sha512(f"bench{site}".encode()).hexdigest(),
                       "self-service-analytics": {"snapshots": snapshots}}).encode()


def forge_cache(rows: list, tmp: Path) -> str:
    """The collector's Forge list and release evidence, publishing what the rows name."""
    releases = releases_of(rows)
    return str(write_forge_cache(tmp / "forge", sorted(releases), releases))


def ingest_wrk(tmp: Path, seconds: int = 15) -> None:
    """Throughput measured with wrk (C, so the load generator takes little of the 2 cores)."""
    rows = example_rows(20, tmp)
    body = envelope(rows[7], 1)
    script = tmp / "post.lua"
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f"wrk.body = {json.dumps(body.decode())}\n")
    with CollectorProcess(str(tmp / "wrk.db"), "--rate", "100000000", "--forge-cache", forge_cache(rows, tmp)) as collector:
        out = subprocess.run(["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency", "-s", str(script), collector.url],
                             capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
    p99 = re.search(r"99%\s+(\S+)", out).group(1)
    print(f"ingest (wrk, 64 connections, {len(body) / 1024:.1f} KiB report): {float(rate):.0f} reports/s durable, "
          f"p99 latency {p99}")


def ingest(count: int, tmp: Path) -> None:
    import requests

    rows = example_rows(min(count, 2000), tmp)
    bodies = [envelope(rows[n % len(rows)], n) for n in range(count)]
    size = sum(map(len, bodies)) / len(bodies)
    with CollectorProcess(str(tmp / "ingest.db"), "--rate", "100000000", "--sites-per-source", "1000000",
                          "--forge-cache", forge_cache(rows, tmp)) as collector:
        def client(worker: int) -> list:
            session = requests.Session()
            latencies = []
            for body in bodies[worker::50]:
                start = time.perf_counter()
                response = session.post(collector.url, data=body, headers={"Content-Type": "application/json"},
                                        timeout=120)
                assert response.status_code == 200, response.text
                latencies.append(time.perf_counter() - start)
            return latencies

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=50) as pool:
            latencies = sorted(x for batch in pool.map(client, range(50)) for x in batch)
        elapsed = time.perf_counter() - start
    print(f"ingest: {count} reports ({size / 1024:.1f} KiB each on average) from 50 clients in {elapsed:.1f} s = "
          f"{count / elapsed:.0f} reports/s durable; latency p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms")


def aggregation(stored: int, tmp: Path) -> None:
    from dropsonde.collector.storage import open_store

    rows = example_rows(2000, tmp)
    week = date.today().isocalendar()
    store = open_store(str(tmp / "aggregate.db"))
    now = f"{date.today().isoformat()}T00:00:01.000000+00:00"
    batch = []
    for n in range(stored):
        row = dict(rows[n % len(rows)])
        row.update(message_id=f"m{n}", site_id=hashlib.sha512(f"s{n % 20000}".encode()).hexdigest(), timestamp=now)
        batch.append(row)
        if len(batch) == 5000:
            store.insert_many(batch)
            batch = []
    if batch:
        store.insert_many(batch)
    start = time.perf_counter()
    proc = subprocess.Popen([shutil.which("dropsonde"), "collector", "aggregate", "--db", str(tmp / "aggregate.db"),
                             "--out", str(tmp / "out"), "--week", f"{week[0]}-W{week[1]:02d}", "--force"],
                            stdout=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    assert status == 0
    print(f"aggregation: {stored} stored reports ({min(stored, 20000)} sites): {elapsed:.1f} s, "
          f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB; {proc.stdout.read().decode().strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=5000)
    parser.add_argument("--stored", type=int, default=100000)
    options = parser.parse_args()
    if not shutil.which("dropsonde"):
        sys.exit("dropsonde is not on PATH (activate .venv)")
    with tempfile.TemporaryDirectory() as tmp:
        if shutil.which("wrk"):
            ingest_wrk(Path(tmp))
        ingest(options.reports, Path(tmp))
        aggregation(options.stored, Path(tmp))


if __name__ == "__main__":
    main()
