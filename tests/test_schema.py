"""BigQuery column lists translated to JSON Schema: types, modes, records."""

from __future__ import annotations

import pytest

from dropsonde.schema import SchemaError, json_schema_for_column, json_schema_for_columns, schema_validator


def valid(schema, value) -> bool:
    return schema_validator(schema).is_valid(value)


def test_modes_and_scalar_types():
    assert valid(json_schema_for_column({"name": "n", "type": "INTEGER", "mode": "NULLABLE"}), None)
    assert not valid(json_schema_for_column({"name": "n", "type": "INTEGER", "mode": "REQUIRED"}), None)
    assert not valid(json_schema_for_column({"name": "n", "type": "INTEGER"}), "3")
    assert not valid(json_schema_for_column({"name": "n", "type": "INTEGER"}), 3.5)
    assert valid(json_schema_for_column({"name": "f", "type": "FLOAT"}), 3.5)
    assert not valid(json_schema_for_column({"name": "b", "type": "BOOLEAN"}), 1)
    assert valid(json_schema_for_column({"name": "s", "type": "STRING", "mode": "REPEATED"}), ["a", "b"])
    assert not valid(json_schema_for_column({"name": "s", "type": "STRING", "mode": "REPEATED"}), "ab")


def test_records_reject_undeclared_and_missing_required_fields():
    schema = json_schema_for_columns([
        {"name": "rows", "type": "RECORD", "mode": "REPEATED", "fields": [
            {"name": "name", "type": "STRING", "mode": "REQUIRED"},
            {"name": "count", "type": "INTEGER", "mode": "NULLABLE"},
        ]},
    ])
    assert valid(schema, {"rows": [{"name": "a", "count": 1}, {"name": "b", "count": None}]})
    assert not valid(schema, {"rows": [{"name": "a", "extra": "x"}]})
    assert not valid(schema, {"rows": [{"count": 1}]})
    assert not valid(schema, {"rows": [], "undeclared": 1})


@pytest.mark.parametrize(
    "column, message",
    [
        ({"name": "x", "type": "GEOGRAPHY"}, "unknown type"),
        ({"name": "x", "type": "STRING", "mode": "SOMETIMES"}, "unknown mode"),
        ({"name": "x", "type": "RECORD"}, "needs fields"),
        ({"type": "STRING"}, "without a name"),
    ],
)
def test_invalid_schemas(column, message):
    with pytest.raises(SchemaError, match=message):
        json_schema_for_columns([column])


def test_duplicate_column_in_one_record():
    with pytest.raises(SchemaError, match="defined twice"):
        json_schema_for_columns([{"name": "a", "type": "STRING"}, {"name": "a", "type": "INTEGER"}])


@pytest.mark.parametrize("kind", ["INTEGER", "INT64"])
@pytest.mark.parametrize("value, valid", [(0, True), (10**9, True), (7, True), (-5, False), (10**9 + 1, False),
                                          (10**30, False), (True, False), (False, False)])
def test_integers_are_bounded_for_every_plugin(kind, value, valid):
    """Review L2: a count of 10^30 (beyond INT64) or -5 passed validation. The bound is in
    the schema translation, so it holds for third-party plugins' INTEGER columns too."""
    schema = json_schema_for_columns([{"name": "rows", "type": "RECORD", "mode": "REPEATED",
                                  "fields": [{"name": "n", "type": kind, "mode": "REQUIRED"}]}])
    assert schema_validator(schema).is_valid({"rows": [{"n": value}]}) is valid
