"""Reading the Forge module cache: the public/private decision fails closed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from dropsonde.forge_cache import load_forge_cache
from tests.conftest import write


def test_reads_the_ruby_clients_file(tmp_path):
    write(
        tmp_path / "forge.json",
        json.dumps({"timestamp": "2026-11-20T10:00:00-07:00", "modules": ["puppetlabs-apache", "Puppet/nginx"]}),
    )
    cache = load_forge_cache(tmp_path)
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
        ('{"modules": "puppetlabs-apache"}', "no 'modules' list"),
        ('{"modules": []}', "lists no modules"),
        ('{"modules": ["not a slug", 7]}', "lists no modules"),
    ],
)
def test_missing_or_bad_cache_makes_nothing_public(tmp_path, content, problem):
    if content is not None:
        write(tmp_path / "forge.json", content)
    cache = load_forge_cache(tmp_path)
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
    cache = load_forge_cache(tmp_path, NOW)
    assert "dated in the future" in cache.problem and key in cache.problem
    assert not cache.is_public("puppetlabs-apache")
    assert cache.age(NOW) is None  # so a refresh is due at once


def test_a_little_clock_skew_is_tolerated(tmp_path):
    for ahead, accepted in ((timedelta(minutes=50), True), (timedelta(minutes=70), False)):
        write(tmp_path / "forge.json", json.dumps({"timestamp": (NOW + ahead).isoformat(), "modules": ["puppetlabs-apache"]}))
        assert load_forge_cache(tmp_path, NOW).is_public("puppetlabs-apache") is accepted
