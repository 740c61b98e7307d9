"""Report schemas. Two words, never mixed: *columns* are BigQuery column
declarations (what a plugin's ``schema()`` returns; the skeleton every row starts
with is :data:`dropsonde.wire.SKELETON_COLUMNS`), and a *JSON Schema* is their
translation (``json_schema_for_column``, ``json_schema_for_columns``), so that
plugin data is checked by type (not just by key) before it can be previewed or sent. Every INTEGER column holds
a whole number from 0 to :data:`MAX_INTEGER`, for third-party plugins too.

That JSON Schema is checked by jsonschema (the project's chosen validator),
through :func:`schema_validator`: one validator per schema, built once per run,
and the library is imported only by the commands that validate data.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List

#: the largest INTEGER a report may carry: more than any count of nodes, classes
#: or calls, far below INT64, and the collector's own clamp (a value of 10^30
#: or -5 can only be a broken or hostile source, or a covert channel)
MAX_INTEGER = 10**9
_BOUNDED_INTEGER = {"type": "integer", "minimum": 0, "maximum": MAX_INTEGER}
_JSON_TYPES: Dict[str, Dict[str, Any]] = {
    "STRING": {"type": "string"},
    "INTEGER": _BOUNDED_INTEGER,
    "INT64": _BOUNDED_INTEGER,
    "FLOAT": {"type": "number"},
    "FLOAT64": {"type": "number"},
    "NUMERIC": {"type": "number"},
    "BOOLEAN": {"type": "boolean"},
    "BOOL": {"type": "boolean"},
    "TIMESTAMP": {"type": "string"},
    "DATE": {"type": "string"},
    "DATETIME": {"type": "string"},
}


class SchemaError(ValueError):
    """A plugin's schema is not a valid BigQuery column list."""


def json_schema_for_column(column: Dict[str, Any]) -> Dict[str, Any]:
    """JSON Schema for the values of one BigQuery column (mode included)."""
    kind = str(column.get("type", "")).upper()
    if kind in ("RECORD", "STRUCT"):
        fields = column.get("fields")
        if not isinstance(fields, list) or not fields:
            raise SchemaError(f"column {column.get('name')!r}: a RECORD needs fields")
        item: Dict[str, Any] = json_schema_for_columns(fields)
    elif kind in _JSON_TYPES:
        item = dict(_JSON_TYPES[kind])
    else:
        raise SchemaError(f"column {column.get('name')!r}: unknown type {column.get('type')!r}")
    mode = str(column.get("mode", "NULLABLE")).upper()
    if mode == "REPEATED":
        return {"type": "array", "items": item}
    if mode == "NULLABLE":
        return {"anyOf": [item, {"type": "null"}]}
    if mode == "REQUIRED":
        return item
    raise SchemaError(f"column {column.get('name')!r}: unknown mode {column.get('mode')!r}")


def json_schema_for_columns(columns: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
    """JSON Schema of an object holding ``columns``: no other keys, REQUIRED ones present."""
    properties: Dict[str, Any] = {}
    required: List[str] = []
    for column in columns:
        name = column.get("name")
        if not isinstance(name, str) or not name:
            raise SchemaError(f"column without a name: {column!r}")
        if name in properties:
            raise SchemaError(f"column {name!r} defined twice")
        properties[name] = json_schema_for_column(column)
        if str(column.get("mode", "NULLABLE")).upper() == "REQUIRED":
            required.append(name)
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def schema_validator(schema: Dict[str, Any]) -> Any:
    """A Draft 7 validator of ``schema`` (made by :func:`json_schema_for_columns` or
    :func:`json_schema_for_column`, so valid by construction): build it once and use it
    for every check. No format checker: BigQuery's types need none. jsonschema is
    imported here, not at the top, so ``--help``, ``list`` and ``dev schema`` never
    load it."""
    import jsonschema

    return jsonschema.Draft7Validator(schema)


def validation_message(error: Any) -> str:
    """One line for a jsonschema validation error: where (column, row, field) and what."""
    where = ".".join(str(part) for part in error.absolute_path)
    return f"{where or 'data'}: {error.message}"


def field(name: str, kind: str, description: str, mode: str = "REQUIRED") -> Dict[str, Any]:
    """One BigQuery column or record field; plugins declare theirs with it."""
    return {"name": name, "type": kind, "mode": mode, "description": description}


def repeated_record(name: str, description: str, *fields: Dict[str, Any]) -> Dict[str, Any]:
    """A column holding a list of records (the shape of every list-valued metric)."""
    return {"name": name, "type": "RECORD", "mode": "REPEATED", "description": description, "fields": list(fields)}
