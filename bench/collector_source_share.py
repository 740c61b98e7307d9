#!/usr/bin/env python3
"""How much work one source can make the collector do in one rate window,
and print figures (outside review 2, F3).

The collector's WSGI application runs in this process over a real SQLite
store, its rate clock held still (one window: the bucket never refills).
One address sends 60 reports of each kind at once — as many as `--rate 60`
once let through — and the CPU time the application spent on them, the
bytes it read and processed, and how many were answered 429 are printed;
then the CPU time of one honest report from another address.

Usage: bench/collector_source_share.py [--rate 60] [--reports 60]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dropsonde.collector.allowlist_files import load_allowlist  # noqa: E402
from dropsonde.collector.app import CollectorApp  # noqa: E402
from dropsonde.collector.options import ServeOptions  # noqa: E402
from dropsonde.collector.rate_limiter import RateLimiter  # noqa: E402
from dropsonde.collector.storage import open_store  # noqa: E402
from dropsonde.wire_columns import REPORT_COLUMNS  # noqa: E402
from tests.support.collector_process import FORGE_MODULES, MODULE, envelope, site, write_forge_cache  # noqa: E402

MAX_BODY = 512 * 1024


def post(app: CollectorApp, body: bytes, address: str) -> int:
    statuses: list = []
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "CONTENT_TYPE": "application/json",
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "REMOTE_ADDR": address}
    b"".join(app(environ, lambda status, headers: statuses.append(int(status.split()[0]))))
    return statuses[0]


def filled(column: str, item: dict) -> bytes:
    """The largest report of ``item`` repeated in ``column`` under --max-body."""
    count = MAX_BODY // (len(json.dumps(item)) + 2)
    while len(body := envelope(site(1), MODULE, **{column: [item] * count})) > MAX_BODY:
        count -= 50
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=60)
    parser.add_argument("--reports", type=int, default=60)
    args = parser.parse_args()
    kinds = {
        "512 KiB, 30,000 unused_classes (over the cap)": filled("unused_classes", {"name": "ntp"}),
        "83 KiB, 5,001 unused_classes (over the cap)": envelope(site(1), MODULE, unused_classes=[{"name": "ntp"}] * 5001),
        "512 KiB, 10,000 class_platforms (unknown class: refused)": filled(
            "class_platforms", {"name": "nosuch::c", "platform": "Debian", "count": 1}),
        "3 KB honest-sized report (accepted)": envelope(site(1), MODULE),
    }
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        forge = write_forge_cache(tmp / "forge", FORGE_MODULES).parent
        for number, (label, body) in enumerate(kinds.items()):
            store = open_store(str(tmp / f"r{number}.db"), allowlist=load_allowlist(forge))
            store.start_writer()
            limiter = RateLimiter(str(tmp / f"rate{number}.db"), args.rate, clock=lambda: 1000.0).create()
            app = CollectorApp(store, REPORT_COLUMNS, ServeOptions(rate_per_minute=args.rate), load_allowlist(forge),
                               limiter)
            started = time.process_time()
            statuses = [post(app, body, "198.51.100.7") for _ in range(args.reports)]
            spent = time.process_time() - started
            processed = sum(len(body) for status in statuses if status != 429)
            honest_started = time.process_time()
            honest = post(app, envelope(site(2), MODULE), "198.51.100.8")
            honest_cpu = time.process_time() - honest_started
            store.close()
            print(f"{label}: {args.reports} sent, {statuses.count(429)} answered 429, "
                  f"{processed / 1024:.0f} KiB processed, {1000 * spent:.0f} ms CPU for this source; "
                  f"an honest report from another address then: {honest}, {1000 * honest_cpu:.1f} ms CPU")


if __name__ == "__main__":
    main()
