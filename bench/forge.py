#!/usr/bin/env python3
"""Benchmark `dropsonde update` against the loopback Forge stand-in and print figures:
requests, wall time and peak RSS for a full refresh of N modules, then for a
no-change refresh and one with 150 new modules.

Usage: bench/forge.py [--modules 10000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.forge_server import ForgeServer, generate_modules  # noqa: E402


def update(cachepath: Path, server: ForgeServer, *extra: str) -> tuple:
    """Seconds, peak RSS (MiB) and requests of one `dropsonde update` in a fresh process."""
    before = len(server.state.requests)
    start = time.perf_counter()
    proc = subprocess.Popen([shutil.which("dropsonde"), "--cachepath", str(cachepath), "--forge-api", server.url,
                             "update", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        sys.exit(proc.stderr.read().decode())
    return time.perf_counter() - start, usage.ru_maxrss / 1024, len(server.state.requests) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=10000)
    count = parser.parse_args().modules
    if not shutil.which("dropsonde"):
        sys.exit("dropsonde is not on PATH (activate .venv)")
    with tempfile.TemporaryDirectory() as tmp, ForgeServer(generate_modules(count)) as server:
        cache = Path(tmp)
        seconds, rss, requests = update(cache, server, "--full")
        print(f"full refresh of {count} modules: {requests} requests (ceil(N/100) = {-(-count // 100)}), "
              f"{seconds:.2f} s, peak RSS {rss:.0f} MiB, forge.json {os.path.getsize(cache / 'forge.json') / 1024:.0f} KiB")
        seconds, rss, requests = update(cache, server)
        print(f"no-change refresh: {requests} request, {seconds:.2f} s, peak RSS {rss:.0f} MiB")
        server.state.modules += generate_modules(150, start=count)
        seconds, rss, requests = update(cache, server)
        print(f"refresh with 150 new modules: {requests} requests, {seconds:.2f} s, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
