"""The probe over real Forge modules: Debian's puppet-module-* packages
(installed by tests/run), linked and copied into environments."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import PuppetTree, make_module, write

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
    return tree, metadata


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
    assert got == [(n, s, v if re.match(r"^\d+\.\d+\.\d+$", v) else "(private)") for n, s, v in expected]
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
