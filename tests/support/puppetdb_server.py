"""A real PuppetDB (Debian's puppetdb 7.12 on PostgreSQL 15) for tests and
benchmarks: its own PostgreSQL cluster and PuppetDB configuration in a
temporary directory, listening only on 127.0.0.1, plain HTTP and HTTPS with
client certificates, started once and stopped at the end.

Not a mock: data goes in through PuppetDB's command API, as agents send it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

import requests

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PUPPETDB_JAR = Path("/usr/share/puppetdb/puppetdb.jar")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@dataclass
class Certificates:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_ca(directory: Path, name: str) -> tuple:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
            "-days", "2", "-subj", f"/CN=Puppet CA: {name}")
    return cert, key


def make_signed(directory: Path, name: str, ca_cert: Path, ca_key: Path, san: Optional[str] = None) -> tuple:
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    ext = directory / f"{name}.ext"
    ext.write_text(f"subjectAltName = {san}\n" if san else "basicConstraints = CA:FALSE\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return cert, key


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = make_ca(directory, "ca")
    server_cert, server_key = make_signed(directory, "puppetdb", ca_cert, ca_key, "IP:127.0.0.1,DNS:localhost")
    client_cert, client_key = make_signed(directory, "agent.example.test", ca_cert, ca_key)
    return Certificates(ca_cert, ca_key, server_cert, server_key, client_cert, client_key)


class PostgresServer:
    """A PostgreSQL 15 cluster of its own under ``root``, on 127.0.0.1, trust authentication."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.data = root / "pgdata"

    def _as_postgres(self, *args: str) -> List[str]:
        return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)

    def psql(self, sql: str, database: str = "postgres") -> None:
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
                        "-v", "ON_ERROR_STOP=1", "-q", "-c", sql], check=True, capture_output=True)

    def url(self, database: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self.data.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.data, "postgres")
        subprocess.run(self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                                         "--no-sync"), check=True, capture_output=True)
        self.start_server()

    def start_server(self) -> None:
        """Start the cluster made by ``start`` (again, after ``stop``)."""
        options = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.data} -c fsync=off"
        subprocess.run(self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.data / "log"),
                                         "-o", options, "-w", "start"), check=True, capture_output=True)

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"),
                           capture_output=True)


class PuppetDBServer:
    """PostgreSQL + PuppetDB under ``root``; ``start()`` blocks until PuppetDB answers."""

    def __init__(self, root: Path, heap: str = "512m") -> None:
        self.root = root
        self.heap = heap
        self.postgres = PostgresServer(root)
        self.http_port = free_port()
        self.https_port = free_port()
        self.certs = make_certificates(root / "ssl")
        self.processes: List[subprocess.Popen] = []

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def _start_postgres(self) -> None:
        self.postgres.start()
        for sql in (
            "CREATE ROLE puppetdb LOGIN PASSWORD 'puppetdb'",
            "CREATE ROLE puppetdb_read LOGIN PASSWORD 'puppetdb'",
            "CREATE DATABASE puppetdb OWNER puppetdb ENCODING 'UTF8' TEMPLATE template0",
        ):
            self.postgres.psql(sql)
        for sql in (
            "CREATE EXTENSION pg_trgm",
            "ALTER DEFAULT PRIVILEGES FOR ROLE puppetdb IN SCHEMA public GRANT SELECT ON TABLES TO puppetdb_read",
        ):
            self.postgres.psql(sql, database="puppetdb")

    def _write_config(self) -> Path:
        conf = self.root / "conf.d"
        conf.mkdir()
        (self.root / "var").mkdir()
        (self.root / "logback.xml").write_text(
            '<configuration><appender name="F" class="ch.qos.logback.core.FileAppender">'
            f"<file>{self.root / 'puppetdb.log'}</file><encoder><pattern>%d %-5p [%c{{2}}] %m%n</pattern></encoder>"
            '</appender><root level="info"><appender-ref ref="F"/></root></configuration>'
        )
        (conf / "config.ini").write_text(
            f"[global]\nvardir = {self.root / 'var'}\nlogging-config = {self.root / 'logback.xml'}\n"
            "[command-processing]\nthreads = 2\n"
        )
        db = f"//127.0.0.1:{self.postgres.port}/puppetdb"
        (conf / "database.ini").write_text(
            f"[database]\nsubname = {db}\nusername = puppetdb\npassword = puppetdb\ngc-interval = 0\n"
            f"[read-database]\nsubname = {db}\nusername = puppetdb_read\npassword = puppetdb\n"
        )
        c = self.certs
        (conf / "jetty.ini").write_text(
            f"[jetty]\nhost = 127.0.0.1\nport = {self.http_port}\n"
            f"ssl-host = 127.0.0.1\nssl-port = {self.https_port}\n"
            f"ssl-key = {c.server_key}\nssl-cert = {c.server_cert}\nssl-ca-cert = {c.ca_cert}\n"
            "client-auth = need\n"
        )
        shutil.copy("/etc/puppetdb/conf.d/auth.conf", conf / "auth.conf")
        return conf

    def start(self, timeout: float = 300) -> None:
        self._start_postgres()
        conf = self._write_config()
        log = open(self.root / "puppetdb.out", "wb")
        # -XX:TieredStopAtLevel=1: the quick JIT only. Start-up is mostly loading Clojure,
        # which the optimising JIT slows down: a third less CPU (36 s -> 23 s user) for the start.
        self.processes.append(subprocess.Popen(
            ["java", f"-Xmx{self.heap}", "-XX:TieredStopAtLevel=1", "-Djava.security.egd=/dev/urandom", "-cp", str(PUPPETDB_JAR),
             "clojure.main", "-m", "puppetlabs.puppetdb.core", "services",
             "--config", str(conf), "--bootstrap-config", "/etc/puppetdb/bootstrap.cfg"],
            stdout=log, stderr=subprocess.STDOUT,
        ))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes[0].poll() is not None:
                raise RuntimeError(f"PuppetDB exited: {(self.root / 'puppetdb.out').read_text()[-2000:]}")
            try:
                if requests.get(self.http_url + "/pdb/meta/v1/version", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError("PuppetDB did not start in time")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        self.postgres.stop()

    # ---- loading data through the command API ----

    def command(self, name: str, version: int, certname: str, payload: dict, wait: int = 0) -> None:
        params = {"command": name, "version": version, "certname": certname}
        if wait:
            params["secondsToWaitForCompletion"] = wait
        response = requests.post(self.http_url + "/pdb/cmd/v1", params=params, json=payload, timeout=120)
        response.raise_for_status()

    def replace_facts(self, certname: str, facts: dict, wait: int = 0) -> None:
        self.command("replace facts", 5, certname, {
            "certname": certname, "environment": "production", "values": facts,
            "producer_timestamp": now(), "producer": "test.example.test",
        }, wait)

    def replace_catalog(self, certname: str, classes: Iterable[str], wait: int = 0) -> None:
        resources = [
            {"type": "Class", "title": title, "tags": ["class"], "exported": False, "parameters": {}}
            for title in classes
        ]
        self.command("replace catalog", 9, certname, {
            "certname": certname, "version": "1", "environment": "production", "transaction_uuid": str(uuid.uuid4()),
            "catalog_uuid": str(uuid.uuid4()), "producer_timestamp": now(), "producer": "test.example.test",
            "code_id": None, "job_id": None, "resources": resources, "edges": [],
        }, wait)

    def deactivate(self, certname: str, wait: int = 0) -> None:
        self.command("deactivate node", 3, certname, {"certname": certname, "producer_timestamp": now()}, wait)

    def query(self, pql: str) -> list:
        response = requests.get(self.http_url + "/pdb/query/v4", params={"query": pql}, timeout=120)
        response.raise_for_status()
        return response.json()

    def wait_for_queue(self, timeout: float = 600) -> None:
        """Until every submitted command has been processed."""
        deadline = time.monotonic() + timeout
        url = self.http_url + "/status/v1/services/puppetdb-status"
        while time.monotonic() < deadline:
            depth = requests.get(url, timeout=10).json().get("status", {}).get("queue_depth", 1)
            if depth == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("PuppetDB's command queue did not drain")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def facts_for(family: Optional[str], legacy_family: Optional[str] = None, extra: Optional[Dict] = None) -> dict:
    """A fact set: Puppet 8 style (structured os only) unless ``legacy_family`` adds ``osfamily``."""
    facts: dict = {"kernel": "Linux"}
    if family is not None:
        facts["os"] = {"family": family, "name": family}
    if legacy_family is not None:
        facts["osfamily"] = legacy_family
    facts.update(extra or {})
    return facts


def service_in_tempdir(make: Callable[[Path], Any], prefix: str) -> Iterator[Any]:
    """Start a service in a fresh directory and stop and remove it afterwards. Not
    under pytest's tmp_path: PostgreSQL runs as its own user, which cannot
    enter root's private pytest directory."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    server = make(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":  # a manual smoke run: start, print the URLs, wait for Ctrl-C
    root = Path(tempfile.mkdtemp(prefix="dropsonde-pdb-"))
    server = PuppetDBServer(root)
    start = time.monotonic()
    server.start()
    print(json.dumps({"http": server.http_url, "https": server.https_url, "root": str(root),
                      "seconds": round(time.monotonic() - start, 1)}))
    try:
        signal.pause()
    except KeyboardInterrupt:
        server.stop()
