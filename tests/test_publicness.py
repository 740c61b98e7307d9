"""Privacy rule 3 against a site that forks a public module: a class is public only
when the Forge published it. Every fork below regenerates its checksums.json as
`puppet module build` does (so a rule trusting the site's files leaks), and the
Forge is the loopback stand-in serving the real release, built from a real tree."""

from __future__ import annotations

import json

import pytest

from tests.support.fake_puppetdb import class_rows_server
from tests.support.forge_server import EPOCH, ForgeModule, ForgeRelease, ForgeServer, forge_publishing
from tests.support.published_release import SECRET, evidence_warnings, installed_copy, preview
from tests.support.puppet_tree import forge_checksums, write

def test_the_fork_with_a_regenerated_checksums_json_leaks_no_class(tree, published_apache):
    """The issue's attack: a class added to a Forge module, checksums.json rebuilt over it."""
    module = installed_copy(published_apache, tree)
    write(module / "manifests" / f"{SECRET}.pp", f"class apache::{SECRET} {{ }}\n")
    forge_checksums(module)
    with forge_publishing(published_apache) as server:
        values, runs = preview(tree, server)
    for run in runs:
        assert SECRET not in run.stdout
    assert {row["name"] for row in values["profile_classes"]} == {
        "apache", "apache::vhost", "apache::mod::ssl", "apache::inlined"}
    inventory = tree.run("dev", "inventory")
    assert inventory.returncode == 0, inventory.stderr
    assert (f"private, not the published file: manifests/{SECRET}.pp: "
            "not in the published release puppetlabs-apache-12.1.0 (added by the site)") in inventory.stdout
    assert "release evidence: as published in puppetlabs-apache-12.1.0" in inventory.stdout


def test_the_fork_leaks_nothing_through_puppetdb_either(tree, published_apache):
    module = installed_copy(published_apache, tree)
    write(module / "manifests" / f"{SECRET}.pp", f"class apache::{SECRET} {{ }}\n")
    forge_checksums(module)
    rows = [{"title": "Apache", "count": 3}, {"title": f"Apache::{SECRET.capitalize()}", "count": 2},
            {"title": "Apache::Vhost", "count": 1}, {"title": "Profile::Web", "count": 2}]
    with class_rows_server(rows) as puppetdb, forge_publishing(published_apache) as server:
        write(tree.confdir / "puppetdb.conf", f"[main]\nserver_urls = {puppetdb.url}\n")
        values, runs = preview(tree, server)
    for column in ("classes", "class_platforms", "unused_classes", "profile_classes"):
        assert SECRET not in json.dumps(values[column]), column
    assert sorted(row["name"].lower() for row in values["classes"]) == ["apache", "apache::vhost"]


@pytest.mark.parametrize("fork", ["bumped version", "edited file", "edited file, version bumped"])
def test_a_fork_reports_only_what_the_forge_published(tree, published_apache, fork):
    module = installed_copy(published_apache, tree)
    if "edited" in fork:
        write(module / "manifests" / "vhost.pp", "class apache::vhost { }\nclass apache::vhost::acmeedited { }\n")
    if "bumped" in fork:
        metadata = json.loads((module / "metadata.json").read_text())
        metadata["version"] = "12.2.0"
        (module / "metadata.json").write_text(json.dumps(metadata))
    forge_checksums(module)
    with forge_publishing(published_apache) as server:
        values, runs = preview(tree, server)
    for run in runs:
        assert "acmeedited" not in run.stdout
    names = {row["name"] for row in values["profile_classes"]}
    if "bumped" in fork:  # 12.2.0 is no published release: the main class only
        assert names == {"apache"}
        assert len(evidence_warnings(runs[0])) == 1
        assert "1 public module has no release evidence from the Forge (1 no published release)" \
            in evidence_warnings(runs[0])[0]
    else:  # the release is known: what is still as published stays public
        assert names == {"apache", "apache::mod::ssl", "apache::inlined"}
    inventory = tree.run("dev", "inventory").stdout
    if "bumped" in fork:
        assert "no release evidence for puppetlabs-apache-12.2.0: not a release the Forge published" in inventory
    else:
        assert ("manifests/vhost.pp: differs from the published release puppetlabs-apache-12.1.0 "
                "(edited by the site)") in inventory


def test_a_git_checkout_of_a_release_reports_all_its_classes(tree, published_apache):
    """r10k :git at the release's tag: no checksums.json, files byte-identical to the release."""
    installed_copy(published_apache, tree, checksums=False)
    with forge_publishing(published_apache) as server:
        values, runs = preview(tree, server)
    assert {row["name"] for row in values["profile_classes"]} == {
        "apache", "apache::vhost", "apache::mod::ssl", "apache::inlined"}
    assert evidence_warnings(runs[0]) == []


@pytest.mark.parametrize("forge_list", ["due for a refresh", "fresh"])
def test_no_forge_reachable_still_reports_main_classes_with_one_warning(tree, published_apache, forge_list):
    """Due, the list's refresh fails first and the evidence is not asked for again;
    fresh (--ttl 1000), the evidence fetch is what meets the outage."""
    installed_copy(published_apache, tree)
    tree.forge(["puppetlabs-apache"])
    with forge_publishing(published_apache) as server:
        url = server.url  # a port nobody listens on once the server is gone
    more = ("--ttl", "1000") if forge_list == "fresh" else ()
    values, runs = preview(tree, type("Gone", (), {"url": url})(), *more)
    assert {row["name"] for row in values["profile_classes"]} == {"apache"}
    assert {"name": "apache", "slug": "puppetlabs-apache", "version": "(private)"} in values["modules"]
    for run in runs:
        found = evidence_warnings(run)
        assert len(found) == 1, run.stderr
        assert "1 public module has no release evidence from the Forge (1 not fetched; the Forge failed (cannot " \
            "reach" in found[0]


def test_a_warm_run_asks_the_forge_nothing(tree, published_apache):
    installed_copy(published_apache, tree)
    with forge_publishing(published_apache) as server:
        preview(tree, server)
        cold = len(server.state.release_requests())
        preview(tree, server)
        warm = len(server.state.release_requests()) - cold
    assert (cold, warm) == (2, 0)  # the record and the tarball, once


def test_a_release_is_proven_by_its_md5_when_the_record_has_no_sha256(tree, published_apache):
    installed_copy(published_apache, tree)
    release = ForgeRelease.of(published_apache)
    release.digests = ("md5",)
    with ForgeServer([ForgeModule("puppetlabs-apache", EPOCH)], [release]) as server:
        values, _ = preview(tree, server)
    assert "apache::vhost" in {row["name"] for row in values["profile_classes"]}


def test_a_class_counts_only_if_the_published_file_defines_it(tree, published_apache):
    """The parse cache keys what a file defines by the MD5 of its content: were a parse
    recorded under a published file's MD5 to hold another class (a collision, or the cache
    edited), the file's SHA-256 would still match the release. The classes are the ones
    the release's own parse found."""
    installed_copy(published_apache, tree)
    tree.forge(["puppetlabs-apache"])
    tree.publish(published_apache)
    assert tree.run("preview", "--format", "json").returncode == 0  # fills the parse cache
    cache = json.loads((tree.cachepath / "manifests.json").read_text())
    vhost_md5 = next(records["vhost.pp"]["md5"] for directory, records in cache["paths"].items()
                     if directory.endswith("apache/manifests"))
    cache["contents"][vhost_md5]["definitions"].append(
        {"kind": "class", "name": f"apache::vhost::{SECRET}", "line": 2, "declares": []})
    (tree.cachepath / "manifests.json").write_text(json.dumps(cache))
    write(tree.environment("production") / "site" / "profile" / "manifests" / "db.pp",
          f"class profile::db {{ include apache::vhost::{SECRET} }}\n")
    values = tree.report()
    assert SECRET not in json.dumps(values)
    assert "apache::vhost" in {row["name"] for row in values["profile_classes"]}


@pytest.mark.parametrize("version, asked", [("12.2.0", True), ("41111111.11111111.1111", False)])
def test_a_version_the_forge_never_published_is_sent_as_the_placeholder(tree, published_apache, version, asked):
    """The review's 7: a version is sent only when the Forge published that release: a
    site-chosen one (digits of its own) is private. Long components are not even asked about."""
    module = installed_copy(published_apache, tree)
    metadata = json.loads((module / "metadata.json").read_text())
    metadata["version"] = version
    (module / "metadata.json").write_text(json.dumps(metadata))
    with forge_publishing(published_apache) as server:
        values, runs = preview(tree, server)
        paths = server.state.release_requests()
    assert values["modules"] == [{"name": "apache", "slug": "puppetlabs-apache", "version": "(private)"}]
    for run in runs:
        assert version not in run.stdout
    assert bool(paths) is asked and not any("41111111" in path for path in paths)


def test_a_published_version_is_sent(tree, published_apache):
    installed_copy(published_apache, tree)
    with forge_publishing(published_apache) as server:
        values, _ = preview(tree, server)
    assert values["modules"] == [{"name": "apache", "slug": "puppetlabs-apache", "version": "12.1.0"}]
