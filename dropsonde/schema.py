"""Report schemas: BigQuery column lists, the skeleton columns every row has,
and their translation to JSON Schema so that plugin data is checked by type
(not just by key) before it can be previewed or sent.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List

SKELETON_COLUMNS: List[Dict[str, Any]] = [
    {"name": "message_id", "type": "STRING", "mode": "REQUIRED", "description": "Unique id of this report (UUID)"},
    {"name": "site_id", "type": "STRING", "mode": "REQUIRED", "description": "Anonymous, non-reversible id of the site"},
    {"name": "product", "type": "STRING", "mode": "REQUIRED", "description": "Product name (popularity-module)"},
    {"name": "version", "type": "STRING", "mode": "REQUIRED", "description": "Report format version"},
    {"name": "timestamp", "type": "TIMESTAMP", "mode": "REQUIRED", "description": "When the report was received"},
    {"name": "ip", "type": "STRING", "mode": "NULLABLE", "description": "Address the report came from"},
]

_JSON_TYPES = {
    "STRING": {"type": "string"},
    "INTEGER": {"type": "integer"},
    "INT64": {"type": "integer"},
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


def column_json_schema(column: Dict[str, Any]) -> Dict[str, Any]:
    """JSON Schema for the values of one BigQuery column (mode included)."""
    kind = str(column.get("type", "")).upper()
    if kind in ("RECORD", "STRUCT"):
        fields = column.get("fields")
        if not isinstance(fields, list) or not fields:
            raise SchemaError(f"column {column.get('name')!r}: a RECORD needs fields")
        item: Dict[str, Any] = record_json_schema(fields)
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


def record_json_schema(columns: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
    """JSON Schema of an object holding ``columns``: no other keys, REQUIRED ones present."""
    properties: Dict[str, Any] = {}
    required: List[str] = []
    for column in columns:
        name = column.get("name")
        if not isinstance(name, str) or not name:
            raise SchemaError(f"column without a name: {column!r}")
        if name in properties:
            raise SchemaError(f"column {name!r} defined twice")
        properties[name] = column_json_schema(column)
        if str(column.get("mode", "NULLABLE")).upper() == "REQUIRED":
            required.append(name)
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def validation_message(error: Any) -> str:
    """One line for a jsonschema ValidationError: where (column, row, field) and what."""
    where = ".".join(str(part) for part in error.absolute_path)
    return f"{where or 'data'}: {error.message}"


def field(name: str, kind: str, description: str, mode: str = "REQUIRED") -> Dict[str, Any]:
    """One BigQuery column or record field; plugins declare theirs with it."""
    return {"name": name, "type": kind, "mode": mode, "description": description}


def repeated_record(name: str, description: str, *fields: Dict[str, Any]) -> Dict[str, Any]:
    """A column holding a list of records (the shape of every list-valued metric)."""
    return {"name": name, "type": "RECORD", "mode": "REPEATED", "description": description, "fields": list(fields)}
