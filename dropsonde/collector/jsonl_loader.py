"""`collector load`: rows as ``dev example`` writes them (the table layout),
each checked as ``serve`` checks a report before any is stored: the table's
schema, then the allowlist serve starts with (its Forge list and release
evidence, and the list caps). One refused row loads nothing: the file is
loaded in one transaction, so a load is whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterator, TextIO

from dropsonde.collector.allowlist import Allowlist
from dropsonde.collector.storage import open_store
from dropsonde.errors import BadInput
from dropsonde.wire import SKELETON_COLUMNS, parse_timestamp, sortable_timestamp
from dropsonde.wire_columns import METRIC_COLUMNS, REPORT_COLUMNS


class _Counter:
    def __init__(self) -> None:
        self.rows = 0


def load_jsonl(path: Path, db: str, allowlist: Allowlist) -> int:
    """Load ``path`` into the store ``db``; the number of rows loaded."""
    try:
        lines = path.open(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    store = open_store(db, allowlist=allowlist)
    counter = _Counter()
    with lines:
        store.insert_many(_checked_rows(path, lines, allowlist, counter))
    return counter.rows


def _checked_rows(path: Path, lines: TextIO, allowlist: Allowlist, counter: _Counter) -> Iterator[Dict[str, Any]]:
    """The file's rows, each checked before it is handed on; BadInput naming
    the line of the first refused one (the caller's transaction then stores nothing)."""
    from dropsonde.schema import json_schema_for_columns, schema_validator, validation_message

    validator = schema_validator(json_schema_for_columns([*SKELETON_COLUMNS, *METRIC_COLUMNS]))
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
        values = {column: row[column] for column in REPORT_COLUMNS if row.get(column) is not None}
        violation = allowlist.violation(REPORT_COLUMNS, values)
        if violation is not None:
            raise BadInput(f"{path}:{number}: {violation.message()}")
        row["timestamp"] = _utc(row["timestamp"], path, number)
        counter.rows += 1
        yield row


def _utc(value: str, path: Path, number: int) -> str:
    """Timestamps stored in one UTC form, so they sort as text."""
    moment = parse_timestamp(value)
    if moment is None:
        raise BadInput(f"{path}:{number}: timestamp: not ISO 8601: {value!r:.40}")
    return sortable_timestamp(moment)
