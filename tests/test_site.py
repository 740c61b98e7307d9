"""The Site's class rules: a public module's class is reported only when it is in
the module's own namespace, in the file Puppet's autoloader would load for it,
and in a file as published (checksums.json); names are checked before any lookup."""

from __future__ import annotations

import hashlib
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
from dropsonde.site import autoload_files
from tests.support.puppet_tree import forge_checksums, make_module, run_metric, site_for, write
from tests.support.time_limits import cpu_limit

DEBIAN_NTP = Path("/usr/share/puppet/modules/ntp")


def test_classes_outside_the_modules_namespace_or_autoload_file_are_not_public(tree):
    tree.forge(["puppetlabs-apache"])
    modules = tree.environment("production") / "modules"
    make_module(modules, "apache", "puppetlabs-apache", manifests={
        "init.pp": "class apache { }\nclass secretothernsdd { }\nclass apache::params { }\nclass stdlib::x { }",
        "mod/ssl.pp": "class apache::mod::ssl { }\nclass apache::mod::sekrit { }\nclass apache::mod::ssl::opt { }",
        "other.pp": "class apache::hidden { }",
        "vhost.pp": "define apache::vhost() { }",
    })
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


@pytest.fixture
def modified_ntp(tree):
    """Debian's puppetlabs-ntp installed as the Forge does, then changed by the site:
    manifests/secret.pp added and manifests/service.pp edited."""
    if not (DEBIAN_NTP / "manifests" / "init.pp").is_file():
        pytest.fail("needs Debian's puppet-module-ntp: run tests/run (it installs it)")
    assert not (DEBIAN_NTP / "checksums.json").exists()  # Debian does not ship one: make it as the Forge does
    tree.forge(["puppetlabs-ntp"])
    ntp = tree.environment("production") / "modules" / "ntp"
    shutil.copytree(DEBIAN_NTP, ntp)
    forge_checksums(ntp)
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
    inventory = next(m for m in build_inventory(site)["modules"] if m["name"] == "ntp")
    assert inventory["set_aside"] == {
        "manifests/secret.pp": "not listed in checksums.json (added by the site)",
        "manifests/service.pp": "differs from checksums.json (modified by the site)",
    }
    assert inventory["public_classes"] == ["ntp", "ntp::config", "ntp::install"]
    text = tree.run("dev", "inventory").stdout
    assert "set aside, the site's own: manifests/secret.pp: not listed in checksums.json" in text


def test_a_broken_checksums_json_makes_the_module_s_classes_private(tree, modified_ntp):
    (modified_ntp / "checksums.json").write_text("{not json")
    assert run_metric(Profiles, tree)["profile_classes"] == []
    site = site_for(tree)
    ntp = next(m for m in site.modules if m.name == "ntp")
    assert site.public_classes_of(ntp) == set()
    assert "checksums.json is unusable (not valid JSON)" in site.set_aside(ntp).values()


def test_a_manifest_edited_after_a_warm_run_is_checked_against_its_new_md5(tree):
    """The checksum rule takes the MD5 from the parse cache: an edit after the
    cache was written must not be judged by the old content's MD5."""
    tree.forge(["puppetlabs-ntp"])
    ntp = tree.environment("production") / "modules" / "ntp"
    shutil.copytree(DEBIAN_NTP, ntp)
    forge_checksums(ntp)
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
    assert inventory["set_aside"] == {"manifests/service.pp": "differs from checksums.json (modified by the site)"}


def test_debians_sssd_package_ships_checksums_json_and_its_manifests_match(tree):
    """puppet-module-asciiduck-sssd ships the Forge's checksums.json; Debian edited
    other files (README, metadata.json) but no manifest, so its classes stay public."""
    sssd_source = Path("/usr/share/puppet/modules/sssd")
    if not (sssd_source / "checksums.json").is_file():
        pytest.fail("needs Debian's puppet-module-asciiduck-sssd: run tests/run (it installs it)")
    tree.forge(["asciiduck-sssd"])
    sssd = tree.environment("production") / "modules" / "sssd"
    shutil.copytree(sssd_source, sssd)
    write(sssd / "manifests" / "secret.pp", "class sssd::secret { }\n")
    site = site_for(tree)
    module = next(m for m in site.modules if m.name == "sssd")
    assert site.public_classes_of(module) == {"sssd", "sssd::config", "sssd::install", "sssd::params", "sssd::service"}
    assert site.set_aside(module) == {"manifests/secret.pp": "not listed in checksums.json (added by the site)"}


# ---- modules without checksums.json: only the main class, unless dpkg vouches for the files ----


def fake_dpkg(info: Path, package: str, module: Path, md5s: dict) -> Path:
    """A dpkg info directory recording that ``package`` installed ``module`` with these
    files (relative to the module) and MD5s, in dpkg's own formats (paths relative to / in .md5sums)."""
    info.mkdir(parents=True, exist_ok=True)
    write(info / f"{package}.list", "\n".join(["/.", str(module), str(module / "manifests"), str(module / "metadata.json")]
                                              + [str(module / relative) for relative in md5s]) + "\n")
    write(info / f"{package}.md5sums", "".join(f"{md5}  {str(module / relative).lstrip('/')}\n"
                                               for relative, md5 in md5s.items()))
    write(info / "unrelated.list", "/.\n/usr/share/doc/unrelated/metadata.json\n")
    return info


def test_dpkgs_md5sums_vouch_for_a_packaged_module_s_files(tree, tmp_path):
    tree.forge(["puppetlabs-ntp"])
    ntp = make_module(tree.environment("production") / "modules", "ntp", "puppetlabs-ntp", checksums=False, manifests={
        "init.pp": "class ntp { }", "config.pp": "class ntp::config { }", "service.pp": "class ntp::service { }",
    })
    sums = {p.relative_to(ntp).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in ntp.rglob("*") if p.is_file()}
    info = fake_dpkg(tmp_path / "dpkg-info", "puppet-module-puppetlabs-ntp", ntp, sums)
    write(ntp / "manifests" / "secret.pp", "class ntp::secret { }")  # added by the site
    write(ntp / "manifests" / "service.pp", "class ntp::service { }\n# edited")
    site = site_for(tree, dpkg_info=info)
    module = next(m for m in site.modules if m.name == "ntp")
    assert site.public_classes_of(module) == {"ntp", "ntp::config"}
    assert site.set_aside(module) == {
        "manifests/secret.pp": "not listed in dpkg's md5sums of puppet-module-puppetlabs-ntp (added by the site)",
        "manifests/service.pp": "differs from dpkg's md5sums of puppet-module-puppetlabs-ntp (modified by the site)",
    }
    assert not site.defines_public_class("ntp::secret")


def test_without_checksums_json_or_dpkg_record_only_the_main_class_is_public(tree, tmp_path):
    tree.forge(["puppetlabs-ntp"])
    make_module(tree.environment("production") / "modules", "ntp", "puppetlabs-ntp", checksums=False, manifests={
        "init.pp": "class ntp { }\nclass ntp::inline { }", "config.pp": "class ntp::config { }",
    })
    site = site_for(tree, dpkg_info=tmp_path / "no-dpkg")
    module = next(m for m in site.modules if m.name == "ntp")
    assert site.public_classes_of(module) == {"ntp"}
    assert site.set_aside(module) == {
        "manifests/config.pp": "no checksums.json: only the main class is reportable",
        "manifests/init.pp": "no checksums.json: only the main class is reportable",
    }


def test_debians_packaged_modules_keep_their_classes_through_dpkgs_record(tree, tmp_path):
    """A site linking /usr/share/puppet/modules/ntp (Debian's package, no checksums.json):
    dpkg's md5sums list its files; a copy of it in the code tree has no such record."""
    if not (DEBIAN_NTP / "manifests" / "init.pp").is_file():
        pytest.fail("needs Debian's puppet-module-ntp: run tests/run (it installs it)")
    tree.forge(["puppetlabs-ntp"])
    os.symlink(DEBIAN_NTP, tree.environment("production") / "modules" / "ntp")
    shutil.copytree(DEBIAN_NTP, tree.environment("staging") / "modules" / "ntp")
    site = site_for(tree)
    linked, copied = sorted(site.modules, key=lambda m: str(m.path) != str(DEBIAN_NTP.resolve()))
    assert str(linked.path) == str(DEBIAN_NTP.resolve())
    assert {"ntp", "ntp::config", "ntp::install", "ntp::service"} <= site.public_classes_of(linked)
    assert site.set_aside(linked) == {}
    assert site.public_classes_of(copied) == {"ntp"}
    assert set(site.set_aside(copied).values()) == {"no checksums.json: only the main class is reportable"}


def test_a_module_s_manifests_are_judged_once_per_run(tree, modified_ntp):
    """build_inventory took site.public_classes (every module) and then asked
    public_classes_of again for each module: every manifest judged twice, and
    with -v every "treated as private" line logged twice."""
    result = tree.run("-v", "dev", "inventory")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("classes in manifests/service.pp are treated as private") == 1, result.stderr


def test_a_hostile_puppetdbs_deep_class_titles_cost_no_file_lookups(tree):
    """The reviewer's: ~80 stat calls per distinct deep class title (20,000 titles: 24 s
    of CPU). Names deeper than any real class are no class names at all, and a file the
    module does not have is looked up in the listing of its manifests, not on disk."""
    tree.forge(["puppetlabs-apache"])
    make_module(tree.environment("production") / "modules", "apache", "puppetlabs-apache", manifests={
        "init.pp": "class apache { }", "mod.pp": "class apache::mod { }", "mod/ssl.pp": "class apache::mod::ssl { }",
    })
    site = site_for(tree)
    deepest = ["Apache::" + "::".join(f"s{i}" for i in range(80))[:240] + f"::t{n}" for n in range(20_000)]
    deep = ["Apache::Mod::" + "::".join(f"s{n}x{i}" for i in range(14)) for n in range(20_000)]
    with cpu_limit(3.0):
        assert not any(site.defines_public_class(title) for title in deepest + deep)
    assert site.defines_public_class("Apache::Mod::Ssl") and site.defines_public_class("apache::mod")
