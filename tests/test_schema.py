"""BigQuery column lists translated to JSON Schema: types, modes, records."""

from __future__ import annotations

import jsonschema
import pytest

from dropsonde.schema import SchemaError, column_json_schema, record_json_schema


def valid(schema, value) -> bool:
    return jsonschema.Draft7Validator(schema).is_valid(value)


def test_modes_and_scalar_types():
    assert valid(column_json_schema({"name": "n", "type": "INTEGER", "mode": "NULLABLE"}), None)
    assert not valid(column_json_schema({"name": "n", "type": "INTEGER", "mode": "REQUIRED"}), None)
    assert not valid(column_json_schema({"name": "n", "type": "INTEGER"}), "3")
    assert not valid(column_json_schema({"name": "n", "type": "INTEGER"}), 3.5)
    assert valid(column_json_schema({"name": "f", "type": "FLOAT"}), 3.5)
    assert not valid(column_json_schema({"name": "b", "type": "BOOLEAN"}), 1)
    assert valid(column_json_schema({"name": "s", "type": "STRING", "mode": "REPEATED"}), ["a", "b"])
    assert not valid(column_json_schema({"name": "s", "type": "STRING", "mode": "REPEATED"}), "ab")


def test_records_reject_undeclared_and_missing_required_fields():
    schema = record_json_schema([
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
        record_json_schema([column])


def test_duplicate_column_in_one_record():
    with pytest.raises(SchemaError, match="defined twice"):
        record_json_schema([{"name": "a", "type": "STRING"}, {"name": "a", "type": "INTEGER"}])


# --- SchemaValidator: jsonschema's verdicts and messages, without loading jsonschema ---

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dropsonde.schema import SchemaValidator  # noqa: E402

SCALAR_TYPES = ["STRING", "INTEGER", "INT64", "FLOAT", "FLOAT64", "NUMERIC", "BOOLEAN", "BOOL", "TIMESTAMP", "DATE"]
NAMES = ["name", "count", "slug", "version", "rows"]
MODES = ["REQUIRED", "NULLABLE", "REPEATED"]


def _columns(depth: int):
    scalar = st.builds(lambda kind, mode: {"type": kind, "mode": mode}, st.sampled_from(SCALAR_TYPES), st.sampled_from(MODES))
    column = scalar if depth == 0 else st.one_of(
        scalar,
        st.builds(lambda mode, fields: {"type": "RECORD", "mode": mode, "fields": fields}, st.sampled_from(MODES), _columns(depth - 1)),
    )
    return st.lists(st.tuples(st.sampled_from(NAMES), column), min_size=1, max_size=4, unique_by=lambda pair: pair[0]).map(
        lambda pairs: [dict(column, name=name) for name, column in pairs]
    )


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([1.0, -2.0, 0.5])
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=3),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(NAMES + ["extra", "x"]), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(columns=_columns(2), data=st.dictionaries(st.sampled_from(NAMES + ["extra"]), JSON_VALUES, max_size=5))
def test_schema_validator_agrees_with_jsonschema(columns, data):
    """Same issues, in the same order, with the same paths and messages, as Draft7Validator."""
    schema = record_json_schema(columns)
    ours = [(tuple(e.absolute_path), e.message) for e in SchemaValidator(schema).iter_errors(data)]
    theirs = [(tuple(e.absolute_path), e.message) for e in jsonschema.Draft7Validator(schema).iter_errors(data)]
    assert ours == theirs


@pytest.mark.parametrize("kind", ["INTEGER", "FLOAT", "BOOLEAN", "STRING"])
@pytest.mark.parametrize("value", [1, 1.0, 0.5, True, False, None, "1", [1], {"a": 1}, 10**30, -5, 0, 10**9,
                                   10**9 + 1, -0.5, 1e30, float("inf")])
def test_schema_validator_agrees_with_jsonschema_on_edge_values(kind, value):
    schema = record_json_schema([{"name": "v", "type": kind, "mode": "NULLABLE"},
                                 {"name": "r", "type": kind, "mode": "REPEATED"}])
    data = {"v": value, "r": [value, value]}
    ours = [(tuple(e.absolute_path), e.message) for e in SchemaValidator(schema).iter_errors(data)]
    theirs = [(tuple(e.absolute_path), e.message) for e in jsonschema.Draft7Validator(schema).iter_errors(data)]
    assert ours == theirs


def test_schema_validator_refuses_keywords_the_translation_never_emits():
    with pytest.raises(SchemaError, match="'pattern'"):
        SchemaValidator({"type": "string", "pattern": "^a"})


@pytest.mark.parametrize("kind", ["INTEGER", "INT64"])
@pytest.mark.parametrize("value, valid", [(0, True), (10**9, True), (7, True), (-5, False), (10**9 + 1, False),
                                          (10**30, False), (True, False), (False, False)])
def test_integers_are_bounded_for_every_plugin(kind, value, valid):
    """Review L2: a count of 10^30 (beyond INT64) or -5 passed validation. The bound is in
    the schema translation, so it holds for third-party plugins' INTEGER columns too."""
    schema = record_json_schema([{"name": "rows", "type": "RECORD", "mode": "REPEATED",
                                  "fields": [{"name": "n", "type": kind, "mode": "REQUIRED"}]}])
    assert SchemaValidator(schema).is_valid({"rows": [{"n": value}]}) is valid
    assert jsonschema.Draft7Validator(schema).is_valid({"rows": [{"n": value}]}) is valid
