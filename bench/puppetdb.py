#!/usr/bin/env python3
"""Benchmark the probe's PuppetDB phase against a real PuppetDB and print figures.

Starts PuppetDB 7.12 + PostgreSQL 15 on 127.0.0.1 (tests/support/puppetdb_server.py),
loads nodes with 100 Class resources each (titles from a pool of 400, five OS
families plus legacy-only nodes), then, at 2,000 nodes and at 10,000 nodes:
  - ours: the grouped queries (fetch_class_usage) in a fresh process: wall
    time, peak RSS, bytes received, number of queries;
  - the Ruby client's way: download every Class resource
    (`resources[certname, title] { type = "Class" }`) and count client-side.
Finally a full `dropsonde preview` of a 30-environment tree with that PuppetDB.

Usage: bench/puppetdb.py [--nodes 10000] [--classes 100]   (needs tests/run's packages)
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from tests.support.puppetdb_server import PuppetDBServer, facts_for  # noqa: E402

FAMILIES = [("RedHat", None), ("Debian", "Debian"), ("Suse", None), ("windows", None), (None, "Gentoo")]
POOL = [f"Module{m}::Class{c}" for m in range(80) for c in range(5)]

OURS = """
import json, resource, sys, time
from dropsonde.puppet.puppetdb import PuppetDBClient, PuppetDBConfig, fetch_class_usage
queries = 0
class Counting(PuppetDBClient):
    def query(self, pql):
        global queries
        queries += 1
        return super().query(pql)
client = Counting(PuppetDBConfig([sys.argv[1]]))
start = time.perf_counter()
usage = fetch_class_usage(client)
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "bytes": client.bytes_received, "queries": queries,
                  "pairs": len(usage.platforms), "classes": len(usage.classes),
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

RUBY_WAY = """
import json, resource, sys, time, requests
from collections import Counter
start = time.perf_counter()
response = requests.get(sys.argv[1] + "/pdb/query/v4", params={"query": 'resources[certname, title] { type = "Class" }'})
rows = response.json()
counts = Counter(row["title"] for row in rows)
print(json.dumps({"seconds": time.perf_counter() - start, "bytes": len(response.content), "rows": len(rows),
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def load(server: PuppetDBServer, first: int, last: int, classes: int) -> float:
    """Submit nodes first..last-1 (facts and catalog), wait until processed; seconds taken."""
    start = time.perf_counter()

    def one(index: int) -> None:
        rng = random.Random(index)
        family, legacy = FAMILIES[index % len(FAMILIES)]
        certname = f"node{index:05d}.bench.test"
        server.replace_facts(certname, facts_for(family, legacy))
        server.replace_catalog(certname, ["Main", "Settings"] + rng.sample(POOL, classes - 2))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(first, last)))
    server.wait_for_queue(timeout=3600)
    return time.perf_counter() - start


def child(code: str, url: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def measure(server: PuppetDBServer, nodes: int) -> None:
    ours = [child(OURS, server.http_url) for _ in range(3)]
    best = min(ours, key=lambda r: r["seconds"])
    print(f"{nodes:6d} nodes, ours: {best['seconds']:.2f} s (median of 3: "
          f"{sorted(r['seconds'] for r in ours)[1]:.2f} s), {best['queries']} queries, "
          f"{best['bytes'] / 1024:.1f} KiB received for {best['classes']} classes and {best['pairs']} "
          f"(class, family) pairs, peak RSS {max(r['rss_mib'] for r in ours):.0f} MiB")
    ruby = child(RUBY_WAY, server.http_url)
    print(f"{nodes:6d} nodes, Ruby client's way: {ruby['seconds']:.2f} s, {ruby['bytes'] / 1048576:.1f} MiB "
          f"received ({ruby['rows']} rows), peak RSS {ruby['rss_mib']:.0f} MiB (before its O(n^2) counting)")


def full_preview(server: PuppetDBServer) -> None:
    import probe

    with tempfile.TemporaryDirectory() as tmp:
        args = probe.build_tree(Path(tmp), 30)
        confdir = Path(args[1])
        (confdir / "puppetdb.conf").write_text(f"[main]\nserver_urls = {server.http_url}\n")
        probe.run([*args, "preview", "--format", "json"], 1)  # warm the parse cache
        seconds, rss = probe.run([*args, "preview", "--format", "json"], 3)
        print(f"full preview, 30 environments x 98 modules + PuppetDB: {seconds:.2f} s, peak RSS {rss:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10000)
    parser.add_argument("--classes", type=int, default=100)
    options = parser.parse_args()
    if not shutil.which("dropsonde"):
        sys.exit("dropsonde is not on PATH (activate .venv)")
    root = Path(tempfile.mkdtemp(prefix="dropsonde-bench-"))
    server = PuppetDBServer(root, heap="2g")
    try:
        started = time.perf_counter()
        server.start()
        print(f"PuppetDB started in {time.perf_counter() - started:.0f} s")
        stage = min(2000, options.nodes)
        print(f"loaded {stage} nodes x {options.classes} classes in {load(server, 0, stage, options.classes):.0f} s")
        measure(server, stage)
        if options.nodes > stage:
            seconds = load(server, stage, options.nodes, options.classes)
            print(f"loaded {options.nodes} nodes x {options.classes} classes (+{seconds:.0f} s)")
            measure(server, options.nodes)
        full_preview(server)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
