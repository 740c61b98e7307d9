"""Privacy as a tested feature: plant unique private names everywhere a site
has them and assert that none reaches the preview, in either format."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import PuppetTree, make_module, write

CANARY = "zzcanary"


@pytest.fixture
def canary_tree(tmp_path):
    tree = PuppetTree(tmp_path / f"{CANARY}path")
    write(tree.confdir / "puppet.conf", f"[main]\ncertname = {CANARY}host.example.test\nbasemodulepath = $codedir/modules\n")
    tree.forge(["puppetlabs-apache", "puppetlabs-stdlib", "puppetlabs-ntp"])
    env = tree.environment(f"{CANARY}env", modulepath=f"{CANARY}site:modules:$basemodulepath")
    tree.environment("production")
    make_module(tree.codedir / "modules", "stdlib", "puppetlabs-stdlib", "9.0.0",
                manifests={"init.pp": "class stdlib { }", "stages.pp": "class stdlib::stages { }"})
    make_module(env / "modules", "apache", "puppetlabs-apache", f"2.0.0-{CANARY}rc",
                manifests={"init.pp": "class apache { }"})
    make_module(env / "modules", "ntp", "puppetlabs-ntp", "1.0.0", manifests={"init.pp": "class ntp { }"})
    make_module(env / "modules", f"{CANARY}fork", "puppetlabs-apache", "3.0.0",
                manifests={"init.pp": f"class {CANARY}fork {{ include apache }}"})
    make_module(
        env / f"{CANARY}site",
        f"{CANARY}profile",
        f"{CANARY}author-{CANARY}profile",
        f"0.1.0-{CANARY}",
        dependencies=[
            {"name": "puppetlabs/stdlib", "version_requirement": f">= 1.0.0 {CANARY}"},
            {"name": "puppetlabs/ntp", "version_requirement": ">= 1.0.0"},
            {"name": f"{CANARY}dep/{CANARY}thing", "version_requirement": ">= 1.0.0"},
        ],
        manifests={
            "init.pp": f"class {CANARY}profile {{ include apache, {CANARY}other::thing\n"
                       f"  class {{ '{CANARY}resource': }}\n class {CANARY}nested {{ include ntp }} }}",
            "web.pp": f"define {CANARY}profile::vhost() {{ include stdlib::stages }}",
        },
    )
    make_module(env / "modules", f"{CANARY}nometa", None, manifests={"init.pp": f"class {CANARY}nometa {{ include stdlib }}"})
    write(
        env / "Puppetfile",
        f"forge 'https://{CANARY}forge.example.test'\n"
        f"def {CANARY}helper(name)\n  \"git@{CANARY}remote.example.test:#{{name}}.git\"\nend\n"
        f"{CANARY}helper 'x'\n"
        f"mod '{CANARY}mod', git: {CANARY}helper('{CANARY}mod'), branch: '{CANARY}branch'\n"
        "require 'json'\n",
    )
    write(tree.environment("production") / "Puppetfile", f"{CANARY}undefined 'x'\nmod 'puppetlabs-ntp'\n")
    return tree


def test_no_private_string_reaches_the_preview(canary_tree):
    json_run = canary_tree.run("preview", "--format", "json")
    human_run = canary_tree.run("preview")
    assert json_run.returncode == 0 and human_run.returncode == 0, json_run.stderr + human_run.stderr
    for output in (json_run.stdout, human_run.stdout):
        assert CANARY not in output.lower()

    # ...and the report is not empty: public things still get through.
    values = {c: s["value"] for c, s in json.loads(json_run.stdout)["self-service-analytics"]["snapshots"].items()}
    assert {"name": "apache", "slug": "puppetlabs-apache", "version": "(private)"} in values["modules"]
    assert {"name": "stdlib", "slug": "puppetlabs-stdlib", "version": "9.0.0"} in values["modules"]
    assert values["environment_count"] == 2
    assert {"name": "puppetlabs-stdlib", "version_requirement": "(private)"} in values["dependencies"]
    assert {"name": "puppetlabs-ntp", "version_requirement": ">= 1.0.0"} in values["dependencies"]
    assert {p["name"] for p in values["profile_classes"]} == {"apache", "ntp", "stdlib"}
    assert {"name": "(private)", "count": 2} in values["puppetfile_ruby_methods"]
    assert {"name": "require", "count": 1} in values["puppetfile_ruby_methods"]


def test_the_fallback_site_id_does_not_reveal_the_certname(canary_tree):
    human = canary_tree.run("preview").stdout
    assert "certname" in human  # the note explains the fallback...
    assert CANARY not in human  # ...without naming the host or a path


def test_dev_example_draws_only_on_the_forge_cache(canary_tree):
    result = canary_tree.run("dev", "example", "--size", "20")
    assert result.returncode == 0, result.stderr
    assert CANARY not in result.stdout
    assert len(result.stdout.splitlines()) == 20


def test_inventory_is_local_and_does_show_private_things(canary_tree):
    """The one place private names may appear: the local-only inventory."""
    result = canary_tree.run("dev", "inventory", "--format", "json")
    inventory = json.loads(result.stdout)
    reasons = {m["name"]: m["reason"] for m in inventory["modules"]}
    assert "not in the Forge module cache" in reasons[f"{CANARY}profile"]
    assert "directory name differs" in reasons[f"{CANARY}fork"]
    assert reasons[f"{CANARY}nometa"] == "no metadata.json"
    profile = next(m for m in inventory["modules"] if m["name"] == f"{CANARY}profile")
    assert profile["declares_public_classes"] == {f"{CANARY}profile::{CANARY}nested": ["ntp"], f"{CANARY}profile": ["apache"]}
    assert os.fspath(canary_tree.root) in result.stdout
