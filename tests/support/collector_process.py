"""`dropsonde collector serve` as a real process on a free loopback port, and
what tests send it (reports, POSTs) and read back from its SQLite store."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

from tests.support.puppetdb_server import free_port

# The collector's Forge list unless a test gives its own `--forge-cache`: the
# modules of the example site and of the tests' reports.
#: how a test starts `dropsonde`: the operator's virtualenv when the collector
#: tests' session fixture has made it (tests/collector/conftest.py), this
#: interpreter otherwise
COMMAND = [sys.executable, "-m", "dropsonde"]

FORGE_MODULES = ["puppet-nginx", "puppetlabs-apache", "puppetlabs-concat", "puppetlabs-ntp", "puppetlabs-stdlib"]

MODULE = [{"name": "ntp", "slug": "puppetlabs-ntp", "version": "10.0.0"}]


class CollectorProcess:
    def __init__(self, db: str, *extra: str) -> None:
        self.db = db
        self.port = free_port()
        self.extra = list(extra)
        self.process: Optional[subprocess.Popen] = None
        # The collector's scratch files (TMPDIR) and the default Forge list live here.
        self.scratch = tempfile.TemporaryDirectory()
        if "--forge-cache" not in self.extra:
            forge = os.path.join(self.scratch.name, "forge.json")
            with open(forge, "w", encoding="utf-8") as handle:
                json.dump({"timestamp": "2026-11-27T00:00:00+00:00", "modules": FORGE_MODULES}, handle)
            self.extra += ["--forge-cache", forge]
        if "--sites-per-source" not in self.extra:  # the tests' reports come from one address
            self.extra += ["--sites-per-source", "1000000"]

    @property
    def endpoint(self) -> str:
        return "http://127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> "CollectorProcess":
        # The log goes to a file: a pipe nobody reads would fill up and block the server.
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [*COMMAND, "collector", "serve", "--listen", f"127.0.0.1:{self.port}",
             "--db", self.db, *self.extra],
            stdout=subprocess.DEVNULL, stderr=self.log, env={**os.environ, "TMPDIR": self.scratch.name},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(self.log.read().decode())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the collector did not start")

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.scratch.cleanup()

    def __enter__(self) -> "CollectorProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def envelope(site_id: str, modules: List[dict], **columns) -> bytes:
    """A report as `dropsonde submit` sends it."""
    snapshots = {"modules": modules, **columns}
    stamp = "2026-11-27T12:00:00+00:00"
    return json.dumps({
        "product": "popularity-module", "version": "1.0.0", "site_id": site_id,
        "self-service-analytics": {"snapshots": {k: {"value": v, "timestamp": stamp} for k, v in snapshots.items()}},
    }).encode()


def site(n: int) -> str:
    return hashlib.sha512(f"site{n}".encode()).hexdigest()


def post(collector, body: bytes, content_type: str = "application/json", headers=None, timeout: float = 30):
    connection = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=timeout)
    connection.request("POST", "/", body=body, headers={"Content-Type": content_type, **(headers or {})})
    response = connection.getresponse()
    return response.status, response.read()


def rows(db: str, sql: str):
    with sqlite3.connect(db) as connection:
        return connection.execute(sql).fetchall()
