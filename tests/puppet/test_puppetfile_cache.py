"""Puppetfile results kept by content across runs: a warm run parses nothing."""

from __future__ import annotations

import json
import subprocess
import sys

from dropsonde.cache_dir import CacheDir
from dropsonde.puppet.puppetfile_cache import CACHE_FILENAME, PuppetfileCache, PuppetfileResult

PUPPETFILE = b"forge 'https://forge.puppet.com'\nmod 'puppetlabs-apache', '12.0.0'\nputs 'x'\nputs 'y'\ndef helper; end\n"
BROKEN = b"mod 'a'\nend\n"


def test_a_known_content_is_not_parsed_again(tmp_path):
    first = PuppetfileCache(CacheDir.open(tmp_path))
    result = first.result(PUPPETFILE)
    assert result == PuppetfileResult({"forge": 1, "mod": 1, "puts": 2}, ["helper"])
    assert first.result(PUPPETFILE) is result and first.parsed == 1  # a copy in another environment: once
    first.save()
    warm = PuppetfileCache(CacheDir.open(tmp_path))
    assert warm.result(PUPPETFILE) == result and warm.parsed == 0


def test_a_refusal_is_kept_too(tmp_path):
    first = PuppetfileCache(CacheDir.open(tmp_path))
    refused = first.result(BROKEN)
    assert refused.error and not refused.counts
    first.save()
    warm = PuppetfileCache(CacheDir.open(tmp_path))
    assert warm.result(BROKEN) == refused and warm.parsed == 0


def test_only_the_contents_of_the_last_run_are_kept(tmp_path):
    first = PuppetfileCache(CacheDir.open(tmp_path))
    first.result(PUPPETFILE)
    first.result(BROKEN)
    first.save()
    second = PuppetfileCache(CacheDir.open(tmp_path))
    second.result(PUPPETFILE)
    second.save()
    assert len(json.loads((tmp_path / CACHE_FILENAME).read_text())["contents"]) == 1


def test_a_damaged_or_foreign_cache_is_ignored(tmp_path):
    for content in (b"{broken", b'{"version": 1, "parser": "another reader", "contents": {}}', b"[" * 100_000,
                    json.dumps({"version": 1, "parser": "x", "contents": {"0" * 32: {"counts": {"mod": -1}}}}).encode()):
        (tmp_path / CACHE_FILENAME).write_bytes(content)
        cache = PuppetfileCache(CacheDir.open(tmp_path))
        assert cache.result(PUPPETFILE).counts["puts"] == 2 and cache.parsed == 1


def test_a_damaged_record_is_parsed_again(tmp_path):
    first = PuppetfileCache(CacheDir.open(tmp_path))
    first.result(PUPPETFILE)
    first.save()
    data = json.loads((tmp_path / CACHE_FILENAME).read_text())
    for record in data["contents"].values():
        record["counts"]["puts"] = "many"
    (tmp_path / CACHE_FILENAME).write_text(json.dumps(data))
    again = PuppetfileCache(CacheDir.open(tmp_path))
    assert again.result(PUPPETFILE).counts["puts"] == 2 and again.parsed == 1


def test_a_warm_run_does_not_import_tree_sitter(tmp_path):
    PuppetfileCache(CacheDir.open(tmp_path)).result(PUPPETFILE)
    cold = PuppetfileCache(CacheDir.open(tmp_path))
    cold.result(PUPPETFILE)
    cold.save()
    script = (f"import sys; from dropsonde.cache_dir import CacheDir; "
              f"from dropsonde.puppet.puppetfile_cache import PuppetfileCache; "
              f"c = PuppetfileCache(CacheDir.open({str(tmp_path)!r})); r = c.result({PUPPETFILE!r}); "
              f"print(c.parsed, 'tree_sitter' in sys.modules, r.counts['puts'])")
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert ran.stdout.split() == ["0", "False", "2"]
