"""The single JSON entry point: every refusal is one InvalidJSON with a one-line reason."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dropsonde.json_input import MAX_JSON_DEPTH, InvalidJSON, load_json
from tests.support.fuzzing import EXAMPLE_CPU_LIMIT, FUZZ, source_bytes
from tests.support.time_limits import cpu_limit


def test_plain_documents_are_read():
    assert load_json(b'{"name": "puppetlabs-apache", "deps": [1, 2.5, null, true]}', 1000) == {
        "name": "puppetlabs-apache", "deps": [1, 2.5, None, True]}
    assert load_json('["\u00e9"]', 100) == ["\u00e9"]


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 900, 100_000])
def test_deep_nesting_is_refused_not_a_recursion_error(depth):
    with pytest.raises(InvalidJSON, match=f"nested more than {MAX_JSON_DEPTH} levels deep"):
        load_json(b"[" * depth + b"]" * depth, 10 * 1024 * 1024)
    with pytest.raises(InvalidJSON, match="nested more than"):
        load_json(b'{"a":' * depth + b"1" + b"}" * depth, 10 * 1024 * 1024)


def test_nesting_at_the_limit_is_read():
    value = load_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, 1000)
    for _ in range(MAX_JSON_DEPTH - 1):
        value = value[0]
    assert value == []


def test_size_is_checked_before_anything_is_decoded():
    assert load_json(b"[1]", 3) == [1]
    with pytest.raises(InvalidJSON, match="larger than 3 bytes"):
        load_json(b"[1 ]", 3)


def test_the_number_of_values_bounds_memory():
    """[[],[],...]: 3 bytes of input make a 56-byte list; the count is checked on the raw bytes."""
    assert len(load_json(b"[" + b",".join([b"[]"] * 99) + b"]", 10_000, max_values=200)) == 99
    with pytest.raises(InvalidJSON, match="more than 100 values"):
        load_json(b"[" + b",".join([b"[]"] * 99) + b"]", 10_000, max_values=100)


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}', "\ufeff[]", '["\\ud800"]',
                                  '{"\\udfff": 1}', "9" * 5000, "[1e999]", "", "[1,]", "{'a': 1}"])
def test_not_strict_json_is_refused(text):
    with pytest.raises(InvalidJSON, match="not valid JSON"):
        load_json(text.encode("utf-8"), 100_000)


def test_a_surrogate_pair_escape_is_one_character():
    assert load_json(b'["\\ud83d\\ude00"]', 100) == ["\U0001F600"]


def test_invalid_utf8_is_refused():
    with pytest.raises(InvalidJSON, match="not valid UTF-8"):
        load_json(b'["\xff"]', 100)


def test_reasons_are_one_short_line():
    with pytest.raises(InvalidJSON) as caught:
        load_json(b'{"a":\n\n\n' + b"x" * 5000, 100_000)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 140


@FUZZ
@given(source_bytes(['{', '}', '[', ']', '"', ',', ':', '1', '-1e999', 'null', 'true', '"\\u', 'd800', '\\"'],
                    run_size=200_000))
def test_any_bytes_give_a_value_or_invalid_json_within_budget(data):
    with cpu_limit(EXAMPLE_CPU_LIMIT):
        try:
            value = load_json(data, 1024 * 1024)
        except InvalidJSON as exc:
            assert "\n" not in str(exc)
            return
    json.dumps(value).encode("utf-8")  # whatever was read can be written out again


def test_without_a_depth_limit_only_the_decoders_own_is_left():
    value = load_json(b"[" * 100 + b"]" * 100, 1000, max_depth=None)
    for _ in range(99):
        value = value[0]
    assert value == []
    with pytest.raises(InvalidJSON, match="nested more than a thousand levels deep"):
        load_json(b"[" * 100_000 + b"]" * 100_000, 10**6, max_depth=None)


def _depth(value) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    return 0


NESTED = st.recursive(st.none() | st.integers() | st.text(alphabet='[]{}"\\,:ab\n'),
                      lambda children: st.lists(children, max_size=3)
                      | st.dictionaries(st.text(alphabet='[]{}"\\ab'), children, max_size=3), max_leaves=40)


@FUZZ
@given(NESTED, st.integers(min_value=1, max_value=8))
def test_the_depth_is_measured_on_the_bytes_as_the_decoder_would(value, limit):
    """Brackets, quotes and backslashes inside strings are no nesting: a document is
    refused before decoding exactly when its arrays and objects nest deeper than the limit."""
    document = json.dumps(value, ensure_ascii=False).encode("utf-8")
    if _depth(value) > limit:
        with pytest.raises(InvalidJSON, match=f"nested more than {limit} levels deep"):
            load_json(document, 10**6, max_depth=limit)
    else:
        assert load_json(document, 10**6, max_depth=limit) == value


def test_a_deep_document_is_refused_before_the_decoder_goes_deep():
    """The decoder makes one C call per level: a garbage collection while it was a
    thousand levels down ran callbacks and finalizers with no stack left, and Python
    printed "Exception ignored in ...: RecursionError" on stderr (seen in a submit)."""
    import gc

    def a_hundred_frames(n: int = 100) -> int:
        return 0 if n == 0 else 1 + a_hundred_frames(n - 1)

    out_of_stack = []

    def callback(phase, info):
        try:
            a_hundred_frames()
        except RecursionError as exc:
            out_of_stack.append(exc)

    threshold = gc.get_threshold()
    gc.callbacks.append(callback)
    gc.set_threshold(1)  # a collection at every allocation: at every level of the decoder
    try:
        with pytest.raises(InvalidJSON, match=f"nested more than {MAX_JSON_DEPTH} levels deep"):
            load_json(b"[" * 100_000 + b"]" * 100_000, 10**6)
    finally:
        gc.callbacks.remove(callback)
        gc.set_threshold(*threshold)
    assert out_of_stack == []
