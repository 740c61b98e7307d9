"""The Site's class rules: a public module's class is reported only when it is in
the module's own namespace, in the file Puppet's autoloader would load for it,
and in a file of the release the Forge published (release evidence; never the
site's checksums.json or dpkg's md5sums); names are checked before any lookup."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import posixpath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dropsonde.inventory import build_inventory
from dropsonde.metrics.profiles import Profiles
from dropsonde.privacy import class_name
from dropsonde.release_evidence import autoload_files
from tests.support.puppet_tree import forge_checksums, make_module, run_metric, site_for, write
from tests.support.time_limits import cpu_limit

DEBIAN_NTP = Path("/usr/share/puppet/modules/ntp")


def test_classes_outside_the_modules_namespace_or_autoload_file_are_not_public(tree):
    tree.forge(["puppetlabs-apache"])
    modules = tree.environment("production") / "modules"
    tree.publish(make_module(modules, "apache", "puppetlabs-apache", manifests={
        "init.pp": "class apache { }\nclass secretothernsdd { }\nclass apache::params { }\nclass stdlib::x { }",
        "mod/ssl.pp": "class apache::mod::ssl { }\nclass apache::mod::sekrit { }\nclass apache::mod::ssl::opt { }",
        "other.pp": "class apache::hidden { }",
        "vhost.pp": "define apache::vhost() { }",
    }))
    site = site_for(tree)
    assert site.public_classes == {"apache", "apache::params", "apache::mod::ssl", "apache::mod::ssl::opt"}
    for name in ("secretothernsdd", "apache::mod::sekrit", "apache::hidden", "stdlib::x", "apache::vhost"):
        assert not site.defines_public_class(name), name
    assert site.defines_public_class("Apache::Mod::Ssl")  # as PuppetDB titles it


def test_a_class_name_is_never_a_path(tree, tmp_path):
    """`include 'apache::/abs/evil'` must not make the probe open /abs/evil.pp."""
    evil = write(tmp_path / "outside" / "evil.pp", "class apache::evil { }")
    tree.forge(["puppetlabs-apache"])
    modules = tree.environment("production") / "modules"
    make_module(modules, "apache", "puppetlabs-apache", manifests={"init.pp": "class apache { }"})
    make_module(modules, "profile", "acme-profile", manifests={
        "init.pp": f"class profile {{ include 'apache::{evil.with_suffix('')}', 'apache::../../x', apache }}",
    })
    assert run_metric(Profiles, tree)["profile_classes"] == [{"name": "apache", "count": 1}]
    assert tree.run("preview", "--format", "json").returncode == 0
    stored = json.loads((tree.cachepath / "manifests.json").read_text())["paths"]
    parsed = [os.path.join(directory, relative) for directory, records in stored.items() for relative in records]
    assert parsed and str(evil) not in parsed and all(path.startswith(str(tree.codedir)) for path in parsed)


@settings(max_examples=500, deadline=200)
@given(st.one_of(st.text(max_size=40), st.text(alphabet="apche:/._-~\\\0 A\u212a", max_size=40)))
def test_whatever_is_declared_only_files_under_the_manifests_directory_are_looked_up(name):
    canonical = class_name(name)
    if canonical is None:
        return
    for relative in autoload_files(canonical):
        assert relative.endswith(".pp") and relative.isascii()
        assert not posixpath.isabs(relative) and posixpath.normpath(relative) == relative
        assert ".." not in relative.split("/") and "\\" not in relative and "\0" not in relative


def debian_ntp_version() -> str:
    return json.loads((DEBIAN_NTP / "metadata.json").read_text())["version"]


@pytest.fixture
def modified_ntp(tree):
    """Debian's puppetlabs-ntp installed as the Forge does (with a checksums.json), the
    Forge's release of it known, then changed by the site: manifests/secret.pp added and
    manifests/service.pp edited."""
    if not (DEBIAN_NTP / "manifests" / "init.pp").is_file():
        pytest.fail("needs Debian's puppet-module-ntp: run tests/run (it installs it)")
    tree.forge(["puppetlabs-ntp"])
    ntp = tree.environment("production") / "modules" / "ntp"
    shutil.copytree(DEBIAN_NTP, ntp)
    forge_checksums(ntp)
    tree.publish(ntp)
    write(ntp / "manifests" / "secret.pp", "class ntp::secret { }\n")
    with open(ntp / "manifests" / "service.pp", "a", encoding="utf-8") as handle:
        handle.write("# local tweak\n")
    make_module(tree.environment("production") / "modules", "profile", "acme-profile", manifests={
        "init.pp": "class profile { include ntp, ntp::config, ntp::secret, ntp::service }",
    })
    return ntp


def test_puppet_module_changes_agrees_on_what_the_site_changed(modified_ntp):
    changes = subprocess.run(["puppet", "module", "changes", str(modified_ntp)],
                             capture_output=True, text=True, timeout=60)
    assert changes.stdout.split() == ["manifests/service.pp"], changes.stdout + changes.stderr


def test_locally_added_or_modified_manifests_are_private(tree, modified_ntp):
    assert run_metric(Profiles, tree)["profile_classes"] == [
        {"name": "ntp", "count": 1}, {"name": "ntp::config", "count": 1},
    ]
    site = site_for(tree)
    ntp = next(m for m in site.modules if m.name == "ntp")
    assert site.public_classes_of(ntp) == {"ntp", "ntp::config", "ntp::install"}
    release = f"puppetlabs-ntp-{debian_ntp_version()}"
    inventory = next(m for m in build_inventory(site)["modules"] if m["name"] == "ntp")
    assert inventory["private_manifests"] == {
        "manifests/secret.pp": f"not in the published release {release} (added by the site)",
        "manifests/service.pp": f"differs from the published release {release} (edited by the site)",
    }
    assert inventory["public_classes"] == ["ntp", "ntp::config", "ntp::install"]
    text = tree.run("dev", "inventory").stdout
    assert f"private, not the published file: manifests/secret.pp: not in the published release {release}" in text


def test_checksums_json_regenerated_over_the_site_s_edits_proves_nothing(tree, modified_ntp):
    forge_checksums(modified_ntp)  # as `puppet module build` would, over the edits
    site = site_for(tree)
    ntp = next(m for m in site.modules if m.name == "ntp")
    assert site.public_classes_of(ntp) == {"ntp", "ntp::config", "ntp::install"}
    assert not site.defines_public_class("ntp::secret") and not site.defines_public_class("ntp::service")


def test_damaged_release_evidence_proves_nothing(tree, modified_ntp):
    (tree.cachepath / "forge-releases.json").write_text("{not json")
    assert run_metric(Profiles, tree)["profile_classes"] == [{"name": "ntp", "count": 1}]
    site = site_for(tree)
    ntp = next(m for m in site.modules if m.name == "ntp")
    assert site.public_classes_of(ntp) == {"ntp"}
    assert "no release evidence: forge-releases.json is unusable (not valid JSON" in site.publicness.release(ntp)[1]


def test_a_manifest_edited_after_a_warm_run_is_checked_against_its_new_content(tree):
    """The parse cache does not read a file whose stat is unchanged: an edit after the
    cache was written must not be judged by the old content."""
    tree.forge(["puppetlabs-ntp"])
    ntp = tree.environment("production") / "modules" / "ntp"
    shutil.copytree(DEBIAN_NTP, ntp)
    tree.publish(ntp)
    make_module(tree.environment("production") / "modules", "profile", "acme-profile", manifests={
        "init.pp": "class profile { include ntp, ntp::service }",
    })
    before = run_metric(Profiles, tree)["profile_classes"]
    site = site_for(tree)
    site.public_classes  # noqa: B018 - every public manifest parsed and its MD5 cached
    site.close()
    service = ntp / "manifests" / "service.pp"
    service.write_text(service.read_text().replace("class ntp::service", "class ntp::service  "))
    assert before == [{"name": "ntp", "count": 1}, {"name": "ntp::service", "count": 1}]
    assert run_metric(Profiles, tree)["profile_classes"] == [{"name": "ntp", "count": 1}]
    inventory = next(m for m in build_inventory(site_for(tree))["modules"] if m["name"] == "ntp")
    assert inventory["private_manifests"] == {"manifests/service.pp": (
        f"differs from the published release puppetlabs-ntp-{debian_ntp_version()} (edited by the site)")}


def test_without_release_evidence_only_the_main_class_is_public(tree):
    tree.forge(["puppetlabs-ntp"])
    make_module(tree.environment("production") / "modules", "ntp", "puppetlabs-ntp", manifests={
        "init.pp": "class ntp { }\nclass ntp::inline { }", "config.pp": "class ntp::config { }",
    })
    site = site_for(tree)
    module = next(m for m in site.modules if m.name == "ntp")
    assert site.public_classes_of(module) == {"ntp"}
    why = ("no release evidence for puppetlabs-ntp-1.0.0 yet (fetched from the Forge by `dropsonde update` "
           "or a report's Forge refresh): only the main class is reportable")
    assert site.private_manifests(module) == {"manifests/config.pp": why, "manifests/init.pp": why}


def test_debians_packaged_modules_need_the_forge_s_release_too(tree):
    """dpkg's md5sums are no evidence (root can rebuild a package, a site can build
    its own): a linked Debian module and a copy of it are judged alike, by the release."""
    if not (DEBIAN_NTP / "manifests" / "init.pp").is_file():
        pytest.fail("needs Debian's puppet-module-ntp: run tests/run (it installs it)")
    assert Path("/var/lib/dpkg/info/puppet-module-puppetlabs-ntp.md5sums").is_file()
    tree.forge(["puppetlabs-ntp"])
    os.symlink(DEBIAN_NTP, tree.environment("production") / "modules" / "ntp")
    shutil.copytree(DEBIAN_NTP, tree.environment("staging") / "modules" / "ntp")
    site = site_for(tree)
    linked, copied = sorted(site.modules, key=lambda m: str(m.path) != str(DEBIAN_NTP.resolve()))
    assert str(linked.path) == str(DEBIAN_NTP.resolve())
    assert site.public_classes_of(linked) == site.public_classes_of(copied) == {"ntp"}
    tree.publish(DEBIAN_NTP)
    site = site_for(tree)
    assert {"ntp", "ntp::config", "ntp::install", "ntp::service"} <= site.public_classes_of(linked)
    assert site.public_classes_of(copied) == site.public_classes_of(linked)
    assert site.private_manifests(linked) == site.private_manifests(copied) == {}


def test_a_module_s_manifests_are_judged_once_per_run(tree, modified_ntp):
    """build_inventory takes site.public_classes (every module) and then asks
    public_classes_of again for each module: each manifest is judged once, and
    with -v each "private" line is logged once."""
    result = tree.run("-v", "dev", "inventory")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("classes in manifests/service.pp are private") == 1, result.stderr


def test_a_hostile_puppetdbs_deep_class_titles_cost_no_file_lookups(tree):
    """The reviewer's: ~80 stat calls per distinct deep class title (20,000 titles: 24 s
    of CPU). Names deeper than any real class are no class names at all, and a file the
    module does not have is looked up in the listing of its manifests, not on disk."""
    tree.forge(["puppetlabs-apache"])
    tree.publish(make_module(tree.environment("production") / "modules", "apache", "puppetlabs-apache", manifests={
        "init.pp": "class apache { }", "mod.pp": "class apache::mod { }", "mod/ssl.pp": "class apache::mod::ssl { }",
    }))
    site = site_for(tree)
    deepest = ["Apache::" + "::".join(f"s{i}" for i in range(80))[:240] + f"::t{n}" for n in range(20_000)]
    deep = ["Apache::Mod::" + "::".join(f"s{n}x{i}" for i in range(14)) for n in range(20_000)]
    with cpu_limit(3.0):
        assert not any(site.defines_public_class(title) for title in deepest + deep)
    assert site.defines_public_class("Apache::Mod::Ssl") and site.defines_public_class("apache::mod")
