"""Report schemas: BigQuery column lists (the skeleton every row starts with
is :data:`dropsonde.wire.SKELETON_COLUMNS`) and their translation to JSON Schema so that plugin data is checked by type
(not just by key) before it can be previewed or sent. Every INTEGER column holds
a whole number from 0 to :data:`MAX_INTEGER`, for third-party plugins too.

The probe checks that JSON Schema with :class:`SchemaValidator`, which knows
only the keywords the translation emits. A general validator (jsonschema)
loads every draft's metaschema, a reference registry and format checkers on
import: a third of a warm run's time and 6 MB, for nothing BigQuery types
need. Its verdicts and messages are jsonschema's (a property test compares
the two), so either may check the same data.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Tuple, Union

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


class ValidationIssue(NamedTuple):
    """Where data breaks its schema (keys and list indexes from the top) and how,
    with the attribute names of a jsonschema ValidationError."""

    absolute_path: Tuple[Union[str, int], ...]
    message: str


_Check = Callable[[Any, Tuple[Union[str, int], ...]], Iterator[ValidationIssue]]

_TYPE_TESTS: Dict[str, Callable[[Any], bool]] = {
    "string": lambda value: isinstance(value, str),
    # as JSON Schema draft 7: a bool is no number, 1.0 is an integer
    "integer": lambda value: not isinstance(value, bool)
    and (isinstance(value, int) or (isinstance(value, float) and value.is_integer())),
    "number": lambda value: not isinstance(value, bool) and isinstance(value, numbers.Number),
    "boolean": lambda value: isinstance(value, bool),
    "null": lambda value: value is None,
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
}


class SchemaValidator:
    """Checks data against a JSON Schema made by :func:`record_json_schema` or
    :func:`column_json_schema`; built once per schema, used for every check."""

    def __init__(self, schema: Dict[str, Any]) -> None:
        self._check = _compile(schema)

    def iter_errors(self, instance: Any) -> Iterator[ValidationIssue]:
        """Every issue, in the order jsonschema's Draft7Validator gives them."""
        return self._check(instance, ())

    def is_valid(self, instance: Any) -> bool:
        return next(self.iter_errors(instance), None) is None


def _compile(schema: Dict[str, Any]) -> _Check:
    """One check per keyword, in the schema's order (as jsonschema applies them)."""
    checks = [_keyword_check(keyword, value, schema) for keyword, value in schema.items()]

    def check(instance: Any, path: Tuple[Union[str, int], ...]) -> Iterator[ValidationIssue]:
        for keyword_check in checks:
            yield from keyword_check(instance, path)

    return check


def _keyword_check(keyword: str, value: Any, schema: Dict[str, Any]) -> _Check:
    if keyword == "type":
        test = _TYPE_TESTS[value]

        def check_type(instance: Any, path: Tuple[Union[str, int], ...]) -> Iterator[ValidationIssue]:
            if not test(instance):
                yield ValidationIssue(path, f"{instance!r} is not of type {value!r}")

        return check_type
    if keyword in ("minimum", "maximum"):
        below = keyword == "minimum"

        def check_bound(instance: Any, path: Tuple[Union[str, int], ...]) -> Iterator[ValidationIssue]:
            # as jsonschema: bounds apply to numbers only (a bool is none), the type is checked apart
            if _TYPE_TESTS["number"](instance) and (instance < value if below else instance > value):
                relation = "less than the minimum" if below else "greater than the maximum"
                yield ValidationIssue(path, f"{instance!r} is {relation} of {value!r}")

        return check_bound
    if keyword == "properties":
        properties = {name: _compile(subschema) for name, subschema in value.items()}

        def check_properties(instance: Any, path: Tuple[Union[str, int], ...]) -> Iterator[ValidationIssue]:
            if isinstance(instance, dict):
                for name, check in properties.items():
                    if name in instance:
                        yield from check(instance[name], path + (name,))

        return check_properties
    if keyword == "required":

        def check_required(instance: Any, path: Tuple[Union[str, int], ...]) -> Iterator[ValidationIssue]:
            if isinstance(instance, dict):
                for name in value:
                    if name not in instance:
                        yield ValidationIssue(path, f"{name!r} is a required property")

        return check_required
    if keyword == "additionalProperties" and value is False:
        declared = frozenset(schema.get("properties", {}))

        def check_additional(instance: Any, path: Tuple[Union[str, int], ...]) -> Iterator[ValidationIssue]:
            if isinstance(instance, dict):
                extras = sorted((key for key in instance if key not in declared), key=str)
                if extras:
                    verb = "was" if len(extras) == 1 else "were"
                    listed = ", ".join(repr(extra) for extra in extras)
                    yield ValidationIssue(path, f"Additional properties are not allowed ({listed} {verb} unexpected)")

        return check_additional
    if keyword == "items":
        item_check = _compile(value)

        def check_items(instance: Any, path: Tuple[Union[str, int], ...]) -> Iterator[ValidationIssue]:
            if isinstance(instance, list):
                for index, item in enumerate(instance):
                    yield from item_check(item, path + (index,))

        return check_items
    if keyword == "anyOf":
        alternatives = [_compile(subschema) for subschema in value]

        def check_any_of(instance: Any, path: Tuple[Union[str, int], ...]) -> Iterator[ValidationIssue]:
            if all(next(alternative(instance, path), None) is not None for alternative in alternatives):
                yield ValidationIssue(path, f"{instance!r} is not valid under any of the given schemas")

        return check_any_of
    raise SchemaError(f"JSON Schema keyword {keyword!r} is not one the BigQuery translation emits")


def validation_message(error: Any) -> str:
    """One line for a validation issue (ours or jsonschema's): where (column, row, field) and what."""
    where = ".".join(str(part) for part in error.absolute_path)
    return f"{where or 'data'}: {error.message}"


def field(name: str, kind: str, description: str, mode: str = "REQUIRED") -> Dict[str, Any]:
    """One BigQuery column or record field; plugins declare theirs with it."""
    return {"name": name, "type": kind, "mode": mode, "description": description}


def repeated_record(name: str, description: str, *fields: Dict[str, Any]) -> Dict[str, Any]:
    """A column holding a list of records (the shape of every list-valued metric)."""
    return {"name": name, "type": "RECORD", "mode": "REPEATED", "description": description, "fields": list(fields)}
