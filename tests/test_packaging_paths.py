"""packaging/build's path table is the one place the packages' paths are written:
the maintainer scripts, units and cron job get them from it, every diversion the
Debian package adds is removed from the same list, and what EL's scriptlets set
aside they restore. No build and no root needed: the scripts are generated and
run with dpkg's tools replaced by recorders on PATH."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from dropsonde.config import credential_name
from tests.support.paths import REPO
from tests.support.puppet_tree import write


def load_build():
    loader = importlib.machinery.SourceFileLoader("packaging_build", str(REPO / "packaging" / "build"))
    spec = importlib.util.spec_from_loader("packaging_build", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["packaging_build"] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


build = load_build()

# Stand-ins for dpkg's tools: each records its arguments; dpkg-divert says the diversion is ours.
RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >> "$RECORD"
case "$*" in --listpackage*) echo dropsonde ;; esac
exit 0
"""


def run_maintainer_script(tmp_path: Path, name: str, argument: str) -> List[str]:
    """Generate packaging/deb/<name>, run it with ``argument``, and return the dpkg-divert calls it made."""
    tools = tmp_path / "tools"
    for tool in ("dpkg-divert", "dpkg-query", "deb-systemd-helper", "deb-systemd-invoke", "systemctl", "py3compile",
                 "py3clean"):
        write(tools / tool, RECORDER).chmod(0o755)
    script = write(tmp_path / name, build.maintainer_script(f"deb/{name}", "deb", {"@PYTHON@": "3.11"}))
    record = tmp_path / f"{name}.calls"
    record.write_text("")
    subprocess.run(["sh", str(script), argument], check=True, timeout=60, capture_output=True,
                   env={"PATH": f"{tools}:/usr/bin:/bin", "RECORD": str(record)})
    return [line for line in record.read_text().splitlines() if line.startswith("dpkg-divert ")]


def diversions_in(calls: List[str], action: str) -> set:
    """(path, diverted to) of each dpkg-divert call doing ``action`` (--add, --remove)."""
    found = set()
    for call in calls:
        if f" {action} " in call:
            diverted, path = re.search(r"--divert (\S+) (\S+)$", call).groups()
            found.add((path, diverted))
    return found


def test_every_diversion_added_is_removed(tmp_path):
    table = {(place, diverted) for layout in build.layouts("deb") for place, _, diverted in layout.placements()}
    added = diversions_in(run_maintainer_script(tmp_path, "preinst", "install"), "--add")
    assert added == table and len(table) == 3
    for argument in ("remove", "purge", "abort-install"):
        assert diversions_in(run_maintainer_script(tmp_path, "postrm", argument), "--remove") == added, argument
    assert diversions_in(run_maintainer_script(tmp_path, "postrm", "upgrade"), "--remove") == set()


def test_what_el_sets_aside_it_restores(tmp_path):
    """rpm-set-aside.sh and rpm-restore.sh, run on the table's list moved under a scratch root."""
    pairs = [(f"{tmp_path}{place}", f"{tmp_path}{diverted}")
             for layout in build.layouts("rpm") for place, _, diverted in layout.placements()]
    for place, _ in pairs:
        write(Path(place), f"puppetserver's own {place}\n")
    variables = f'diversions="{" ".join(f"{place}:{aside}" for place, aside in pairs)}"\n'
    scripts = REPO / "packaging" / "scripts"
    subprocess.run(["sh", "-ec", variables + (scripts / "rpm-set-aside.sh").read_text()], check=True, timeout=60)
    assert all(not Path(place).exists() and Path(aside).is_file() for place, aside in pairs)
    subprocess.run(["sh", "-ec", variables + (scripts / "rpm-restore.sh").read_text()], check=True, timeout=60)
    assert all(Path(place).read_text() == f"puppetserver's own {place}\n" and not Path(aside).exists()
               for place, aside in pairs)


def table_paths() -> set:
    paths = {build.LIB, build.LEGACY_LIB, build.CRON, build.COLLECTOR_LIB, build.COLLECTOR_STATE, build.COLLECTOR_DEFAULTS,
             build.COLLECTOR_SYSUSERS}
    for layout in build.LAYOUTS:
        paths |= {layout.confd, layout.cli, layout.vardir, layout.telemetry}
    return paths


# The manual page documents where the program (not the package) reads telemetry.yaml.
DOCUMENTS_THE_PROGRAM = {("cli_docs.py", "/etc/puppetlabs/telemetry.yaml"), ("cli_docs.py", "/etc/telemetry.yaml")}


@pytest.mark.parametrize("path", sorted(table_paths()))
def test_no_package_path_is_written_outside_the_table(path):
    """A path (or one below it) spelled out again under packaging/ would drift from the table."""
    spelled = [source.relative_to(REPO / "packaging").as_posix() for source in sorted((REPO / "packaging").rglob("*"))
               if source.is_file() and source.name != "build" and path in source.read_text(errors="replace")]
    assert [name for name in spelled if (name, path) not in DOCUMENTS_THE_PROGRAM] == []


def test_the_units_credentials_are_what_the_program_reads():
    lines = build.unit_paths("deb")["@CREDENTIALS@"].splitlines()
    for layout in build.layouts("deb"):
        name = credential_name(Path(layout.telemetry))
        assert f"LoadCredential={name}:{layout.telemetry}" in lines and f"SetCredential={name}:---" in lines
    assert build.unit_paths("rpm")["@WRITABLE@"] == "ReadWritePaths=-/opt/puppetlabs/server/data/puppetserver/dropsonde"
    assert "StateDirectory=puppetserver/dropsonde" in build.unit_paths("deb")["@WRITABLE@"]


def test_the_cron_line_does_nothing_once_the_program_is_gone(tmp_path):
    """/etc/cron.d/dropsonde is a conffile: it outlives `apt-get remove`, the program does not."""
    cron = build.filled(REPO / "packaging" / "cron.d-dropsonde", build.file_paths())
    line = next(text for text in cron.splitlines() if text[:1].isdigit())
    command = line.split(None, 6)[6].replace(build.SHIM, str(tmp_path / "removed"))
    ran = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)
    assert ran.stdout == ran.stderr == ""
