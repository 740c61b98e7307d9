"""Fetching release evidence from a Forge that lies or attacks: a release whose
record or tarball we refuse proves nothing (main class only, one warning),
and nothing is ever written outside the cache directory."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given

from dropsonde.cache_dir import CacheDir
from dropsonde.forge_releases import MAX_TARBALL_BYTES, BundleRefused, fetch_releases, read_bundle, refresh_release_evidence
from dropsonde.release_archive import MAX_MEMBERS
from dropsonde.release_evidence import MAX_MANIFEST_PATH_BYTES, MAX_RELEASE_MANIFESTS, load_evidence
from dropsonde.errors import BadInput, ExitStatus
from tests.support.cli import assert_clean_error
from tests.support.forge_server import EPOCH, Fault, ForgeModule, ForgeRelease, ForgeServer, crafted_tarball
from tests.support.published_release import SECRET, evidence_warnings, installed_copy, preview
from tests.support.puppet_tree import PuppetTree, forge_checksums, make_module, write
from tests.support.time_limits import cpu_limit
from tests.support.fuzzing import FUZZ, read_fuzzed_file, source_bytes

NOW = datetime(2026, 12, 6, 23, 0, tzinfo=timezone.utc)
TOP = "puppetlabs-apache-12.1.0"


def member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def with_true_files(published: Path, *extra: tarfile.TarInfo) -> bytes:
    """The release's own files, plus ``extra`` members."""
    files = {f"{TOP}/{p.relative_to(published).as_posix()}": p.read_bytes()
             for p in sorted(published.rglob("*")) if p.is_file()}
    return crafted_tarball([member(name) for name in files] + list(extra), files)


def many_members(published: Path) -> bytes:
    """The release's files and 10^5 empty ones (the cap is MAX_MEMBERS)."""
    assert MAX_MEMBERS < 10**5
    return with_true_files(published, *(member(f"{TOP}/files/f{i}") for i in range(10**5)))


def gzip_bomb(_: Path) -> bytes:
    """A small .tar.gz of one member that unpacks to 300 MiB of zeros."""
    import io
    import zlib

    header = member(f"{TOP}/files/zeros")
    header.size = 300 * 1024 * 1024
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    out = io.BytesIO()
    out.write(compressor.compress(header.tobuf(format=tarfile.GNU_FORMAT)))
    chunk = bytes(1024 * 1024)
    for _ in range(300):
        out.write(compressor.compress(chunk))
    out.write(compressor.flush())
    return out.getvalue()


# (what is wrong, how to make the release served, the reason dev inventory gives)
BAD_RELEASES = {
    "sha256 mismatch": (lambda r, p: setattr(r, "file_sha256", hashlib.sha256(b"other").hexdigest()),
                        "its tarball's SHA256 differs from the release record's"),
    "md5 mismatch": (lambda r, p: (setattr(r, "digests", ("md5",)), setattr(r, "file_md5", "0" * 32)),
                     "its tarball's MD5 differs from the release record's"),
    "no digest": (lambda r, p: setattr(r, "digests", ()), "the release record has neither file_sha256 nor file_md5"),
    "dot-dot member": (lambda r, p: setattr(r, "tarball", with_true_files(p, member(f"{TOP}/../../escaped.pp"))),
                       "has a member outside its directory"),
    "absolute member": (lambda r, p: setattr(r, "tarball", with_true_files(p, member("/tmp/escaped.pp"))),
                        "has a member outside its directory"),
    "symlink member": (lambda r, p: setattr(r, "tarball", with_true_files(
        p, member(f"{TOP}/manifests/link.pp", tarfile.SYMTYPE, "/etc/passwd"))), "a link or a device"),
    "hard link member": (lambda r, p: setattr(r, "tarball", with_true_files(
        p, member(f"{TOP}/manifests/hard.pp", tarfile.LNKTYPE, f"{TOP}/manifests/init.pp"))), "a link or a device"),
    "device member": (lambda r, p: setattr(r, "tarball", with_true_files(p, member(f"{TOP}/dev", tarfile.CHRTYPE))),
                      "a link or a device"),
    "two top directories": (lambda r, p: setattr(r, "tarball", with_true_files(p, member("other/manifests/x.pp"))),
                            "outside its one top directory"),
    "10^5 members": (lambda r, p: setattr(r, "tarball", many_members(p)), f"has more than {MAX_MEMBERS} members"),
    "gzip bomb": (lambda r, p: setattr(r, "tarball", gzip_bomb(p)), "unpacks to more than 256 MiB"),
    # the second review (F4): what a release keeps is bounded, not only what it holds
    "too many manifests": (lambda r, p: setattr(r, "tarball", with_true_files(
        p, *(member(f"{TOP}/manifests/e{i}.pp") for i in range(MAX_RELEASE_MANIFESTS)))),
        f"more than {MAX_RELEASE_MANIFESTS} autoloadable manifests"),
    "a long manifest path": (lambda r, p: setattr(r, "tarball", with_true_files(
        p, member(f"{TOP}/manifests/" + "a/" * 130 + "x.pp"))),
        f"a manifest path longer than {MAX_MANIFEST_PATH_BYTES} bytes"),
    "larger than the cap": (lambda r, p: setattr(r, "tarball", r.tarball + bytes(MAX_TARBALL_BYTES)),
                            f"larger than {MAX_TARBALL_BYTES} bytes"),
    "not a tarball": (lambda r, p: setattr(r, "tarball", b"<html>maintenance</html>"), "is not a readable .tar.gz"),
    "file_uri elsewhere": (lambda r, p: setattr(r, "file_uri", "http://127.0.0.2:9/v3/files/x.tar.gz"),
                           "its file_uri leaves the Forge's origin"),
    "file_uri protocol-relative": (lambda r, p: setattr(r, "file_uri", "//127.0.0.2/v3/files/x.tar.gz"),
                                   "its file_uri leaves the Forge's origin"),
}


@pytest.mark.parametrize("case", sorted(BAD_RELEASES))
def test_a_refused_release_proves_nothing(tree, published_apache, tmp_path, case):
    """The site's fork (a class added, checksums.json regenerated) against a Forge
    serving a release we refuse: main class only, one warning, nothing written outside
    the cache. Without the refusal, the evidence would vouch for apache::vhost."""
    make_release_bad, reason = BAD_RELEASES[case]
    module = installed_copy(published_apache, tree)
    write(module / "manifests" / f"{SECRET}.pp", f"class apache::{SECRET} {{ }}\n")
    forge_checksums(module)
    release = ForgeRelease.of(published_apache)
    make_release_bad(release, published_apache)
    before = sorted(str(p) for p in tmp_path.rglob("*") if tree.cachepath not in p.parents)
    with ForgeServer([ForgeModule("puppetlabs-apache", EPOCH)], [release]) as server:
        values, runs = preview(tree, server)
    for run in runs:
        assert SECRET not in run.stdout and "vhost" not in run.stdout
    assert {row["name"] for row in values["profile_classes"]} == {"apache"}
    found = evidence_warnings(runs[0])
    assert len(found) == 1 and "1 public module has no release evidence from the Forge (1 refused)" in found[0], \
        runs[0].stderr
    assert evidence_warnings(runs[1]) == found  # the refusal is remembered: the second run asks nothing
    after = sorted(str(p) for p in tmp_path.rglob("*") if tree.cachepath not in p.parents)
    assert after == before
    assert not Path("/tmp/escaped.pp").exists()
    inventory = tree.run("dev", "inventory").stdout
    assert reason in inventory, inventory


def test_a_record_naming_another_release_is_refused(tree, published_apache):
    installed_copy(published_apache, tree)
    other = ForgeRelease.of(published_apache, version="1.0.0")
    release = ForgeRelease.of(published_apache)
    release.as_json = other.as_json  # type: ignore[method-assign]
    with ForgeServer([ForgeModule("puppetlabs-apache", EPOCH)], [release]) as server:
        values, _ = preview(tree, server)
    assert {row["name"] for row in values["profile_classes"]} == {"apache"}
    assert "the release record names another release" in tree.run("dev", "inventory").stdout


def test_a_forge_error_stops_the_fetch_after_one_failed_request_and_keeps_what_was_proven(tmp_path, published_apache):
    """An outage costs one failed request (after its retries), not one per release."""
    ntp = make_module(tmp_path / "forge-src", "ntp", "puppetlabs-ntp", "10.0.0", manifests={"init.pp": "class ntp { }"})
    releases = [ForgeRelease.of(published_apache), ForgeRelease.of(ntp)]
    wanted = [("puppetlabs-apache", "12.1.0"), ("puppetlabs-ntp", "10.0.0"), ("puppetlabs-stdlib", "9.0.0")]
    with ForgeServer([], releases) as server:
        first = fetch_releases(server.url, wanted[:1], NOW)
        server.state.faults.append(Fault("503"))
        with CacheDir.open(tmp_path / "cache") as cache:
            fetched = refresh_release_evidence(cache, server.url, wanted, NOW, timedelta(days=7),
                                               policy=_no_retries())
            kept = load_evidence(cache)
    assert len(first.releases) == 1
    assert fetched.failure is not None and "HTTP 503" in fetched.failure
    assert fetched.requests == 1 and fetched.not_fetched == 3
    assert kept.releases == {} and kept.unavailable == {}  # a Forge failure is not remembered as unavailable


def _no_retries():
    from dropsonde.http_client import HttpPolicy

    return HttpPolicy(retries=0)


def test_evidence_is_fetched_once_per_release_however_many_copies(tree, published_apache):
    """Thirty environments with the same release: one record, one tarball."""
    for index in range(30):
        shutil.copytree(published_apache, tree.environment(f"env{index}") / "modules" / "apache")
    with ForgeServer([ForgeModule("puppetlabs-apache", EPOCH)], [ForgeRelease.of(published_apache)]) as server:
        result = tree.run("--update", "--forge-api", server.url, "update")
        assert result.returncode == 0, result.stderr
        assert "Forge release evidence: 1 releases proven, 0 unavailable, 2 requests" in result.stdout
        assert len(server.state.release_requests()) == 2
        again = tree.run("--update", "--forge-api", server.url, "update")
        assert len(server.state.release_requests()) == 2, again.stdout


def test_private_versions_are_never_sent_to_the_forge(tree, published_apache):
    """A version with a suffix can name the site ("12.1.0-acmepayroll"): it is not asked about."""
    module = installed_copy(published_apache, tree)
    metadata = json.loads((module / "metadata.json").read_text())
    metadata["version"] = "12.1.0-acmepayroll"
    (module / "metadata.json").write_text(json.dumps(metadata))
    with ForgeServer([ForgeModule("puppetlabs-apache", EPOCH)], [ForgeRelease.of(published_apache)]) as server:
        preview(tree, server)
        assert not any("acmepayroll" in path for path in server.state.paths)
        assert server.state.release_requests() == []
    assert "its version is not a plain X.Y.Z" in tree.run("dev", "inventory").stdout
    assert os.listdir(tree.cachepath)  # the run itself went fine


# ---- the air-gapped path: list on the site, build where the Forge is reachable, import ----


def test_the_air_gapped_path_end_to_end(tree, published_apache, tmp_path):
    installed_copy(published_apache, tree)
    tree.forge(["puppetlabs-apache"])  # imported with `update --from-file` beforehand
    listed = tree.run("releases", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == "puppetlabs-apache-12.1.0\n"
    release_list = write(tmp_path / "carried" / "releases.txt", listed.stdout)
    bundle = tmp_path / "carried" / "evidence.json"
    connected = PuppetTree(tmp_path / "connected")  # another machine: no Puppet tree of this site
    with ForgeServer([], [ForgeRelease.of(published_apache)]) as server:
        built = connected.run("--forge-api", server.url, "releases", "build", str(release_list), "--output", str(bundle))
        assert built.returncode == 0, built.stderr
        assert len(server.state.release_requests()) == 2
    assert "1 releases proven" in built.stdout and bundle.is_file()
    imported = tree.run("releases", "import", str(bundle))
    assert imported.returncode == 0, imported.stderr
    assert "1 releases proven (0 already known, kept as they were), 0 unavailable" in imported.stdout
    values = tree.report("--no-update")
    assert {row["name"] for row in values["profile_classes"]} == {
        "apache", "apache::vhost", "apache::mod::ssl", "apache::inlined"}


def test_a_bad_bundle_is_refused_and_changes_nothing(tree, published_apache, tmp_path):
    installed_copy(published_apache, tree)
    tree.forge(["puppetlabs-apache"])
    tree.publish(published_apache)
    before = (tree.cachepath / "forge-releases.json").read_bytes()
    bundle = write(tmp_path / "evidence.json", json.dumps({"format": 1, "releases": {
        "puppetlabs-apache-12.1.0": {"slug": "puppetlabs-apache", "version": "12.1.0"}}}))
    result = tree.run("releases", "import", str(bundle))
    assert_clean_error(result, ExitStatus.USAGE, str(bundle), "file_sha256 is not a SHA-256")
    assert (tree.cachepath / "forge-releases.json").read_bytes() == before


def test_a_bundle_too_large_for_memory_is_refused_in_one_line(tree, tmp_path, monkeypatch):
    """Third review: a 240 MiB bundle read under an address-space limit ended in
    'internal error: MemoryError' (the allocation failure is injected here: making
    one for real needs a bundle of hundreds of MiB)."""
    import dropsonde.forge_releases as forge_releases

    def exhausted(*_args, **_kwargs):
        raise MemoryError

    monkeypatch.setattr(forge_releases, "load_json", exhausted)
    bundle = write(tmp_path / "evidence.json", "{}")
    result = tree.run("releases", "import", str(bundle))
    assert_clean_error(result, ExitStatus.USAGE, str(bundle), "more memory than this process may use")


def test_a_bundle_is_not_written_when_the_forge_fails(tmp_path):
    release_list = write(tmp_path / "releases.txt", "puppetlabs-apache-12.1.0\n")
    connected = PuppetTree(tmp_path / "connected")
    with ForgeServer([]) as server:
        server.state.faults.append(Fault("503"))
        result = connected.run("--forge-api", server.url, "releases", "build", str(release_list),
                               "--output", str(tmp_path / "evidence.json"), env={"DROPSONDE_HTTP_BACKOFF": "0"})
    assert_clean_error(result, ExitStatus.FAILURE, "the Forge failed, no bundle written", "HTTP 503")
    assert not (tmp_path / "evidence.json").exists()


def test_a_release_list_with_a_private_line_is_refused(tmp_path):
    release_list = write(tmp_path / "releases.txt", "puppetlabs-apache-12.1.0\nacme/secret\n")
    result = PuppetTree(tmp_path / "connected").run("releases", "build", str(release_list), "--output",
                                                      str(tmp_path / "evidence.json"))
    assert_clean_error(result, ExitStatus.USAGE, "releases.txt, line 2: not an author-name-X.Y.Z release")


def test_a_forge_other_than_the_public_one_is_said_under_verbose(tree, published_apache):
    """Whatever --forge-api publishes counts as public: -v says it is not the public Forge, once."""
    installed_copy(published_apache, tree)
    with ForgeServer([ForgeModule("puppetlabs-apache", EPOCH)], [ForgeRelease.of(published_apache)]) as server:
        quiet = tree.run("--update", "--forge-api", server.url, "preview", "--format", "json")
        verbose = tree.run("-v", "--update", "--forge-api", server.url, "update")
    notice = f"--forge-api {server.url} is not the public Forge"
    assert notice not in quiet.stderr
    assert verbose.stderr.count(notice) == 1, verbose.stderr
    assert "must be the public Forge or a pure mirror of it" in verbose.stderr


def test_listing_releases_without_a_forge_list_says_why_it_is_empty(tree, published_apache):
    installed_copy(published_apache, tree)
    result = tree.run("releases", "list")
    assert result.returncode == 0 and result.stdout == ""
    assert "no Forge module cache yet: no module is public, so no release is listed" in result.stderr


def test_a_bundle_s_own_digests_are_never_taken_as_given(tree, published_apache, tmp_path):
    """The review's 6: a hand-made bundle claiming the site's own file as published. The
    import derives each release's evidence from the tarball the bundle carries, whose
    SHA-256 must be the one recorded: claimed digests without that tarball prove nothing."""
    import hashlib

    module = installed_copy(published_apache, tree)
    write(module / "manifests" / f"{SECRET}.pp", f"class apache::{SECRET} {{ }}\n")
    tree.forge(["puppetlabs-apache"])

    def sha(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    release = {"slug": "puppetlabs-apache", "version": "12.1.0", "file_sha256": "0" * 64,
               "fetched_at": "2026-12-01T00:00:00+00:00", "manifests": {
                   "init.pp": {"sha256": sha(module / "manifests" / "init.pp"), "classes": ["apache"]},
                   f"{SECRET}.pp": {"sha256": sha(module / "manifests" / f"{SECRET}.pp"),
                                    "classes": [f"apache::{SECRET}"]}}}
    crafted = {"format": 1, "unavailable": {}, "releases": {"puppetlabs-apache-12.1.0": release}}
    for tarballs, reason in ((None, "no 'tarballs'"), ({}, "its tarball is missing"),
                             ({"puppetlabs-apache-12.1.0": "aGVsbG8="}, "SHA-256 is not the one recorded")):
        bundle = write(tmp_path / "evidence.json", json.dumps({**crafted, **({"tarballs": tarballs} if tarballs is not None else {})}))
        assert_clean_error(tree.run("releases", "import", str(bundle)), ExitStatus.USAGE, str(bundle), reason)
    assert not (tree.cachepath / "forge-releases.json").exists()
    assert SECRET not in json.dumps(tree.report("--no-update"))


def test_a_bundle_never_replaces_a_release_proven_already(tree, published_apache, tmp_path):
    """A bundle consistent with a forged tarball (its own digest recorded) would still be
    believed on a site that has nothing better; it cannot replace a release the site proved."""
    import base64

    from dropsonde.forge_releases import release_from_tarball
    from dropsonde.release_evidence import ReleaseEvidence, evidence_json
    from tests.support.forge_server import release_tarball

    module = installed_copy(published_apache, tree)
    tree.forge(["puppetlabs-apache"])
    tree.publish(published_apache)  # proven, as fetched from the Forge
    write(module / "manifests" / f"{SECRET}.pp", f"class apache::{SECRET} {{ }}\n")
    forged = release_tarball(module, "puppetlabs-apache", "12.1.0")
    release = release_from_tarball("puppetlabs-apache", "12.1.0", forged, "2026-12-01T00:00:00+00:00")
    bundle = json.loads(evidence_json(ReleaseEvidence().merged([release], {})))
    assert f"{SECRET}.pp" in bundle["releases"]["puppetlabs-apache-12.1.0"]["manifests"]
    bundle["tarballs"] = {"puppetlabs-apache-12.1.0": base64.b64encode(forged).decode()}
    result = tree.run("releases", "import", str(write(tmp_path / "evidence.json", json.dumps(bundle))))
    assert result.returncode == 0, result.stderr
    assert "(1 already known, kept as they were)" in result.stdout
    assert SECRET not in json.dumps(tree.report("--no-update"))


# ---- bundles are bounded: built one tarball at a time, never one the import refuses (second review, F6 and F14) ----


def blob_release(number: int, blob_bytes: int) -> ForgeRelease:
    """A release within every archive rule: init.pp and one incompressible non-manifest file."""
    top = f"acme-m{number}-1.0.0"
    files = {f"{top}/manifests/init.pp": f"class m{number} {{ }}\n".encode(),
             f"{top}/files/blob": os.urandom(blob_bytes)}
    return ForgeRelease(f"acme-m{number}", "1.0.0", crafted_tarball([member(name) for name in files], files))


def build(server, releases, output, **limits):
    """`releases build` as the CLI runs it: the bundle streamed into write_atomic."""
    from dropsonde.atomic_file import write_atomic
    from dropsonde.forge_releases import EvidenceFetch, bundle_chunks

    fetched = EvidenceFetch()
    write_atomic(output, bundle_chunks(server.url, [(r.slug, r.version) for r in releases], NOW, fetched, **limits))
    return fetched


def test_a_bundle_is_built_one_tarball_at_a_time(tmp_path):
    """The review: `releases build` kept every tarball and base64'd them all into one
    string: 3.7 GB for 12 releases of 63 MB. Scaled down, 10 releases of 3 MB: what the
    build holds at once is about one release's, not ten."""
    import tracemalloc

    releases = [blob_release(n, 3 * 1024 * 1024) for n in range(10)]
    with ForgeServer([], releases) as server:
        tracemalloc.start()
        try:
            fetched = build(server, releases, tmp_path / "bundle.json")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert len(fetched.releases) == 10
    # about 20 MB here (one tarball, its base64, the HTTP buffers); all ten, their base64
    # and the JSON text of it all, as before, over 150 MB
    assert peak < 12 * 3 * 1024 * 1024, peak
    imported = read_bundle(tmp_path / "bundle.json")
    assert sorted(imported.releases) == sorted(r.key for r in releases)


def test_a_bundle_larger_than_the_import_reads_is_never_written(tmp_path):
    """The review: build wrote a 1 GB bundle that import refused (over its 256 MiB).
    Scaled down to a 1 MB cap: 3 releases of 400 KB do not fit, nothing is written."""
    releases = [blob_release(n, 400_000) for n in range(3)]
    with ForgeServer([], releases) as server:
        with pytest.raises(BundleRefused, match="larger than 1000000 bytes, what `releases import` reads"):
            build(server, releases, tmp_path / "bundle.json", max_bytes=1_000_000)
        assert not list(tmp_path.iterdir())
        build(server, releases[:2], tmp_path / "bundle.json", max_bytes=1_200_000)
    assert (tmp_path / "bundle.json").stat().st_size <= 1_200_000
    assert len(read_bundle(tmp_path / "bundle.json").releases) == 2


def costly_bundle(path: Path, count: int) -> Path:
    """The review's import_cpu.py, scaled down: ``count`` releases of three 200 KB
    manifests of `if $a {` (about 0.4 s of CPU each, under RELEASE_CPU_SECONDS),
    with consistent digests, as `releases build` writes them."""
    import base64

    from dropsonde.release_evidence import Release, ReleaseEvidence, evidence_json

    body = ("if $a {" * 30_000).encode()[:200_000]
    tarballs, releases = {}, []
    for i in range(count):
        top = f"evil-m{i}-1.0.0"
        files = {f"{top}/manifests/f{j}.pp": body + f"# {i} {j}\n".encode() for j in range(3)}
        tarball = crafted_tarball([member(name) for name in files], files)
        releases.append(Release(f"evil-m{i}", "1.0.0", hashlib.sha256(tarball).hexdigest(), NOW.isoformat(), {}))
        tarballs[f"evil-m{i}-1.0.0"] = base64.b64encode(tarball).decode()
    bundle = json.loads(evidence_json(ReleaseEvidence().merged(releases, {})))
    bundle["tarballs"] = tarballs
    return write(path, json.dumps(bundle))


def test_an_import_has_one_cpu_budget_for_the_whole_bundle(tmp_path):
    """The review (F14): each release may take RELEASE_CPU_SECONDS, and nothing bounded
    them together: a 117 KB bundle took 42 s of CPU, one at the size cap about a day.
    Scaled down to a budget of 0.6 s over releases of about 0.4 s: refused in one line
    once spent (a release started may finish), without reading the rest."""
    bundle = costly_bundle(tmp_path / "bundle.json", 6)
    with cpu_limit(4.0), pytest.raises(BadInput) as error:
        read_bundle(bundle, cpu_seconds=0.6)
    assert str(bundle) in str(error.value)
    done = re.search(r"took more than 0\.6 s of CPU time \(BUNDLE_CPU_SECONDS; (\d) of 6 done\)", str(error.value))
    assert done and 1 <= int(done.group(1)) < 6, str(error.value)  # about 2 (0.4 s each), fewer on a busy machine
    assert len(read_bundle(costly_bundle(tmp_path / "small.json", 2), cpu_seconds=30).releases) == 2


BUNDLE_VOCABULARY = ['{"tarballs": {', '"format": 1', '"releases": {', '"unavailable": {', '"acme-m-1.0.0": ',
                     '{"slug": "acme-m", "version": "1.0.0", "file_sha256": "' + "0" * 64 + '", ',
                     '"fetched_at": "2026-12-01T00:00:00+00:00", "manifests": {}}', '"H4sIAAAAAAAA/wMAAAAAAAAAAAA="',
                     '"not base64!"', ", ", "}", "]", "[", "{", "null", "1e999", '"\\ud800"']


@FUZZ
@given(source_bytes(BUNDLE_VOCABULARY, run_size=20_000))
def test_whatever_a_bundle_holds_it_is_imported_or_refused_in_one_line(tmp_path_factory, data):
    """The import's contract, as every reader's: evidence, or one BadInput naming the file,
    within its budget (scaled down here to 1 s for all releases)."""
    path = tmp_path_factory.getbasetemp() / "fuzzed_bundle" / "bundle.json"
    imported = read_fuzzed_file(path, data, lambda: read_bundle(path, cpu_seconds=1.0), longest=len(str(path)) + 300)
    from dropsonde.release_evidence import parse_release_key

    # anything imported was derived from a tarball it carries: random text never is one
    assert imported is None or (not imported.releases and all(map(parse_release_key, imported.unavailable)))
