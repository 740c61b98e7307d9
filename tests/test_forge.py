"""Reading the Forge module cache: the public/private decision fails closed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from dropsonde.forge import load_forge_cache
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
