"""The probe over real Forge modules: Debian's puppet-module-* packages
(installed by tests/run), linked and copied into environments."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from dropsonde.vocabulary import normalize_slug
from tests.support.forge_server import EPOCH, ForgeModule, ForgeRelease, ForgeServer
from tests.support.puppet_tree import PuppetTree, make_module, write

DEBIAN_MODULES = Path("/usr/share/puppet/modules")


@pytest.fixture(scope="module")
def real_tree(tmp_path_factory):
    if not DEBIAN_MODULES.is_dir():
        pytest.fail("needs Debian's puppet-module-* packages: run tests/run (it installs them)")
    tree = PuppetTree(tmp_path_factory.mktemp("real") / "site")
    metadata = {}
    for module in sorted(DEBIAN_MODULES.iterdir()):
        if re.match(r"^[a-z][a-z0-9_]*$", module.name) and (module / "metadata.json").is_file():
            metadata[module.name] = json.loads((module / "metadata.json").read_text())
    slugs = sorted({m["name"].replace("/", "-").lower() for m in metadata.values()})
    tree.forge(slugs)
    production = tree.environment("production")
    for name in metadata:  # every module, symlinked
        os.symlink(DEBIAN_MODULES / name, production / "modules" / name)
    staging = tree.environment("staging")
    for name in ("apache", "concat", "stdlib"):  # a few, copied; stdlib at another version
        shutil.copytree(DEBIAN_MODULES / name, staging / "modules" / name, symlinks=False)
    stdlib_meta = staging / "modules" / "stdlib" / "metadata.json"
    data = json.loads(stdlib_meta.read_text())
    data["version"] = "9.9.9"
    stdlib_meta.write_text(json.dumps(data))
    make_module(
        production / "site", "profile", "acme-profile",
        dependencies=[{"name": "puppetlabs/mysql", "version_requirement": ">= 10.0.0"}],
        manifests={"web.pp": "class profile::web { include apache, apache::mod::ssl\n class { 'mysql::server': } }"},
    )
    write(production / "environment.conf", "modulepath = site:modules:$basemodulepath\n")
    with debian_forge(metadata) as server:  # the release evidence, fetched once as `update` does
        update = tree.run("--update", "--forge-api", server.url, "update")
        assert update.returncode == 0, update.stderr
        proven = re.search(r"Forge release evidence: (\d+) releases proven, 1 unavailable", update.stdout)
        assert proven and int(proven.group(1)) > 80, update.stdout
    return tree, metadata


def debian_forge(metadata: dict) -> ForgeServer:
    """A loopback Forge publishing each Debian module as its release (tarballs built
    from Debian's trees), and listing their slugs."""
    releases = [ForgeRelease.of(DEBIAN_MODULES / name, slug) for name, m in metadata.items()
                for slug in [normalize_slug(m["name"])] if slug is not None]
    slugs = sorted({release.slug for release in releases})
    return ForgeServer([ForgeModule(slug, EPOCH) for slug in slugs], releases)


def test_report_over_real_modules(real_tree):
    tree, metadata = real_tree
    values = tree.report()
    # Public: a Forge-shaped author-name whose name part is the directory name.
    forge_named = {
        (name, m["name"].replace("/", "-").lower(), m["version"])
        for name, m in metadata.items()
        if re.match(r"^[A-Za-z0-9]+[-/]" + name + "$", m["name"])
    }
    assert len(forge_named) > 80
    expected = sorted(
        forge_named
        | {("apache", "puppetlabs-apache", metadata["apache"]["version"]),
           ("concat", "puppetlabs-concat", metadata["concat"]["version"]),
           ("stdlib", "puppetlabs-stdlib", "9.9.9")}
    )
    got = [(m["name"], m["slug"], m["version"]) for m in values["modules"]]
    # a version is sent only as a release the (loopback) Forge published: 9.9.9 is none
    published = re.compile(r"(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})")
    assert got == sorted((n, s, v if published.fullmatch(v) and v != "9.9.9" else "(private)") for n, s, v in expected)
    assert [m for m in values["modules"] if m["name"] == "stdlib"].__len__() == 2
    assert values["environment_count"] == 2
    assert values["dependencies"] == [{"name": "puppetlabs-mysql", "version_requirement": ">= 10.0.0"}]
    assert values["profile_classes"] == [
        {"name": "apache", "count": 1},
        {"name": "apache::mod::ssl", "count": 1},
        {"name": "mysql::server", "count": 1},
    ]


def test_inventory_reads_every_module_directory_once(real_tree):
    tree, metadata = real_tree
    inventory = json.loads(tree.run("dev", "inventory", "--format", "json").stdout)
    paths = [m["path"] for m in inventory["modules"]]
    assert len(paths) == len(set(paths)) == len(metadata) + 3 + 1  # linked + copied + profile
    public_classes = sum(len(m["classes"]) for m in inventory["modules"] if m["public"])
    assert public_classes > 1000


def _report_and_inventory(tree: PuppetTree) -> tuple:
    """The exact bytes `preview --format json` and `dev inventory --format json` would print, at a fixed time."""
    from datetime import datetime, timezone

    from dropsonde.inventory import build_inventory
    from dropsonde.plugins import load_plugins
    from dropsonde.report import build_report, report_body
    from tests.support.puppet_tree import site_for

    site = site_for(tree)
    try:
        report = report_body(build_report(site, load_plugins(), now=datetime(2026, 11, 27, tzinfo=timezone.utc)))
        inventory = json.dumps(build_inventory(site), sort_keys=True).encode()
    finally:
        site.close()
    return report, inventory


def test_report_and_inventory_are_byte_identical_with_a_cold_and_a_warm_cache(real_tree):
    """The parse cache is a shortcut, never a change: cold, warm, and with every
    file's stat changed (re-hashed, not re-parsed), the same bytes."""
    tree, _ = real_tree
    cache_file = tree.cachepath / "manifests.json"
    cache_file.unlink(missing_ok=True)
    cold = _report_and_inventory(tree)
    assert cache_file.is_file()
    warm = _report_and_inventory(tree)
    for manifest in (tree.environments / "staging" / "modules").glob("*/manifests/**/*.pp"):
        os.utime(manifest)  # as a fresh r10k checkout would leave them
    touched = _report_and_inventory(tree)
    assert cold == warm == touched
    assert b'"profile_classes"' in cold[0] and b'"apache::mod::ssl"' in cold[0]


def test_parse_cache_holds_one_record_per_installed_manifest_and_drops_removed_environments(tmp_path):
    tree = PuppetTree(tmp_path / "site")
    tree.forge(["puppetlabs-apache", "puppetlabs-concat"])
    for env in ("production", "feature_a", "feature_b"):  # r10k: one full copy per branch
        for name in ("apache", "concat"):
            shutil.copytree(DEBIAN_MODULES / name, tree.environment(env) / "modules" / name, symlinks=False)
    manifests = sorted(p.relative_to(DEBIAN_MODULES / "apache") for p in (DEBIAN_MODULES / "apache").glob("manifests/**/*.pp"))
    _report_and_inventory(tree)
    stored = json.loads((tree.cachepath / "manifests.json").read_text())
    assert len(stored["paths"]) == 6
    apache = stored["paths"][str(tree.environments / "production" / "modules" / "apache" / "manifests")]
    assert len(apache) == len(manifests)
    distinct = {record["md5"] for records in stored["paths"].values() for record in records.values()}
    assert set(stored["contents"]) == distinct
    assert len(distinct) == len({p.read_bytes() for p in (tree.environments / "production").glob("modules/*/manifests/**/*.pp")})
    shutil.rmtree(tree.environments / "feature_b")  # r10k removed a branch; nothing else changed
    _report_and_inventory(tree)
    stored = json.loads((tree.cachepath / "manifests.json").read_text())
    assert sorted(stored["paths"]) == sorted(
        str(tree.environments / env / "modules" / name / "manifests")
        for env in ("production", "feature_a")
        for name in ("apache", "concat")
    )


def test_debian_modules_linked_or_copied_are_judged_by_the_forge_s_release(real_tree):
    """Debian's trees are served as the releases here: a linked package and a copy of
    it report the same classes; the copied stdlib relabelled 9.9.9 is no published
    release, so only its main class is reported."""
    tree, _ = real_tree
    inventory = json.loads(tree.run("dev", "inventory", "--format", "json").stdout)
    by_path = {m["path"]: m for m in inventory["modules"]}
    linked = by_path[str((DEBIAN_MODULES / "apache").resolve())]
    assert "apache::mod::ssl" in linked["public_classes"] and len(linked["public_classes"]) > 100
    assert linked["private_manifests"] == {}
    copied = by_path[str(tree.environments / "staging" / "modules" / "apache")]
    assert copied["public"] and copied["public_classes"] == linked["public_classes"]
    relabelled = by_path[str(tree.environments / "staging" / "modules" / "stdlib")]
    assert relabelled["public_classes"] == ["stdlib"]
    assert relabelled["release_evidence"] == (
        "no release evidence for puppetlabs-stdlib-9.9.9: not a release the Forge published")


def test_every_class_of_debian_s_trees_survives_when_the_release_is_debian_s(real_tree):
    """The Debian corpus against releases built from the same trees: every class the
    autoloader can find in a public module's namespace is reported (the honest figure,
    against the Forge's own tarballs, is bench/evidence.py's)."""
    tree, _ = real_tree
    inventory = json.loads(tree.run("dev", "inventory", "--format", "json").stdout)
    linked = [m for m in inventory["modules"] if m["path"].startswith(str(DEBIAN_MODULES.resolve()))]
    reportable = sum(len(m["public_classes"]) for m in linked)
    assert all(m["private_manifests"] == {} for m in linked if m["public"])
    assert reportable > 1000
