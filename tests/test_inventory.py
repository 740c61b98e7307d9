"""`dev inventory`'s data: every module with its verdict and why, read in-process over a built tree."""

from __future__ import annotations

import json

from dropsonde.inventory import build_inventory, render_inventory
from tests.support.puppet_tree import forge_checksums, make_module, site_for, write


def inventory_of(tree):
    site = site_for(tree)
    try:
        return build_inventory(site)
    finally:
        site.close()


def test_each_module_says_whether_it_is_public_and_why(tree):
    modules = tree.environment("production") / "modules"
    ntp = make_module(modules, "ntp", "puppetlabs-ntp", "10.0.0", manifests={
        "init.pp": "class ntp { }\n", "config.pp": "class ntp::config { }\n", "define.pp": "define ntp::peer() { }\n"})
    tree.publish(ntp)
    make_module(modules, "chrony", "puppetlabs-ntp", manifests={"init.pp": "class chrony { }\n"})  # a renamed fork
    make_module(modules, "site_profile", None, manifests={"init.pp": "class site_profile { include ntp }\n"})
    tree.forge(["puppetlabs-ntp"])

    inventory = inventory_of(tree)

    by_name = {module["name"]: module for module in inventory["modules"]}
    assert by_name["ntp"]["public"] and by_name["ntp"]["reason"] == "puppetlabs-ntp is on the Forge"
    assert by_name["ntp"]["public_classes"] == ["ntp", "ntp::config"]
    assert by_name["ntp"]["release_evidence"] == "as published in puppetlabs-ntp-10.0.0"
    assert inventory["release_evidence"] == {"path": str(tree.cachepath / "forge-releases.json"), "releases": 1,
                                             "unavailable": 0, "problem": None}
    assert by_name["ntp"]["defined_types"] == ["ntp::peer"]
    assert not by_name["chrony"]["public"]
    assert by_name["chrony"]["reason"] == "directory name differs from the Forge name puppetlabs-ntp"
    assert by_name["chrony"]["public_classes"] == []
    assert not by_name["site_profile"]["public"] and by_name["site_profile"]["reason"] == "no metadata.json"
    assert by_name["site_profile"]["declares_public_classes"] == {"site_profile": ["ntp"]}
    assert inventory["forge_cache"]["modules"] == 1 and inventory["forge_cache"]["problem"] is None
    assert [env["name"] for env in inventory["environments"]] == ["production"]
    assert inventory["puppetdb"]["configured"] is False
    json.dumps(inventory)  # what --format json prints


def test_an_edited_manifest_of_a_public_module_is_private(tree):
    modules = tree.environment("production") / "modules"
    ntp = make_module(modules, "ntp", "puppetlabs-ntp", manifests={
        "init.pp": "class ntp { }\n", "config.pp": "class ntp::config { }\n"})
    tree.publish(ntp)
    forge_checksums(ntp)  # regenerated over the edit: proves nothing
    write(ntp / "manifests" / "config.pp", "class ntp::config { $secret = 'edited here' }\n")
    tree.forge(["puppetlabs-ntp"])

    (module,) = inventory_of(tree)["modules"]

    assert module["public_classes"] == ["ntp"]
    assert module["private_manifests"] == {
        "manifests/config.pp": "differs from the published release puppetlabs-ntp-1.0.0 (edited by the site)"}


def test_without_a_forge_list_nothing_is_public_and_the_text_says_why(tree):
    make_module(tree.environment("production") / "modules", "ntp", "puppetlabs-ntp",
                manifests={"init.pp": "class ntp { }\n"})

    inventory = inventory_of(tree)

    assert inventory["modules"][0]["public"] is False
    assert inventory["forge_cache"]["problem"] == "no Forge module cache yet"
    text = render_inventory(inventory)
    assert "no Forge module cache yet: nothing is public" in text
    assert "never sent" in text.splitlines()[0]


FORGED = "\ndropsonde: error: FORGED"


def test_site_file_names_cannot_print_lines_of_their_own(tree):
    """Review L3: a site-added manifest named `x\\ndropsonde: error: ...` printed a fake
    error line on stdout; a directory `zzz\\n` was a module and `staging\\n` an environment."""
    modules = tree.environment("production") / "modules"
    tree.publish(make_module(modules, "ntp", "puppetlabs-ntp", "10.0.0", manifests={"init.pp": "class ntp { }\n"}))
    write(modules / "ntp" / "manifests" / f"x{FORGED} by file name\x1b[2J.pp", "class ntp::x { }\n")
    make_module(modules, "zzz\n", "acme-zzz", manifests={"init.pp": "class zzz { }\n"})
    (tree.environments / "staging\n" / "modules").mkdir(parents=True)
    tree.forge(["puppetlabs-ntp"])

    inventory = inventory_of(tree)
    assert [env["name"] for env in inventory["environments"]] == ["production"]
    assert [module["name"] for module in inventory["modules"]] == ["ntp"]
    result = tree.run("dev", "inventory")
    assert result.returncode == 0, result.stderr
    assert not any(line.startswith("dropsonde: error:") for line in result.stdout.splitlines())
    assert ("private, not the published file: manifests/x\\ndropsonde: error: FORGED by file name\\e[2J.pp: "
            "not in the published release puppetlabs-ntp-10.0.0 (added by the site)") in result.stdout


def test_every_value_of_the_rendered_inventory_is_one_line(tree):
    """Whatever a value holds, each one stays on its line: the rendering escapes
    values before it assembles lines (not the assembled text, whose newlines are ours)."""
    make_module(tree.environment("production") / "modules", "ntp", "puppetlabs-ntp",
                manifests={"init.pp": "class ntp { }\n"})
    tree.forge(["puppetlabs-ntp"])
    inventory = inventory_of(tree)
    clean = render_inventory(inventory)
    inventory["forge_cache"]["problem"] = f"bad{FORGED}"
    inventory["release_evidence"].update(path=f"/r{FORGED}", problem=f"damaged{FORGED}")
    inventory["puppetdb"].update(configured=True, answered_by=None, failures=[f"http://x{FORGED}"])
    inventory["environments"][0].update(name=f"e{FORGED}", modulepath=[f"/m{FORGED}"])
    module = inventory["modules"][0]
    module.update(reason=f"r{FORGED}", version=f"1{FORGED}", path=f"/p{FORGED}", classes=[f"c{FORGED}"],
                  defined_types=[f"d{FORGED}"], public_classes=[f"p{FORGED}"],
                  private_manifests={f"s{FORGED}": f"w{FORGED}"}, release_evidence=f"v{FORGED}")
    forged = render_inventory(inventory)
    # the two problems, defined types, private manifest
    assert len(forged.splitlines()) == len(clean.splitlines()) + 4
    assert not any(line.startswith("dropsonde: error:") for line in forged.splitlines())


def test_a_verdict_does_not_depend_on_what_was_asked_before(tree):
    """Site.set_aside() used to return what an earlier property had recorded as a side
    effect: asked first, it said nothing. Each verdict is now computed when asked."""
    modules = tree.environment("production") / "modules"
    ntp = make_module(modules, "ntp", "puppetlabs-ntp", manifests={
        "init.pp": "class ntp { }\n", "config.pp": "class ntp::config { }\n"})
    tree.publish(ntp)
    write(ntp / "manifests" / "config.pp", "class ntp::config { $edited = true }\n")
    tree.forge(["puppetlabs-ntp"])
    first = site_for(tree)
    (module,) = first.modules
    asked_first = first.private_manifests(module)
    first.close()
    (entry,) = inventory_of(tree)["modules"]
    assert asked_first == entry["private_manifests"] == {
        "manifests/config.pp": "differs from the published release puppetlabs-ntp-1.0.0 (edited by the site)"}
