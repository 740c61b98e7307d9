"""End to end with the built packages, as root on Debian 12: build the .deb and
.rpm, install the .deb beside Debian's puppetserver 7.9.5, use it through
`puppetserver dropsonde`, then remove and purge it.

This installs a package system-wide; tests/run (as root) provides
puppetserver, dpkg and rpmbuild.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional

import pytest

from tests.conftest import REPO, PuppetTree, make_module, write
from tests.receiver import Receiver

SHIM = Path("/usr/share/puppetserver/cli/apps/dropsonde")
UNIT_DIR = Path("/lib/systemd/system")
PUPPET = pwd.getpwnam("puppet")


def run(*args: str, check: bool = True, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=600, env=env)


@pytest.fixture(scope="module")
def packages():
    if os.geteuid() != 0 or shutil.which("puppetserver") is None or shutil.which("rpmbuild") is None:
        pytest.fail("needs root, Debian's puppetserver and rpmbuild: run tests/run as root (it installs them)")
    start = time.monotonic()
    output = run(str(REPO / "packaging" / "build")).stdout
    build_seconds = time.monotonic() - start
    deb = next(REPO.glob("dist/dropsonde_*_amd64.deb"))
    rpm = next(REPO.glob("dist/dropsonde-*.x86_64.rpm"))
    assert str(deb.name) in output and str(rpm.name) in output
    return deb, rpm, build_seconds


@pytest.fixture(scope="module")
def installed(packages):
    deb = packages[0]
    start = time.monotonic()
    run("dpkg", "-i", str(deb))
    install_seconds = time.monotonic() - start
    try:
        yield install_seconds
    finally:
        run("dpkg", "--purge", "dropsonde", check=False)


@pytest.fixture
def server_site():
    """A Puppet tree the puppet user can read, a server vardir it owns, and a
    conf.d whose jruby-puppet directories point at them."""
    root = Path(tempfile.mkdtemp(prefix="dropsonde-package-"))
    root.chmod(0o755)
    tree = PuppetTree(root / "site")
    make_module(tree.environment("production") / "modules", "ntp", "puppetlabs-ntp", "10.0.0",
                manifests={"init.pp": "class ntp { }"})
    server_var = root / "server-var"
    (server_var / "dropsonde").mkdir(parents=True, mode=0o700)
    write(server_var / "dropsonde" / "forge.json", json.dumps(
        {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),  # fresh (a future date is refused)
         "modules": ["puppetlabs-ntp"]}))
    confd = root / "conf.d"
    write(confd / "puppetserver.conf", "jruby-puppet: {\n"
          f"  server-conf-dir: {tree.confdir}\n  server-code-dir: {tree.codedir}\n  server-var-dir: {server_var}\n}}\n")
    for path in [server_var, *server_var.rglob("*")]:
        os.chown(path, PUPPET.pw_uid, PUPPET.pw_gid)
    try:
        yield confd, server_var
    finally:
        shutil.rmtree(root)


def puppetserver(confd: Path, *args: str) -> subprocess.CompletedProcess:
    return run("puppetserver", "dropsonde", "--puppetserver-confd", str(confd), *args, check=False)


def test_package_contents(packages):
    deb, rpm, _ = packages
    deb_files = run("dpkg-deb", "--contents", str(deb)).stdout
    for path in ("./usr/bin/dropsonde", "./usr/lib/dropsonde/puppetserver-dropsonde", "./lib/systemd/system/dropsonde.timer",
                 "./lib/systemd/system/dropsonde.service", "./etc/cron.d/dropsonde", "./usr/share/doc/dropsonde/LICENSE",
                 "./usr/lib/dropsonde/python/dropsonde/cli.py", "./usr/lib/dropsonde/python/tree_sitter_ruby/"):
        assert path in deb_files, path
    assert "cpython-311" in deb_files and "cpython-39" not in deb_files
    rpm_files = run("rpm", "-qlp", str(rpm)).stdout.split()
    for path in ("/usr/bin/dropsonde", "/usr/lib/systemd/system/dropsonde.timer", "/etc/cron.d/dropsonde",
                 "/usr/lib/dropsonde/python/dropsonde/cli.py", "/usr/share/doc/dropsonde/README.md"):
        assert path in rpm_files, path
    assert any("cpython-39" in f for f in rpm_files)
    requires = run("rpm", "-qp", "--requires", str(rpm)).stdout
    assert "python3 >= 3.9" in requires
    control = run("dpkg-deb", "--field", str(deb), "Depends").stdout
    assert "python3 (>= 3.11)" in control


def test_puppetserver_dropsonde_end_to_end(installed, server_site):
    confd, server_var = server_site
    assert SHIM.is_symlink()
    version = run("puppetserver", "dropsonde", "--version").stdout
    assert version.startswith("dropsonde version ")

    preview = puppetserver(confd, "preview", "--format", "json")
    assert preview.returncode == 0, preview.stderr
    snapshots = json.loads(preview.stdout)["self-service-analytics"]["snapshots"]
    assert snapshots["modules"]["value"] == [{"name": "ntp", "slug": "puppetlabs-ntp", "version": "10.0.0"}]

    with Receiver() as receiver:
        target = ["--endpoint", receiver.endpoint, "--port", str(receiver.port)]
        sent = puppetserver(confd, "submit", *target)
        assert sent.returncode == 0, sent.stderr
        body = json.loads(receiver.state.received[0].body)
        stamp = snapshots["modules"]["timestamp"]
        received = json.dumps(body, sort_keys=True).replace(body["self-service-analytics"]["snapshots"]["modules"]["timestamp"], stamp)
        assert received == json.dumps(json.loads(preview.stdout), sort_keys=True)
        assert (server_var / "dropsonde" / "last-submission.json").is_file()
        (server_var / "dropsonde" / "last-submission.json").unlink()

        absent = puppetserver(confd, "submit", "--scheduled", *target)
        write(confd / "dropsonde.conf", "dropsonde { enabled: false }\n")
        disabled = puppetserver(confd, "submit", "--scheduled", *target)
        assert absent.returncode == disabled.returncode == 0
        assert len(receiver.state.received) == 1  # only the explicit submit

        write(confd / "dropsonde.conf", "dropsonde { enabled: true }\n")
        first = puppetserver(confd, "submit", "--scheduled", *target)
        again = puppetserver(confd, "submit", "--scheduled", *target)
        assert first.returncode == again.returncode == 0, first.stderr
        assert len(receiver.state.received) == 2
        assert "due after" in again.stderr
    # run by root, `puppetserver dropsonde` dropped to the user Puppet Server runs as
    record = server_var / "dropsonde" / "last-submission.json"
    assert (record.stat().st_uid, record.stat().st_gid) == (PUPPET.pw_uid, PUPPET.pw_gid)


def unit_lines(name: str) -> list:
    return [line.strip() for line in (UNIT_DIR / name).read_text().splitlines()]


def test_scheduled_service_runs_as_puppet_in_a_sandbox_with_a_time_limit(installed):
    service = unit_lines("dropsonde.service")
    for line in ("User=puppet", "Group=puppet", "TimeoutStartSec=1h", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "PrivateTmp=yes", "ProtectHome=read-only", "PrivateDevices=yes", "CapabilityBoundingSet=",
                 "ExecStart=/usr/lib/dropsonde/puppetserver-dropsonde submit --scheduled"):
        assert line in service, line
    writable = next(line for line in service if line.startswith("ReadWritePaths="))
    assert writable.split("=", 1)[1].split() == ["-/var/lib/puppetserver/dropsonde",
                                                 "-/opt/puppetlabs/server/data/puppetserver/dropsonde"]
    verify = run("systemd-analyze", "verify", str(UNIT_DIR / "dropsonde.service"), str(UNIT_DIR / "dropsonde.timer"),
                 check=False)
    assert verify.returncode == 0, verify.stderr


def cron_job() -> tuple:
    """(user, command) of the cron.d line."""
    line = next(line for line in Path("/etc/cron.d/dropsonde").read_text().splitlines() if line[:1].isdigit())
    fields = line.split(None, 6)
    return fields[5], fields[6]


def test_cron_job_runs_as_puppet_with_a_time_limit_and_state_belongs_to_puppet(installed, server_site):
    confd, server_var = server_site
    user, command = cron_job()
    assert user == "puppet"
    assert " timeout " in f" {command}"
    write(confd / "dropsonde.conf", "dropsonde { enabled: true }\n")
    telemetry = confd.parent / "site" / "etc" / "telemetry.yaml"
    with Receiver() as receiver:
        write(telemetry, telemetry.read_text() + f":endpoint: {receiver.endpoint}\n:port: {receiver.port}\n")
        # as cron would run it (no journal here: the log line goes to stdout instead of logger)
        cron = run("setpriv", f"--reuid={PUPPET.pw_uid}", f"--regid={PUPPET.pw_gid}", "--init-groups", "--",
                   "sh", "-c", command.replace("| logger -t dropsonde", "| cat"), check=False,
                   env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CONFIG": str(confd)})
        assert cron.returncode == 0 and "report submitted" in cron.stdout, cron.stdout + cron.stderr
        assert len(receiver.state.received) == 1
    state = server_var / "dropsonde"
    assert {path.stat().st_uid for path in [state, *state.iterdir()]} == {PUPPET.pw_uid}
    assert state.stat().st_mode & 0o777 == 0o700


def test_removal_takes_shim_and_program_away_and_purge_the_state(packages, server_site):
    deb = packages[0]
    run("dpkg", "-i", str(deb))
    default_state = Path("/var/lib/puppetserver/dropsonde")
    made = default_state.lstat()  # by the install, for the puppet user
    assert (made.st_uid, made.st_gid, made.st_mode & 0o7777) == (PUPPET.pw_uid, PUPPET.pw_gid, 0o700)
    (default_state / "forge.json").write_text("{}")
    run("dpkg", "--remove", "dropsonde")
    assert not SHIM.exists() and not SHIM.is_symlink()
    assert not Path("/usr/bin/dropsonde").exists()
    assert not Path("/usr/lib/dropsonde/python").exists()
    assert (default_state / "forge.json").exists()  # kept until purge
    run("dpkg", "--purge", "dropsonde")
    assert not default_state.exists()
