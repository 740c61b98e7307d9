"""Wiring for the collector commands: the known columns, serving, loading."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List

from dropsonde.collector.allowlist import Allowlist
from dropsonde.collector.storage import SKELETON, Store, open_store
from dropsonde.errors import DropsondeError
from dropsonde.forge import read_forge_file

log = logging.getLogger(__name__)
LOAD_BATCH = 1000


def known_columns() -> Dict[str, Dict[str, Any]]:
    """Every metric column of every installed plugin (built-in and entry points), by name."""
    from dropsonde.plugins import load_plugins
    from dropsonde.report import check_columns

    return {column["name"]: column for column in check_columns(load_plugins().enabled) if column["name"] not in SKELETON}


def store_for(db: str) -> Store:
    return open_store(db, list(known_columns()))


def parse_listen(listen: str) -> str:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DropsondeError(f"--listen: expected HOST:PORT, got {listen!r}")
    return listen


def load_allowlist(forge_cache: Path) -> Allowlist:
    """The allowlist from a forge.json (as `dropsonde update --cachepath` keeps
    it); a missing, unreadable or empty list stops the collector (fail closed)."""
    return Allowlist(read_forge_file(forge_cache).modules)


def serve(listen: str, db: str, settings: Any, forge_cache: Path, threads: int = 32, workers: int = 1) -> None:
    """Serve until interrupted, with waitress (a production WSGI server).

    Validation is CPU-bound Python, so one process uses one core: with
    ``workers`` > 1 the listening socket is bound once and shared by that many
    forked processes (the kernel spreads connections), each with its own
    group-commit writer; the store serializes their commits. Workers die with
    the parent.
    """
    parse_listen(listen)
    allowlist = load_allowlist(forge_cache)
    columns = known_columns()
    open_store(db, list(columns))  # schema created once, before any worker exists
    host, _, port = listen.rpartition(":")
    sock = socket.create_server((host.strip("[]"), int(port)), reuse_port=False, backlog=1024)
    log.warning("collector listening on %s with %d worker(s), storing in %s", listen, workers,
                db if "://" not in db else db.split("@")[-1])
    children = []
    for _ in range(workers - 1):
        pid = os.fork()
        if pid == 0:
            _die_with_parent()
            try:
                _serve_socket(sock, db, columns, settings, allowlist, threads)
            finally:
                os._exit(0)
        children.append(pid)
    try:
        _serve_socket(sock, db, columns, settings, allowlist, threads)
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _serve_socket(sock: socket.socket, db: str, columns: Dict[str, Dict[str, Any]], settings: Any,
                  allowlist: Allowlist, threads: int) -> None:
    import waitress

    from dropsonde.collector.app import CollectorApp

    store = open_store(db, list(columns))
    store.start_writer()
    app = CollectorApp(store, columns, settings, allowlist)
    # waitress warns at every request while its task queue is deeper than its
    # threads: normal under a burst, and one line per report is too many.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    try:
        waitress.serve(app, sockets=[sock], threads=threads, ident="dropsonde-collector",
                       max_request_body_size=settings.max_body + 1, clear_untrusted_proxy_headers=True)
    finally:
        store.close()


def _die_with_parent() -> None:
    """Linux: a worker gets SIGKILL when the parent dies, however it dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def load_jsonl(path: Path, db: str) -> int:
    """Load ``dev example`` rows (the table layout) after checking each against the schema."""
    import jsonschema

    from dropsonde.plugins import load_plugins
    from dropsonde.report import check_columns
    from dropsonde.schema import record_json_schema, validation_message

    columns = check_columns(load_plugins().enabled)
    validator = jsonschema.Draft7Validator(record_json_schema(columns))
    store = open_store(db, [c["name"] for c in columns if c["name"] not in SKELETON])
    batch: List[Dict[str, Any]] = []
    loaded = 0
    try:
        lines = path.open(encoding="utf-8")
    except OSError as exc:
        raise DropsondeError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DropsondeError(f"{path}:{number}: not JSON ({str(exc)[:80]})") from None
            error = next(iter(validator.iter_errors(row)), None)
            if error is not None:
                raise DropsondeError(f"{path}:{number}: {validation_message(error)[:200]}")
            row["timestamp"] = _utc(row["timestamp"], path, number)
            batch.append(row)
            if len(batch) >= LOAD_BATCH:
                store.insert_many(batch)
                loaded += len(batch)
                batch = []
    if batch:
        store.insert_many(batch)
        loaded += len(batch)
    return loaded


def _utc(value: str, path: Path, number: int) -> str:
    """Timestamps stored in one UTC form, so they sort as text."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise DropsondeError(f"{path}:{number}: timestamp: not ISO 8601: {value!r:.40}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")
