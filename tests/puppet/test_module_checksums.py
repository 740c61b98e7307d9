"""checksums.json: which files of a Forge-installed module are still as published."""

from __future__ import annotations

import hashlib
import json

import pytest

from dropsonde.puppet.module_checksums import read_published_files


def test_no_checksums_json_means_no_list(tmp_path):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "init.pp").write_text("class m { }")
    published = read_published_files(tmp_path)
    assert not published.listed  # the Site then keeps only the main class
    assert published.set_aside(tmp_path, "manifests/init.pp") is None


def test_listed_unlisted_modified_and_dot_slash_paths(tmp_path):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "init.pp").write_bytes(b"class m { }\n")
    (tmp_path / "manifests" / "a.pp").write_bytes(b"class m::a { }\n")
    (tmp_path / "manifests" / "b.pp").write_bytes(b"class m::b { } # edited\n")
    sums = {"./manifests/init.pp": hashlib.md5(b"class m { }\n").hexdigest().upper(),
            "manifests/b.pp": hashlib.md5(b"class m::b { }\n").hexdigest()}
    (tmp_path / "checksums.json").write_text(json.dumps(sums))
    published = read_published_files(tmp_path)
    assert published.set_aside(tmp_path, "manifests/init.pp") is None
    assert published.set_aside(tmp_path, "manifests/a.pp") == "not listed in checksums.json (added by the site)"
    assert published.set_aside(tmp_path, "manifests/b.pp") == "differs from checksums.json (modified by the site)"


@pytest.mark.parametrize("content, problem", [
    (b"{", "not valid JSON"),
    (b'["manifests/init.pp"]', "not an object of file paths to MD5 sums"),
    (b'{"manifests/init.pp": 5}', "not an object of file paths to MD5 sums"),
    (b" " * (8 * 1024 * 1024 + 1), "cannot be read: larger than 8 MiB, the limit for a checksums.json"),
])
def test_an_unusable_checksums_json_sets_every_file_aside(tmp_path, content, problem):
    (tmp_path / "checksums.json").write_bytes(content)
    reason = read_published_files(tmp_path).set_aside(tmp_path, "manifests/init.pp", md5="0" * 32)
    assert reason == f"checksums.json is unusable ({problem})"
