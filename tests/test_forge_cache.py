"""Reading the Forge module cache (the public/private decision fails closed), and writing it whole."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given

from dropsonde.cache_dir import CacheDir
from dropsonde.forge_cache import load_forge_cache, save_forge_cache
from tests.support.fuzzing import EXAMPLE_CPU_LIMIT, FUZZ, source_bytes
from tests.support.puppet_tree import write
from tests.support.time_limits import cpu_limit


def test_reads_the_ruby_clients_file(tmp_path):
    write(
        tmp_path / "forge.json",
        json.dumps({"timestamp": "2026-11-20T10:00:00-07:00", "modules": ["puppetlabs-apache", "Puppet/nginx"]}),
    )
    cache = load_forge_cache(CacheDir.open(tmp_path))
    assert cache.problem is None
    assert cache.is_public("puppetlabs-apache") and cache.is_public("puppetlabs/apache")
    assert cache.is_public("puppet-nginx")
    assert not cache.is_public("acme-apache") and not cache.is_public(None)
    now = datetime(2026, 11, 27, 17, 0, tzinfo=timezone.utc)
    assert cache.age(now) == timedelta(days=7)


@pytest.mark.parametrize(
    "content, problem",
    [
        (None, "no Forge module cache"),
        ("{broken", "not valid JSON"),
        ('{"modules": ' + "[" * 100_000, "nested more than 32 levels deep"),  # once a RecursionError
        ('{"modules": "puppetlabs-apache"}', "no 'modules' list"),
        ('{"modules": []}', "lists no modules"),
        ('{"modules": ["not a slug", 7]}', "lists no modules"),
    ],
)
def test_missing_or_bad_cache_makes_nothing_public(tmp_path, content, problem):
    if content is not None:
        write(tmp_path / "forge.json", content)
    cache = load_forge_cache(CacheDir.open(tmp_path))
    assert problem in cache.problem
    assert str(tmp_path) not in cache.problem  # shown in the preview: no paths
    assert not cache.is_public("puppetlabs-apache")
    assert cache.age(datetime.now(timezone.utc)) is None


NOW = datetime(2026, 11, 27, 17, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("key", ["timestamp", "forge_updated_at"])
def test_a_cache_dated_in_the_future_makes_nothing_public(tmp_path, key):
    """It was either tampered with or written by a wrong clock; either way it would never expire."""
    write(tmp_path / "forge.json", json.dumps({"timestamp": "2026-11-20T00:00:00+00:00", key: "9999-12-31T00:00:00+00:00",
                                               "modules": ["puppetlabs-apache"]}))
    cache = load_forge_cache(CacheDir.open(tmp_path), NOW)
    assert "dated in the future" in cache.problem and key in cache.problem
    assert not cache.is_public("puppetlabs-apache")
    assert cache.age(NOW) is None  # so a refresh is due at once


def test_a_little_clock_skew_is_tolerated(tmp_path):
    for ahead, accepted in ((timedelta(minutes=50), True), (timedelta(minutes=70), False)):
        write(tmp_path / "forge.json", json.dumps({"timestamp": (NOW + ahead).isoformat(), "modules": ["puppetlabs-apache"]}))
        assert load_forge_cache(CacheDir.open(tmp_path), NOW).is_public("puppetlabs-apache") is accepted


def test_saving_the_cache_keeps_the_old_file_until_the_new_one_is_whole(tmp_path):
    """save_forge_cache goes through CacheDir.write (write_atomic_at, tested in test_atomic_file.py):
    a write the file system refuses midway (a 4 KiB size limit standing for a full
    disk) leaves the old list, and a good one replaces the file, not its bytes."""
    old = write(tmp_path / "forge.json", json.dumps({"timestamp": "2026-11-01T00:00:00+00:00", "modules": ["a-b"]}))
    before, inode = old.read_bytes(), old.stat().st_ino
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from datetime import datetime, timezone
        from dropsonde.cache_dir import CacheDir
        from dropsonde.forge_cache import save_forge_cache
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
        try:
            save_forge_cache(CacheDir.open({str(tmp_path)!r}), [f"author-module{{i}}" for i in range(20000)],
                             datetime.now(timezone.utc), None)
        except OSError as exc:
            sys.exit(f"refused: {{exc.strerror}}")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "refused: File too large" in result.stderr, result.stderr
    assert old.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["forge.json"]
    save_forge_cache(CacheDir.open(tmp_path), ["c-d"], datetime(2026, 11, 27, tzinfo=timezone.utc), None)
    assert load_forge_cache(CacheDir.open(tmp_path)).modules == {"c-d"}
    assert old.stat().st_ino != inode


FORGE_JSON_VOCABULARY = ['{"modules": [', '"puppetlabs-apache"', ", ", "]", "}", '"timestamp": ', '"2026-11-20T00:00:00+00:00"',
                         '"forge_updated_at": ', '"9999-12-31T00:00:00+00:00"', "[", "{", "1e999", "NaN", '"\\ud800"', "null"]


@FUZZ
@given(source_bytes(FORGE_JSON_VOCABULARY, run_size=200_000))
def test_any_forge_json_is_read_or_makes_nothing_public_with_a_reason(tmp_path_factory, data):
    """The cache never raises (a traceback would stop every report): deep nesting,
    huge numbers, damaged text all give an empty list and a one-line problem."""
    directory = tmp_path_factory.getbasetemp() / "fuzzed_forge"
    directory.mkdir(exist_ok=True)
    (directory / "forge.json").write_bytes(data)
    with cpu_limit(EXAMPLE_CPU_LIMIT):
        cache = load_forge_cache(CacheDir.open(directory), NOW)
    assert cache.modules or (cache.problem and "\n" not in cache.problem)
