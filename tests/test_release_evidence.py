"""The release evidence format: what is kept per published release, read back strictly."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from dropsonde.cache_dir import CacheDir
from dropsonde.errors import BadInput
from dropsonde.release_evidence import (
    EVIDENCE_FILENAME,
    PublishedManifest,
    Release,
    ReleaseEvidence,
    Unavailable,
    evidence_json,
    load_evidence,
    parse_release_key,
    read_evidence_file,
    read_release_list,
    save_evidence,
)

NOW = datetime(2026, 12, 6, 23, 0, tzinfo=timezone.utc)
SHA = "a" * 64


def ntp_release() -> Release:
    return Release("puppetlabs-ntp", "10.0.0", SHA, NOW.isoformat(), {
        "init.pp": PublishedManifest(SHA, ("ntp", "ntp::inlined", "other")),
        "config.pp": PublishedManifest(SHA, ("ntp::config",)),
        "config/file.pp": PublishedManifest(SHA, ("ntp::config::file", "ntp::config::file::part")),
    })


def test_evidence_survives_the_round_trip_through_the_cache(tmp_path):
    evidence = ReleaseEvidence().merged([ntp_release()], {"acme-ntp-1.0.0": Unavailable(NOW.isoformat(), "not published")})
    with CacheDir.open(tmp_path) as cache:
        save_evidence(cache, evidence)
        assert load_evidence(cache) == evidence
    assert read_evidence_file(tmp_path / EVIDENCE_FILENAME) == evidence


def test_a_release_publishes_only_what_the_autoloader_finds_in_its_namespace():
    assert ntp_release().public_classes() == {"ntp", "ntp::inlined", "ntp::config", "ntp::config::file", "ntp::config::file::part"}


def test_known_releases_are_never_asked_again_and_unavailable_ones_after_the_ttl():
    evidence = ReleaseEvidence().merged([ntp_release()], {
        "acme-ntp-1.0.0": Unavailable((NOW - timedelta(days=8)).isoformat(), "x"),
        "acme-ntp-2.0.0": Unavailable((NOW - timedelta(days=1)).isoformat(), "x"),
    })
    week = timedelta(days=7)
    assert evidence.is_known("puppetlabs-ntp", "10.0.0", NOW, week)
    assert not evidence.is_known("acme-ntp", "1.0.0", NOW, week)
    assert evidence.is_known("acme-ntp", "2.0.0", NOW, week)
    assert not evidence.is_known("puppetlabs-ntp", "10.0.1", NOW, week)


def test_a_damaged_cache_file_proves_nothing(tmp_path):
    (tmp_path / EVIDENCE_FILENAME).write_text("{nope")
    with CacheDir.open(tmp_path) as cache:
        evidence = load_evidence(cache)
    assert evidence.problem and "not valid JSON" in evidence.problem and not evidence.releases


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.update(slug="puppetlabs-apache"), "slug and version"),
    (lambda r: r.update(version="10.0.0-acme1"), "slug and version"),
    (lambda r: r["manifests"].update({"../../etc/x.pp": {"sha256": SHA, "classes": []}}), "not an autoloadable"),
    (lambda r: r["manifests"]["init.pp"].update(sha256="0" * 63), "not a SHA-256"),
    (lambda r: r["manifests"]["init.pp"].update(classes=["Ntp::X"]), "list of class names"),
    (lambda r: r.update(file_sha256=None), "file_sha256"),
])
def test_a_bad_bundle_is_refused_naming_the_entry(tmp_path, edit, message):
    data = json.loads(evidence_json(ReleaseEvidence().merged([ntp_release()], {})))
    edit(data["releases"]["puppetlabs-ntp-10.0.0"])
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps(data))
    with pytest.raises(BadInput, match=message) as raised:
        read_evidence_file(bundle)
    assert str(bundle) in str(raised.value)


def test_release_keys_and_lists():
    assert parse_release_key("puppetlabs-stdlib-9.4.1") == ("puppetlabs-stdlib", "9.4.1")
    for bad in ("puppetlabs-stdlib", "puppetlabs/stdlib-9.4.1", "puppetlabs-stdlib-9.4.1-rc1", "x-9.4.1", "-1.0.0"):
        assert parse_release_key(bad) is None, bad


def test_a_release_list_names_the_first_bad_line(tmp_path):
    listing = tmp_path / "releases.txt"
    listing.write_text("# from site A\npuppetlabs-ntp-10.0.0\n\npuppetlabs-ntp-1.0.0-acme\n")
    with pytest.raises(BadInput, match=r"releases.txt, line 4: not an author-name-X.Y.Z"):
        read_release_list(listing)
    listing.write_text("puppetlabs-ntp-10.0.0\npuppet-nginx-5.0.0\n")
    assert read_release_list(listing) == [("puppetlabs-ntp", "10.0.0"), ("puppet-nginx", "5.0.0")]
