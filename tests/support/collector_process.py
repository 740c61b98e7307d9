"""`dropsonde collector serve` as a real process on a free loopback port, run
as an operator installs it (tests/support/operator_venv.py), and
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
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from tests.support.operator_venv import operator_dropsonde
from tests.support.puppetdb_server import free_port

# The collector's Forge list unless a test gives its own `--forge-cache`: the
# modules of the example site and of the tests' reports.

FORGE_MODULES = ["puppet-nginx", "puppetlabs-apache", "puppetlabs-concat", "puppetlabs-ntp", "puppetlabs-stdlib"]

MODULE = [{"name": "ntp", "slug": "puppetlabs-ntp", "version": "10.0.0"}]


#: versions of every module the tests' reports name, published as far as the collector knows
TEST_VERSIONS = ("1.0.0", "2.0.0", "3.0.0", "6.0.0", "10.0.0", "10.0.1", "10.0.2", "12.0.0", "12.1.0")


def write_forge_cache(directory: Path, slugs: List[str],
                      releases: Optional[Dict[str, Dict[str, List[str]]]] = None) -> Path:
    """A collector's allowlist files in ``directory``: forge.json listing
    ``slugs``, and beside it forge-releases.json (the release evidence's real
    format) proving ``releases`` ({slug: {version: [classes]}}); by default
    :data:`TEST_VERSIONS` of every slug (and puppetlabs-ntp 1.0.0-1.0.2000),
    each defining ``name``, ``name::config`` and ``name::params``. Returns
    the forge.json path."""
    from dropsonde.release_evidence import PublishedManifest, Release, ReleaseEvidence, evidence_json

    if releases is None:
        releases = {}
        for slug in slugs:
            name = slug.split("-", 1)[1]
            versions = list(TEST_VERSIONS) + ([f"1.0.{n}" for n in range(2001)] if slug == "puppetlabs-ntp" else [])
            releases[slug] = {v: [name, f"{name}::config", f"{name}::params"] for v in versions}
    proven = []
    for slug, versions in releases.items():
        for version, classes in versions.items():
            manifests = {}
            for name in classes:
                parts = name.split("::")
                relative = "/".join(parts[1:]) + ".pp" if len(parts) > 1 else "init.pp"
                manifests[relative] = PublishedManifest("0" * 64, manifests.get(relative, PublishedManifest("")).classes
                                                        + (name,))
            proven.append(Release(slug, version, "f" * 64, "2026-11-27T00:00:00+00:00", manifests))
    directory.mkdir(parents=True, exist_ok=True)
    forge = directory / "forge.json"
    forge.write_text(json.dumps({"timestamp": "2026-11-27T00:00:00+00:00", "modules": slugs}), encoding="utf-8")
    (directory / "forge-releases.json").write_bytes(
        evidence_json(ReleaseEvidence({release.key: release for release in proven})))
    return forge


def releases_of(rows: List[dict]) -> Dict[str, Dict[str, List[str]]]:
    """The releases (and, for each, every class of its module the rows name)
    that rows as `dev example` makes them need: the release evidence under
    which a collector accepts them."""
    releases: Dict[str, Dict[str, List[str]]] = {}
    for row in rows:
        for module in row.get("modules", []) + row.get("unused_modules", []):
            releases.setdefault(module["slug"], {}).setdefault(module["version"], [])
    names = {record["name"].lower().lstrip(":") for row in rows
             for column in ("classes", "unused_classes", "profile_classes", "class_platforms")
             for record in row.get(column, [])}
    for slug, versions in releases.items():
        module = slug.split("-", 1)[1]
        mine = sorted(n for n in names if n.split("::")[0] == module)
        for version in versions:
            versions[version] = mine
    return releases


class CollectorProcess:
    def __init__(self, db: str, *extra: str) -> None:
        self.db = db
        self.port = free_port()
        self.extra = list(extra)
        self.process: Optional[subprocess.Popen] = None
        # The collector's scratch files (TMPDIR) and the default Forge list live here.
        self.scratch = tempfile.TemporaryDirectory()
        if "--forge-cache" not in self.extra:
            self.extra += ["--forge-cache", str(write_forge_cache(Path(self.scratch.name), FORGE_MODULES))]
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
            [str(operator_dropsonde()), "collector", "serve", "--listen", f"127.0.0.1:{self.port}",
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
