"""Wiring for the collector commands: the known columns, serving, loading."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List

from dropsonde.collector.storage import SKELETON, Store, open_store
from dropsonde.errors import DropsondeError

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


def serve(listen: str, db: str, settings: Any, threads: int = 16) -> None:
    """Serve until interrupted, with waitress (a production WSGI server)."""
    import waitress

    from dropsonde.collector.app import CollectorApp

    parse_listen(listen)
    columns = known_columns()
    store = open_store(db, list(columns))
    store.start_writer()
    app = CollectorApp(store, columns, settings)
    log.warning("collector listening on %s, storing in %s", listen, db if "://" not in db else db.split("@")[-1])
    try:
        waitress.serve(app, listen=listen, threads=threads, ident="dropsonde-collector",
                       max_request_body_size=settings.max_body + 1, clear_untrusted_proxy_headers=True)
    finally:
        store.close()


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
