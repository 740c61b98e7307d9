"""The release evidence format: what is kept per published release, read back strictly."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from dropsonde.cache_dir import CacheDir
from dropsonde.errors import BadInput
from dropsonde.release_evidence import (
    EVIDENCE_FILENAME,
    MAX_EVIDENCE_BYTES,
    MAX_RELEASE_EVIDENCE_BYTES,
    EvidenceTooLarge,
    PublishedManifest,
    Release,
    ReleaseEvidence,
    Unavailable,
    evidence_json,
    load_evidence,
    parse_release_key,
    read_evidence_file,
    read_release_list,
    release_refusal,
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


# ---- what the file may hold: never more than its reader accepts (the second review, F4) ----


def release_of(number: int, manifests: int, name_bytes: int = 40, classes: int = 1) -> Release:
    """A release of ``manifests`` manifests, each defining ``classes`` classes of about ``name_bytes``."""
    return Release(f"acme-m{number}", "1.0.0", SHA, NOW.isoformat(), {
        f"m{i}.pp": PublishedManifest(SHA, tuple(f"m{number}::c{i}_{j}_" + "x" * name_bytes for j in range(classes)))
        for i in range(manifests)})


def test_a_release_that_would_keep_too_much_is_refused():
    assert release_refusal(ntp_release()) is None
    assert "more than 2000" in release_refusal(release_of(1, 2_001, 1))
    assert release_refusal(release_of(1, 1_000, 200)) is None
    assert f"more than {MAX_RELEASE_EVIDENCE_BYTES}" in release_refusal(release_of(1, 2_000, 200, classes=3))
    long_path = Release("acme-m1", "1.0.0", SHA, NOW.isoformat(), {"a/" * 127 + "x.pp": PublishedManifest(SHA)})
    assert "a manifest path longer than 255 bytes" in release_refusal(long_path)


def test_releases_past_the_file_s_cap_are_refused_and_the_others_kept(tmp_path):
    """Four hostile releases of 80 MB each made a 411 MB file that its reader refused on
    every later run: all of the site's evidence, the honest releases' too, was lost.
    Scaled down: a cap of 200 KB and releases of about 60 KB; what fits is kept in
    order, the rest remembered as refused (asked again after the ttl), and the bytes
    written stay under the cap."""
    honest = ntp_release()
    limit = 200_000
    big = [release_of(n, 300, 150) for n in range(5)]
    merged = ReleaseEvidence().merged([honest] + big, {}, limit=limit)
    assert honest.key in merged.releases
    kept = [r.key for r in big if r.key in merged.releases]
    refused = [r.key for r in big if r.key not in merged.releases]
    assert kept == [r.key for r in big[:len(kept)]] and 1 <= len(kept) < 5
    assert all("larger than 200000 bytes" in merged.unavailable[key].reason for key in refused)
    assert len(evidence_json(merged)) <= limit
    # one more release on top of a full file is refused too, and what was there stays
    again = merged.merged([release_of(9, 300, 150)], {}, limit=limit)
    assert again.releases == merged.releases and "acme-m9-1.0.0" in again.unavailable
    assert len(evidence_json(again)) <= limit


def test_the_cache_never_writes_a_file_its_reader_refuses(tmp_path):
    """save_evidence is the last guard: evidence over MAX_EVIDENCE_BYTES is never written
    (one release over every cap, made here by hand; a fetch or an import never makes one)."""
    name = "acme::" + "x" * 240
    huge = Release("acme-huge", "1.0.0", SHA, NOW.isoformat(), {
        f"m{i}.pp": PublishedManifest(SHA, (name,) * 140) for i in range(2_000)})
    too_big = ReleaseEvidence({huge.key: huge})
    assert len(evidence_json(too_big)) > MAX_EVIDENCE_BYTES
    with CacheDir.open(tmp_path) as cache:
        with pytest.raises(EvidenceTooLarge, match="not saved"):
            save_evidence(cache, too_big)
    assert not (tmp_path / EVIDENCE_FILENAME).exists()
    assert ReleaseEvidence().merged([huge], {}).releases == {}
