#!/usr/bin/env python3
"""Benchmark the probe on a tree laid out as r10k deploys it, and print figures.

r10k checks out one copy of the control repository per branch: every
environment holds its own full copy (not a link) of the Forge modules of its
Puppetfile and of the site's private modules. Here the control repository is
14 modules of Debian's puppet-module-* packages (/usr/share/puppet/modules)
copied into ``modules/``, plus ~150 generated private manifests in
``site-modules/`` (profile, role, base, site) declaring public classes, a
Puppetfile (14 Forge modules, 20 git ones) and an ``environment.conf``.
Branches differ a little, as real ones do: each environment edits ``--edits``
profile manifests of its own and pins its own ref of one git module in its
Puppetfile (so every environment's Puppetfile is a distinct content).

Measured per size (10, 40 and 160 environments): `preview --format json`
cold (no parse cache) and warm, `dev inventory --format json` cold, wall time
as the median of ``--runs`` runs and the largest peak RSS seen.

Usage: bench/r10k.py [--runs 5] [--sizes 10,40,160] [--edits 2]
(with another venv's python to measure the revision installed there)
(needs the puppet-module-* packages: tests/run installs them)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

from probe import MODULES, dropsonde_command, run

FORGE_MODULES = (
    "apache", "apt", "archive", "collectd", "concat", "firewall", "haproxy",
    "mysql", "ntp", "postgresql", "rabbitmq", "redis", "ssh", "stdlib",
)  # fmt: skip
# Public classes the generated profiles declare (all defined by FORGE_MODULES).
DECLARED = (
    "apache", "apache::mod::ssl", "apache::mod::headers", "mysql::server", "mysql::client",
    "postgresql::server", "postgresql::client", "haproxy", "apt", "ntp", "firewall", "ssh::server",
    "ssh::client", "rabbitmq", "redis", "collectd", "collectd::plugin::cpu", "archive", "stdlib",
)  # fmt: skip


def _profile(index: int) -> str:
    """One profile class (~70 lines, as real ones are) declaring public classes in the usual styles."""
    picks = [DECLARED[(index * 7 + step) % len(DECLARED)] for step in range(4)]
    resources = "".join(
        f"  file {{ \"${{config_dir}}/part{part}.conf\":\n"
        f"    ensure  => file,\n    owner   => $owner,\n    mode    => '0640',\n"
        f"    content => epp('profile/app{index}/part{part}.conf.epp', {{ 'port' => $port + {part} }}),\n"
        f"    notify  => Service[\"app{index}\"],\n  }}\n"
        for part in range(5)
    )
    return (
        f"# @summary Sets up application {index} on a node.\n#\n"
        f"# @param ensure Whether the application is installed.\n# @param port Where it listens.\n"
        f"class profile::app{index} (\n  Enum['present', 'absent'] $ensure = 'present',\n"
        f"  Stdlib::Port $port = {8000 + index},\n  String $owner = 'app{index}',\n"
        f"  Optional[String] $proxy = lookup('profile::proxy', Optional[String], 'first', undef),\n) {{\n"
        f"  include {picks[0]}\n  contain '{picks[1]}'\n"
        f"  class {{ '{picks[2]}':\n    require => Class['{picks[0]}'],\n  }}\n"
        f"  $config_dir = \"/etc/app{index}\"\n"
        f"  case $facts['os']['family'] {{\n    'RedHat': {{ $package = 'app{index}-el' }}\n"
        f"    'Debian': {{ $package = \"app{index}\" }}\n    default: {{ fail(\"unsupported: ${{facts['os']['family']}}\") }}\n  }}\n"
        f"  if $proxy =~ /^https?:\\/\\// {{\n    require {picks[3]}\n  }}\n"
        f"  package {{ $package:\n    ensure => $ensure,\n  }}\n"
        f"  -> file {{ $config_dir:\n    ensure => directory,\n  }}\n"
        f"{resources}"
        f"  service {{ \"app{index}\":\n    ensure => running,\n    enable => true,\n  }}\n"
        f"  file {{ \"${{config_dir}}/README\":\n    content => @(EOT),\n"
        f"      Managed by Puppet (profile::app{index}); local edits are overwritten.\n      | EOT\n  }}\n}}\n"
    )


def build_control_repo(repo: Path) -> None:
    """The control repository every environment is a copy of."""
    for name in FORGE_MODULES:
        shutil.copytree(MODULES / name, repo / "modules" / name, symlinks=False)
    site = repo / "site-modules"
    for index in range(100):
        _write(site / "profile" / "manifests" / f"app{index}.pp", _profile(index))
    for index in range(40):
        body = "".join(f"  include profile::app{(index * 3 + step) % 100}\n" for step in range(3))
        _write(site / "role" / "manifests" / f"server{index}.pp", f"class role::server{index} {{\n{body}}}\n")
    for module in ("base", "site"):
        _write(site / module / "manifests" / "init.pp", f"class {module} {{\n  include ntp, ssh::server\n}}\n")
        for index in range(4):
            _write(
                site / module / "manifests" / f"part{index}.pp",
                f"class {module}::part{index} {{\n  require {module}\n  include apt\n}}\n",
            )
    for module in ("profile", "role", "base", "site"):
        _write(site / module / "metadata.json", json.dumps({"name": f"example-{module}", "version": "1.0.0"}))
    _write(repo / "environment.conf", "modulepath = site-modules:modules:$basemodulepath\n")
    _write(repo / "manifests" / "site.pp", "node default {\n  include role::server0\n}\n")
    _write(
        repo / "Puppetfile",
        "forge 'https://forge.puppet.com'\n\n"
        + "".join(f"mod 'puppetlabs-{name}', :latest\n" for name in FORGE_MODULES)
        + "".join(f"mod 'acme-team{n}',\n  git: 'https://git.example.test/puppet/team{n}.git',\n  branch: 'main'\n"
                  for n in range(20)),
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def build_tree(root: Path, environments: int, edits: int) -> list:
    """``environments`` copies of the control repository, each with ``edits`` files of its own;
    returns dropsonde's global options for the tree."""
    (root / "puppet").mkdir(parents=True)
    (root / "puppet" / "puppet.conf").write_text("[main]\nbasemodulepath = $codedir/modules\nssldir = $confdir/ssl\n")
    (root / "telemetry.yaml").write_text(":update: false\n")  # measure the probe, not a Forge refresh
    slugs = [json.loads((MODULES / n / "metadata.json").read_text())["name"].replace("/", "-") for n in FORGE_MODULES]
    (root / "cache").mkdir()
    (root / "cache" / "forge.json").write_text(json.dumps({"timestamp": "2026-11-27T00:00:00+00:00", "modules": slugs}))
    template = root / "control"
    build_control_repo(template)
    for index in range(environments):
        env = root / "code" / "environments" / f"branch{index:03d}"
        shutil.copytree(template, env)
        for edit in range(edits):
            manifest = env / "site-modules" / "profile" / "manifests" / f"app{(index + edit) % 100}.pp"
            manifest.write_text(manifest.read_text() + f"# edited on branch{index:03d}\n")
        # each branch pins its own revision of one module, as r10k branches do: distinct Puppetfiles
        puppetfile = env / "Puppetfile"
        puppetfile.write_text(puppetfile.read_text() + f"mod 'acme-feature',\n  git: 'https://git.example.test/"
                              f"puppet/feature.git',\n  ref: 'branch{index:03d}'\n")
    return ["--confdir", str(root / "puppet"), "--codedir", str(root / "code"), "--cachepath", str(root / "cache")]


def manifest_counts(code: Path) -> tuple:
    """(.pp files, distinct contents) under the environments."""
    paths = list(code.glob("environments/*/*modules/*/manifests/**/*.pp"))
    return len(paths), len({hashlib.md5(path.read_bytes()).digest() for path in paths})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="10,40,160", help="numbers of environments, comma-separated")
    parser.add_argument("--edits", type=int, default=2, help="profile manifests each environment edits")
    options = parser.parse_args()
    if not MODULES.is_dir():
        sys.exit("needs Debian's puppet-module-* packages under /usr/share/puppet/modules")
    command = dropsonde_command()
    for environments in (int(size) for size in options.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            args = build_tree(root, environments, options.edits)
            files, distinct = manifest_counts(root / "code")
            cache = root / "cache"
            preview = [*command, *args, "preview", "--format", "json"]
            inventory = [*command, *args, "dev", "inventory", "--format", "json"]
            cold = run(preview, options.runs, cold_cache=cache)
            warm = run(preview, options.runs)
            inventory_cold = run(inventory, options.runs, cold_cache=cache)
            print(
                f"{environments:4d} environments, {files} manifests, {distinct} distinct: "
                f"preview cold {cold}, warm {warm}; dev inventory cold {inventory_cold}; "
                f"peak RSS {max(cold.rss_mib, warm.rss_mib, inventory_cold.rss_mib):.0f} MiB"
            )


if __name__ == "__main__":
    main()
