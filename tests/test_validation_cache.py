"""Schema verdicts kept by content: a warm run whose data was found valid never imports jsonschema."""

from __future__ import annotations

import json
import shutil
from collections import OrderedDict

import pytest

from dropsonde.cache_dir import CacheDir
from dropsonde.schema import json_schema_for_columns, repeated_record, field
from dropsonde.validation_cache import CACHE_FILENAME, MAX_DEPTH, Verdicts, plain_json, verdict_key
from tests.support.cli import run_dropsonde
from tests.support.paths import EXAMPLE_SITE

SCHEMA = json_schema_for_columns([
    repeated_record("things", "Things counted", field("name", "STRING", "Its name"), field("count", "INTEGER", "How many")),
])
VALID = {"things": [{"name": "a", "count": 1}]}


def _errors(verdicts: Verdicts, data: object) -> list:
    return [error.message for error in verdicts.check(SCHEMA).iter_errors(data)]


def _saved(tmp_path, *data: object) -> Verdicts:
    """Verdicts of a run that checked ``data``, saved; then those a next run loads."""
    first = Verdicts(CacheDir.open(tmp_path))
    for item in data:
        _errors(first, item)
    first.save()
    return Verdicts(CacheDir.open(tmp_path))


def test_data_found_valid_is_not_checked_again(tmp_path):
    warm = _saved(tmp_path, VALID)
    assert _errors(warm, VALID) == [] and warm.checked == 0
    changed = {"things": [{"name": "a", "count": 2}]}
    assert _errors(warm, changed) == [] and warm.checked == 1


def test_invalid_data_is_checked_at_every_run(tmp_path):
    invalid = {"things": [{"name": "a", "count": "1"}]}
    warm = _saved(tmp_path, VALID, invalid)
    assert _errors(warm, invalid) == ["'1' is not of type 'integer'"] and warm.checked == 1
    assert json.loads((tmp_path / CACHE_FILENAME).read_text())["valid"] == [verdict_key(SCHEMA, VALID)]


@pytest.mark.parametrize("lookalike", [
    {"things": ({"name": "a", "count": 1},)},  # a tuple encodes as a list but is no JSON array to jsonschema
    {"things": [OrderedDict(name="a", count=1)]},  # a dict subclass
    {"things": [{"name": type("Name", (str,), {})("a"), "count": 1}]},  # a str subclass
])
def test_data_that_only_encodes_like_known_data_is_checked(tmp_path, lookalike):
    warm = _saved(tmp_path, VALID)
    assert json.dumps(lookalike) == json.dumps(VALID)
    _errors(warm, lookalike)
    assert warm.checked == 1


def test_only_the_last_runs_verdicts_are_kept(tmp_path):
    other = {"things": []}
    second = _saved(tmp_path, VALID)
    _errors(second, other)
    second.save()
    third = Verdicts(CacheDir.open(tmp_path))
    _errors(third, VALID)
    assert third.checked == 1  # VALID was not seen by the second run, so it was forgotten


@pytest.mark.parametrize("content", [
    b"\x00garbage",
    b'{"version": 1, "validator": "another", "valid": ["%s"]}',
    b'{"version": 2, "validator": "%s", "valid": []}',
])
def test_a_damaged_or_foreign_file_is_ignored(tmp_path, content):
    key = verdict_key(SCHEMA, VALID)
    (tmp_path / CACHE_FILENAME).write_bytes(content.replace(b"%s", key.encode()) if b"%s" in content else content)
    verdicts = Verdicts(CacheDir.open(tmp_path))
    assert _errors(verdicts, VALID) == [] and verdicts.checked == 1


def test_plain_json_is_exactly_jsons_types():
    assert plain_json({"a": [1, 2.5, "x", True, None, {"b": []}]})
    assert not plain_json({1: "a"})
    assert not plain_json([b"bytes"])
    assert not plain_json(set())
    deep: list = []
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    assert not plain_json(deep)
    assert verdict_key(SCHEMA, {"things": [{"name": "a", "count": float("nan")}]}) is None


def test_a_warm_preview_does_not_import_the_schema_library(tmp_path):
    """End to end: the second of two identical runs answers every check from
    validated.json, and prints the same report."""
    root = tmp_path / "site"
    shutil.copytree(EXAMPLE_SITE, root, symlinks=True)
    args = ["--confdir", str(root / "puppet"), "--codedir", str(root / "code"), "--cachepath", str(root / "cache"),
            "preview", "--format", "json"]
    profile = {"PYTHONPROFILEIMPORTTIME": "1"}
    runs = [run_dropsonde(*args, env=profile) for _ in range(2)]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr
    imported = [{line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
                for run in runs]
    assert "jsonschema" in imported[0] and "jsonschema" not in imported[1]
    snapshots = [run.json()["self-service-analytics"]["snapshots"] for run in runs]
    assert [{k: v["value"] for k, v in s.items()} for s in snapshots][0] == {k: v["value"] for k, v in snapshots[1].items()}
