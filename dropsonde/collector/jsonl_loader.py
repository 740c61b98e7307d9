"""`collector load`: rows as ``dev example`` writes them (the table layout),
each checked against the report's columns before it is stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

from dropsonde.collector.storage import open_store
from dropsonde.errors import BadInput
from dropsonde.wire import SKELETON_COLUMNS, parse_timestamp, sortable_timestamp
from dropsonde.wire_columns import METRIC_COLUMNS

LOAD_BATCH = 1000


def load_jsonl(path: Path, db: str) -> int:
    """Load ``path`` into the store ``db``; the number of rows loaded."""
    from dropsonde.schema import json_schema_for_columns, schema_validator, validation_message

    validator = schema_validator(json_schema_for_columns([*SKELETON_COLUMNS, *METRIC_COLUMNS]))
    store = open_store(db)
    batch: List[Dict[str, Any]] = []
    loaded = 0
    try:
        lines = path.open(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    with lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise BadInput(f"{path}:{number}: not JSON ({str(exc)[:80]})") from None
            error = next(iter(validator.iter_errors(row)), None)
            if error is not None:
                raise BadInput(f"{path}:{number}: {validation_message(error)[:200]}")
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
    moment = parse_timestamp(value)
    if moment is None:
        raise BadInput(f"{path}:{number}: timestamp: not ISO 8601: {value!r:.40}")
    return sortable_timestamp(moment)
