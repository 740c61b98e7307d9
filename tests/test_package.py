"""End to end with the built packages, as root on Debian 12: build the Debian 12
.deb and the EL 9 .rpm, check them (lintian, rpmlint, contents, the ABI of every
bundled compiled module), install the .deb beside Debian's puppetserver 7.9.5,
use it through `puppetserver dropsonde`, then remove and purge it. The official
(AIO/OpenVox) layout is reproduced as a package in a throwaway mount namespace
whose /etc, /opt, /usr and /var are overlays, so the host never sees it.

This installs a package system-wide; tests/run (as root) provides
puppetserver, dpkg, rpmbuild, lintian and rpmlint.
"""

from __future__ import annotations

import json
import os
import re
import pwd
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Dict, Optional

import pytest

from dropsonde.config import credential_name
from tests.support.paths import REPO
from tests.support.puppet_tree import PuppetTree, make_module, write
from tests.support.receiver import Receiver

SHIM = Path("/usr/share/puppetserver/cli/apps/dropsonde")
UNIT_DIR = Path("/lib/systemd/system")
PUPPET = pwd.getpwnam("puppet")
FRESH = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat(timespec="seconds")  # a Forge list needing no refresh


def run(*args: str, check: bool = True, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=600, env=env)


@pytest.fixture(scope="module")
def packages():
    """The default build (Debian 12 amd64 .deb, EL 9 x86_64 .rpm) and Debian 13 arm64."""
    for tool in ("puppetserver", "rpmbuild", "lintian", "rpmlint", "ruby"):
        if os.geteuid() != 0 or shutil.which(tool) is None:
            pytest.fail(f"needs root and {tool}: run tests/run as root (it installs them)")
    start = time.monotonic()
    # the default pair, plus one target unlike this machine (another Python, aarch64) for the ABI check
    output = run(str(REPO / "packaging" / "build"), "--target", "debian12-amd64", "--target", "el9-x86_64",
                 "--target", "debian13-arm64").stdout
    build_seconds = time.monotonic() - start
    deb = REPO / "dist" / "dropsonde_0.1.0-1+deb12_amd64.deb"
    rpm = REPO / "dist" / "dropsonde-0.1.0-1.el9.x86_64.rpm"
    assert f"dist/{deb.name}" in output and f"dist/{rpm.name}" in output
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


def extract(package: Path, into: Path) -> Path:
    """The package's file tree."""
    into.mkdir(parents=True, exist_ok=True)
    if package.suffix == ".deb":
        run("dpkg-deb", "-x", str(package), str(into))
    else:
        subprocess.run(f"rpm2cpio '{package}' | (cd '{into}' && cpio -idm --quiet)", shell=True, check=True, timeout=300)
    return into


def test_package_contents(packages, tmp_path):
    deb, rpm, _ = packages
    deb_files = run("dpkg-deb", "--contents", str(deb)).stdout
    for path in ("./usr/bin/dropsonde", "./usr/lib/dropsonde/puppetserver-dropsonde", "./lib/systemd/system/dropsonde.timer",
                 "./lib/systemd/system/dropsonde.service", "./etc/cron.d/dropsonde", "./usr/share/doc/dropsonde/copyright",
                 "./usr/share/doc/dropsonde/changelog.Debian.gz", "./usr/share/man/man1/dropsonde.1.gz",
                 "./usr/share/bash-completion/completions/dropsonde", "./usr/share/zsh/vendor-completions/_dropsonde",
                 "./usr/lib/dropsonde/puppetserver-analytics.rb",
                 "./usr/lib/dropsonde/python/dropsonde/cli.py", "./usr/lib/dropsonde/python/tree_sitter_ruby/"):
        assert path in deb_files, path
    assert "/opt/" not in deb_files and "__pycache__" not in deb_files
    assert "cpython-311" in deb_files and "cpython-39" not in deb_files
    rpm_files = run("rpm", "-qlp", str(rpm)).stdout.split()
    for path in ("/usr/bin/dropsonde", "/usr/lib/systemd/system/dropsonde.timer", "/etc/cron.d/dropsonde",
                 "/usr/lib/dropsonde/python/dropsonde/cli.py", "/usr/share/doc/dropsonde/README.md",
                 "/usr/share/licenses/dropsonde/copyright", "/usr/share/man/man1/dropsonde.1.gz",
                 "/usr/share/zsh/site-functions/_dropsonde"):
        assert path in rpm_files, path
    assert any("cpython-39" in f for f in rpm_files)
    licenses = run("rpm", "-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\\n]", str(rpm)).stdout
    assert "l /usr/share/licenses/dropsonde/copyright" in licenses
    requires = run("rpm", "-qp", "--requires", str(rpm)).stdout
    assert "python3 >= 3.9" in requires and "libc.so.6(GLIBC_2.14)(64bit)" in requires

    root = extract(deb, tmp_path / "deb")
    for shared in root.rglob("*.so"):  # stripped: no symbol table left
        assert ".symtab" not in run("readelf", "-S", "-W", str(shared)).stdout, shared
    copyright_text = (root / "usr/share/doc/dropsonde/copyright").read_text()
    assert copyright_text.startswith("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/")
    for dist_info in (root / "usr/lib/dropsonde/python").glob("*.dist-info"):  # every bundled wheel is covered
        if not dist_info.name.startswith("dropsonde-"):
            assert f"usr/lib/dropsonde/python/{dist_info.name}/*" in copyright_text, dist_info.name
    man = subprocess.run(f"man --warnings -E ascii -l '{root}/usr/share/man/man1/dropsonde.1.gz' | col -bx", shell=True,
                         capture_output=True, text=True, timeout=60, env=dict(os.environ, MANWIDTH="80"))
    assert "dropsonde preview" in man.stdout and "--puppetserver-confd" in man.stdout and not man.stderr


def test_lintian_and_rpmlint_find_nothing(packages):
    deb, rpm, _ = packages
    lintian = run("lintian", "--fail-on", "none", str(deb))
    assert [line for line in lintian.stdout.splitlines() if line[:2] in ("E:", "W:")] == []
    rpmlint = run("rpmlint", "-c", str(REPO / "packaging/rpm/rpmlint.toml"), str(rpm), check=False)
    assert "0 errors, 0 warnings" in rpmlint.stdout, rpmlint.stdout


def test_depends_are_what_dpkg_shlibdeps_computes(packages, tmp_path):
    deb = packages[0]
    root = extract(deb, tmp_path / "root")
    write(tmp_path / "debian" / "control", "Source: x\n\nPackage: x\nArchitecture: any\n")
    shared = [str(p.relative_to(tmp_path)) for p in root.rglob("*.so")]
    shlibdeps = subprocess.run(["dpkg-shlibdeps", "-O", *shared], cwd=tmp_path, capture_output=True, text=True,
                               check=True, timeout=120).stdout
    expected = dict(re.findall(r"([a-z0-9.+-]+) \(>= ([^)]+)\)", shlibdeps.split("=", 1)[1]))
    depends = dict(re.findall(r"([a-z0-9.+-]+) \(>= ([^)]+)\)", run("dpkg-deb", "-f", str(deb), "Depends").stdout))
    assert set(expected) == {"libc6", "libgcc-s1"} and set(expected) <= set(depends)
    for package, version in expected.items():
        assert run("dpkg", "--compare-versions", depends[package], "ge", version, check=False).returncode == 0


ELF_MACHINE = {"x86_64": 62, "aarch64": 183}


LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def tag_fits(py: str, abi: str, platform: str, cp: str, arch: str, glibc: str) -> bool:
    """One wheel tag: this CPython (or the stable ABI of an older one), this
    architecture, a manylinux glibc no newer than the target's."""
    python_ok = (py == cp and abi == cp) or (abi == "abi3" and int(py[3:]) <= int(cp[3:]))
    match = re.match(r"(manylinux1|manylinux2010|manylinux2014|manylinux_(\d+)_(\d+))_(\w+)$", platform)
    if not (python_ok and match and match.group(4) == arch):
        return False
    needed = LEGACY_MANYLINUX.get(match.group(1)) or (int(match.group(2)), int(match.group(3)))
    return needed <= tuple(int(x) for x in glibc.split("."))


def abi_problems(root: Path, python: str, arch: str, glibc: str, site: str = "usr/lib/dropsonde/python") -> list:
    """Every bundled compiled module must load on this target: ELF class and
    machine, the CPython ABI in its file name, and its wheel's tags (Python,
    ABI, architecture, manylinux glibc no newer than the target's)."""
    problems = []
    cp = "cp" + python.replace(".", "")
    site_dir = root / site
    for shared in site_dir.rglob("*.so"):
        header = shared.read_bytes()[:20]
        if header[:4] != b"\x7fELF" or header[4] != 2 or int.from_bytes(header[18:20], "little") != ELF_MACHINE[arch]:
            problems.append(f"{shared.name}: not a 64-bit {arch} ELF object")
        tag = re.search(r"\.(cpython-(\d+)-([a-z0-9_]+)-linux-gnu|abi3)\.so$", shared.name)
        if tag is None:
            problems.append(f"{shared.name}: no ABI tag")
        elif tag.group(1) != "abi3" and (tag.group(2) != cp[2:] or tag.group(3) != arch):
            problems.append(f"{shared.name}: built for {tag.group(1)}, target is {cp} {arch}")
    for wheel in site_dir.glob("*.dist-info/WHEEL"):
        tags = [(py, abi, platform)  # compressed tag sets ("cp39.cp310", "manylinux_2_17_x86_64.manylinux2014_x86_64")
                for line in wheel.read_text().splitlines() if line.startswith("Tag: ")
                for pys, abis, platforms in [line[5:].split("-")]
                for py in pys.split(".") for abi in abis.split(".") for platform in platforms.split(".")]
        if all(platform == "any" for _, _, platform in tags):
            continue
        if not any(tag_fits(py, abi, platform, cp, arch, glibc) for py, abi, platform in tags):
            problems.append(f"{wheel.parent.name}: no tag of {tags} fits {cp} {arch} glibc {glibc}")
    return problems


def test_every_bundled_compiled_module_fits_its_targets_python_and_architecture(packages, tmp_path):
    """Every package packaging/build has written (dist/targets.json: at least the three the
    fixture builds; `packaging/build --all` before the test adds the other nine)."""
    targets = json.loads((REPO / "dist" / "targets.json").read_text())
    checked = 0
    for name, target in sorted(targets.items()):
        package = REPO / "dist" / target["file"]
        if not package.is_file():
            continue
        root = extract(package, tmp_path / name)
        assert list(root.rglob("*.so")), name
        site = target.get("site", "usr/lib/dropsonde/python")  # the collector's .deb has its own
        assert list((root / site).rglob("*.so")), name
        assert abi_problems(root, target["python"], target["arch"], target["glibc"], site) == [], name
        checked += 1
    assert checked >= 3
    wrong = extract(packages[1], tmp_path / "as-if-debian12")  # the check can fail: EL 9's tree is not Debian 12's
    assert abi_problems(wrong, "3.11", "x86_64", "2.36")


def test_bash_completion_offers_commands_and_options(installed):
    script = ("source /usr/share/bash-completion/completions/dropsonde; "
              "COMP_WORDS=(dropsonde pre); COMP_CWORD=1; _dropsonde; echo \"${COMPREPLY[*]}\"; "
              "COMP_WORDS=(dropsonde --cachepath /tmp preview --f); COMP_CWORD=4; _dropsonde; echo \"${COMPREPLY[*]}\"; "
              "COMP_WORDS=(dropsonde preview --format ''); COMP_CWORD=3; _dropsonde; echo \"${COMPREPLY[*]}\"")
    assert run("bash", "-c", script).stdout.splitlines() == ["preview", "--format", "human json"]
    assert run("zsh", "-n", "/usr/share/zsh/vendor-completions/_dropsonde", check=False).returncode == 0


def test_puppetserver_dropsonde_end_to_end(installed, server_site):
    confd, server_var = server_site
    assert SHIM.is_symlink()
    version = run("puppetserver", "dropsonde", "--version").stdout
    assert version.startswith("dropsonde version ")

    preview = puppetserver(confd, "preview", "--format", "json")
    assert preview.returncode == 0, preview.stderr
    snapshots = json.loads(preview.stdout)["self-service-analytics"]["snapshots"]
    # no release evidence in this site's cache: a version the Forge is not known to have published is private
    assert snapshots["modules"]["value"] == [{"name": "ntp", "slug": "puppetlabs-ntp", "version": "(private)"}]

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


def test_the_scheduled_service_has_a_memory_limit_of_its_own():
    """The review: nothing bounded the scheduled run's memory, and on the Puppet server the
    kernel's OOM killer picks the largest process, Puppet Server's JVM, not the probe."""
    template = [line.strip() for line in (REPO / "packaging" / "systemd" / "dropsonde.service.in").read_text().splitlines()]
    service = template[template.index("[Service]"):]
    assert "MemoryMax=1G" in service and "OOMScoreAdjust=1000" in service


def test_scheduled_service_runs_as_puppet_in_a_sandbox_with_a_time_limit(installed):
    service = unit_lines("dropsonde.service")
    for line in ("User=puppet", "Group=puppet", "TimeoutStartSec=1h", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "PrivateTmp=yes", "ProtectHome=read-only", "PrivateDevices=yes", "CapabilityBoundingSet=",
                 "ExecStart=/usr/lib/dropsonde/puppetserver-dropsonde submit --scheduled"):
        assert line in service, line
    # the Debian layout's cache is systemd's to create (under /var/lib); the official layout's must exist
    assert "StateDirectory=puppetserver/dropsonde" in service and "StateDirectoryMode=0700" in service
    writable = next(line for line in service if line.startswith("ReadWritePaths="))
    assert writable.split("=", 1)[1].split() == ["-/opt/puppetlabs/server/data/puppetserver/dropsonde"]
    for path in ("/etc/telemetry.yaml", "/etc/puppetlabs/telemetry.yaml"):  # what dropsonde.config looks for
        assert f"LoadCredential={credential_name(Path(path))}:{path}" in service
        assert f"SetCredential={credential_name(Path(path))}:---" in service
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


def test_as_the_puppet_user_the_servers_layout_applies(installed, server_site):
    """Not root, yet `puppetserver dropsonde` must see the server's defaults (ssldir,
    basemodulepath), not a user's ~/.puppetlabs: the same site, the same site id."""
    confd, _ = server_site
    as_puppet = run("setpriv", f"--reuid={PUPPET.pw_uid}", f"--regid={PUPPET.pw_gid}", "--init-groups", "--",
                    "/usr/lib/dropsonde/puppetserver-dropsonde", "-v", "--puppetserver-confd", str(confd),
                    "preview", "--format", "json", check=False)
    as_root = puppetserver(confd, "preview", "--format", "json")
    assert as_puppet.returncode == as_root.returncode == 0, as_puppet.stderr
    assert "(debian layout)" in as_puppet.stderr and "(user layout)" not in as_puppet.stderr
    assert json.loads(as_puppet.stdout)["site_id"] == json.loads(as_root.stdout)["site_id"]


def test_removal_takes_shim_and_program_away_and_purge_the_state(packages, server_site):
    deb = packages[0]
    run("dpkg", "-i", str(deb))
    assert diversions() == DIVERSIONS
    default_state = Path("/var/lib/puppetserver/dropsonde")
    made = default_state.lstat()  # by the install, for the puppet user
    assert (made.st_uid, made.st_gid, made.st_mode & 0o7777) == (PUPPET.pw_uid, PUPPET.pw_gid, 0o700)
    (default_state / "forge.json").write_text("{}")
    run("dpkg", "--remove", "dropsonde")
    assert not SHIM.exists() and not SHIM.is_symlink()
    assert not Path("/usr/bin/dropsonde").exists()
    assert not Path("/usr/lib/dropsonde/python").exists()
    assert (default_state / "forge.json").exists()  # kept until purge
    assert diversions() == set()  # Puppet Server's own files are back at once
    run("dpkg", "--purge", "dropsonde")
    assert not default_state.exists()


AIO = "/opt/puppetlabs/server/apps/puppetserver"
GEM_HOME = "/opt/puppetlabs/server/data/puppetserver/dropsonde"
DIVERSIONS = {
    ("/usr/share/puppetserver/cli/apps/dropsonde", "/usr/share/puppetserver/cli/dropsonde.puppetserver"),
    (f"{AIO}/cli/apps/dropsonde", f"{AIO}/cli/dropsonde.puppetserver"),
    (f"{GEM_HOME}/bin/dropsonde", f"{GEM_HOME}/bin/dropsonde.puppetserver"),
}


def diversions() -> set:
    """(path, diverted to) of every diversion held by the dropsonde package."""
    listed = run("dpkg-divert", "--list").stdout
    return set(re.findall(r"^diversion of (\S+) to (\S+) by dropsonde$", listed, re.MULTILINE))


# What the official puppetserver package (7.5+; OpenVox's has the same paths) ships
# that dropsonde meets. The dispatcher is ezbake's; Debian's /usr/bin/puppetserver is
# the same script with Debian's CLI directory, which the fixture puts back.
OFFICIAL_DEFAULTS = """\
JAVA_BIN="/usr/bin/java"
JAVA_ARGS="-Xms2g -Xmx2g -Djruby.logger.class=com.puppetlabs.jruby_utils.jruby.Slf4jLogger"
USER="puppet"
GROUP="puppet"
INSTALL_DIR="/opt/puppetlabs/server/apps/puppetserver"
CONFIG="/etc/puppetlabs/puppetserver/conf.d"
BOOTSTRAP_CONFIG="/etc/puppetlabs/puppetserver/services.d/,/opt/puppetlabs/server/apps/puppetserver/config/services.d/"
SERVICE_STOP_RETRIES=60
START_TIMEOUT=300
RELOAD_TIMEOUT=120
"""
# puppetserver's resources/ext/cli/dropsonde.erb: runs the bundled Ruby gem
OFFICIAL_GEM_WRAPPER = """\
#!/usr/bin/env bash

PUPPET_AGENT_RUBY="/opt/puppetlabs/puppet/bin/ruby"
DROPSONDE_DIR="/opt/puppetlabs/server/data/puppetserver/dropsonde"
DROPSONDE_BIN="${DROPSONDE_DIR}/bin/dropsonde"

export GEM_HOME=${DROPSONDE_DIR}
export GEM_PATH=${DROPSONDE_DIR}

if [[ -f "$DROPSONDE_BIN" && -x "$DROPSONDE_BIN" ]]
then
    $DROPSONDE_BIN "$@"
else
    echo "Dropsonde does not appear to be installed properly."
fi
"""
OFFICIAL_CONFD = """\
jruby-puppet: {
    ruby-load-path: [/opt/puppetlabs/puppet/lib/ruby/vendor_ruby]
    gem-home: /opt/puppetlabs/server/data/puppetserver/jruby-gems
    server-conf-dir: /etc/puppetlabs/puppet
    server-code-dir: /etc/puppetlabs/code
    server-var-dir: /opt/puppetlabs/server/data/puppetserver
    server-run-dir: /var/run/puppetlabs/puppetserver
    server-log-dir: /var/log/puppetlabs/puppetserver
}
"""


def official_puppetserver_deb(build: Path, gem_marker: Path) -> Path:
    """A stand-in for the official puppetserver package: the CLI dispatcher and its
    symlink in /opt/puppetlabs/bin, cli/apps with the Ruby gem's dropsonde wrapper,
    the gem (its executable records that it ran in ``gem_marker``) in
    <server-var-dir>/dropsonde, /etc/default/puppetserver, conf.d, and puppet-agent's
    Ruby; its postinst gives the data directory to puppet, as ezbake's does."""
    root = build / "root"
    dispatcher = Path("/usr/bin/puppetserver").read_text()
    assert 'CLI_DIR="/usr/share/puppetserver/cli"' in dispatcher
    dispatcher = dispatcher.replace('CLI_DIR="/usr/share/puppetserver/cli"', f'CLI_DIR="{AIO}/cli"')
    gem_bin = f'#!/opt/puppetlabs/puppet/bin/ruby\nFile.write("{gem_marker}", ARGV.join(" "))\n'
    files = {
        f"{AIO}/bin/puppetserver": (dispatcher, 0o755),
        f"{AIO}/cli/cli-defaults.sh": ('CLASSPATH="${CLASSPATH}:/opt/puppetlabs/server/apps/puppetserver/puppet-server-release.jar"\n', 0o644),
        f"{AIO}/cli/apps/ca": ("#!/bin/bash\necho 'puppetserver ca'\n", 0o755),
        f"{AIO}/cli/apps/dropsonde": (OFFICIAL_GEM_WRAPPER, 0o755),
        f"{GEM_HOME}/bin/dropsonde": (gem_bin, 0o755),
        f"{GEM_HOME}/gems/dropsonde-0.0.8/lib/dropsonde.rb": ("# the Ruby dropsonde gem\n", 0o644),
        "/etc/default/puppetserver": (OFFICIAL_DEFAULTS, 0o644),
        "/etc/puppetlabs/puppetserver/conf.d/puppetserver.conf": (OFFICIAL_CONFD, 0o644),
        "/DEBIAN/control": ("Package: puppetserver-official-fixture\nVersion: 8.0.0\nArchitecture: all\n"
                            "Maintainer: dropsonde tests <tests@example.invalid>\n"
                            "Description: the official puppetserver package's layout, for dropsonde's tests\n", 0o644),
        "/DEBIAN/postinst": ("#!/bin/sh\nset -e\nchown puppet:puppet /opt/puppetlabs/server/data/puppetserver\n"
                             "chmod 0770 /opt/puppetlabs/server/data/puppetserver\n", 0o755),
    }
    for path, (text, mode) in files.items():
        target = root / path.lstrip("/")
        write(target, text).chmod(mode)
    for link, points_to in {"/opt/puppetlabs/bin/puppetserver": "../server/apps/puppetserver/bin/puppetserver",
                            "/opt/puppetlabs/puppet/bin/ruby": shutil.which("ruby")}.items():
        (root / link.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / link.lstrip("/")).symlink_to(points_to)
    deb = build / "puppetserver-official-fixture.deb"
    run("dpkg-deb", "--root-owner-group", "--build", str(root), str(deb))
    return deb


# Run inside a private mount namespace; /etc, /opt, /usr and /var are overlays
# (writes land in $OVL and vanish with the namespace). Each step's output, error
# output and exit status go to $OUT/<step>.out, .err and .rc.
NAMESPACE_SCRIPT = r"""
set -u
for dir in etc opt usr var; do
    mkdir -p "$OVL/$dir/upper" "$OVL/$dir/work"
    mount -t overlay overlay -o "lowerdir=/$dir,upperdir=$OVL/$dir/upper,workdir=$OVL/$dir/work" "/$dir" || exit 90
done
step() { name=$1; shift; "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"; echo $? >"$OUT/$name.rc"; }
as_puppet() { setpriv --reuid="$(id -u puppet)" --regid="$(id -g puppet)" --init-groups -- "$@"; }
# Puppet Server's analytics service: as puppet, with the environment dropsonde.clj gives it
tick() {
    as_puppet env -i HOME="$GEM_HOME" GEM_HOME="$GEM_HOME" GEM_PATH="$GEM_HOME" \
        PUPPET_CONFDIF=/etc/puppetlabs/puppet PUPPET_CODEDIR=/etc/puppetlabs/code \
        PUPPET_VARDIR=/opt/puppetlabs/server/data/puppetserver PUPPET_LOGDIR=/var/log/puppetlabs/puppetserver \
        /opt/puppetlabs/puppet/bin/ruby "$GEM_HOME/bin/dropsonde" submit
}
links() { readlink "$AIO/cli/apps/dropsonde" "$GEM_HOME/bin/dropsonde"; }
dpkg --purge dropsonde >/dev/null 2>&1
# Debian's puppetserver also ships /etc/default/puppetserver: here the official package takes it over.
step fixture dpkg -i --force-overwrite "$FIXTURE"
cp "$FORGE" "$GEM_HOME/forge.json"  # a Forge cache left there by root (as dropsonde 0.1.0 would)
step install dpkg -i "$DEB"
step diversions dpkg-divert --list
step links links
step cache stat -c '%u %a %n' "$GEM_HOME" "$GEM_HOME/forge.json" "$GEM_HOME/bin" "$GEM_HOME/bin/dropsonde.puppetserver"
step help /opt/puppetlabs/bin/puppetserver --help
step version /opt/puppetlabs/bin/puppetserver dropsonde --version
step preview /opt/puppetlabs/bin/puppetserver dropsonde preview --format json
step tick-absent tick
echo 'dropsonde: { enabled: true }' >/etc/puppetlabs/puppetserver/conf.d/dropsonde.conf
step tick-enabled tick
step timer as_puppet /usr/lib/dropsonde/puppetserver-dropsonde submit --scheduled
step state stat -c '%u %a' "$GEM_HOME/last-submission.json"
step upgrade dpkg -i --force-overwrite "$FIXTURE"
step links-after-upgrade links
step remove dpkg --remove dropsonde
step restored cat "$AIO/cli/apps/dropsonde"
step tick-after-remove tick
step purge dpkg --purge dropsonde
step after-purge ls -A "$GEM_HOME"
"""


def test_official_layout_puppetserver_dropsonde_and_one_submitter(packages, tmp_path):
    """The official/OpenVox layout, built from a package in a throwaway namespace: our
    shim and scheduled run replace Puppet Server's bundled gem through dpkg-divert,
    `puppetserver dropsonde` goes through the official dispatcher, Puppet Server's
    analytics tick and our timer share one interval (one report), and removal and
    purge give Puppet Server its own files back."""
    if shutil.which("unshare") is None:
        pytest.fail("needs unshare (util-linux)")
    root = Path(tempfile.mkdtemp(prefix="dropsonde-aio-"))
    root.chmod(0o755)
    out, ovl = root / "out", root / "ovl"
    out.mkdir()
    try:
        (root / "marker").mkdir()
        os.chown(root / "marker", PUPPET.pw_uid, PUPPET.pw_gid)  # Puppet Server runs the gem as puppet
        fixture = official_puppetserver_deb(root / "fixture", root / "marker" / "gem-ran")
        with Receiver() as receiver:
            site = ovl / "etc" / "upper" / "puppetlabs"
            write(site / "puppet" / "puppet.conf", "[main]\ncertname = aio.example.test\n")
            make_module(site / "code" / "environments" / "production" / "modules", "ntp", "puppetlabs-ntp", "10.0.0",
                        manifests={"init.pp": "class ntp { }"})
            write(site / "telemetry.yaml", f":update: false\n:endpoint: {receiver.endpoint}\n:port: {receiver.port}\n")
            forge = write(root / "forge.json", json.dumps({"timestamp": FRESH, "modules": ["puppetlabs-ntp"]}))
            env = dict(os.environ, OVL=str(ovl), OUT=str(out), FIXTURE=str(fixture), DEB=str(packages[0]),
                       AIO=AIO, GEM_HOME=GEM_HOME, FORGE=str(forge))
            subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", NAMESPACE_SCRIPT],
                           env=env, check=True, timeout=600)
            received = len(receiver.state.received)
        step = {path.stem: (int((out / f"{path.stem}.rc").read_text()), path.read_text(),
                            (out / f"{path.stem}.err").read_text()) for path in out.glob("*.out")}
        print(json.dumps(step, indent=1))  # shown when an assertion below fails
        for name in ("fixture", "install", "version", "preview", "tick-absent", "tick-enabled", "timer", "upgrade",
                     "remove", "purge"):
            assert step[name][0] == 0, (name, step[name][1:])
        assert set(re.findall(r"^diversion of (\S+) to (\S+) by dropsonde$", step["diversions"][1], re.M)) == DIVERSIONS
        ours = "/usr/lib/dropsonde/puppetserver-dropsonde\n/usr/lib/dropsonde/puppetserver-analytics.rb\n"
        assert step["links"][1] == step["links-after-upgrade"][1] == ours
        puppet = str(PUPPET.pw_uid)
        assert step["cache"][1].split("\n")[:3] == [f"{puppet} 700 {GEM_HOME}", f"{puppet} 644 {GEM_HOME}/forge.json",
                                                    f"0 755 {GEM_HOME}/bin"]
        assert f"{GEM_HOME}/bin/dropsonde.puppetserver" in step["cache"][1]  # the gem's executable, set aside
        assert "   dropsonde\n" in step["help"][1] and "dropsonde.puppetserver" not in step["help"][1]
        assert step["version"][1].startswith("dropsonde version ")
        modules = json.loads(step["preview"][1])["self-service-analytics"]["snapshots"]["modules"]["value"]
        # no release evidence in this site's cache: a version the Forge is not known to have published is private
        assert modules == [{"name": "ntp", "slug": "puppetlabs-ntp", "version": "(private)"}]
        assert "not enabled" in step["tick-absent"][2]  # Puppet Server's default-on tick sends nothing: opt-in
        assert "report submitted" in step["tick-enabled"][2]
        assert "due after" in step["timer"][2]  # the timer shares the interval: one report, never two
        assert received == 1
        assert step["state"][1].startswith(f"{puppet} ")  # written by the puppet user
        assert step["restored"][1] == OFFICIAL_GEM_WRAPPER
        assert (root / "marker" / "gem-ran").read_text() == "submit"  # after removal, Puppet Server runs its gem again
        assert step["after-purge"][1].split() == ["bin", "gems"]  # the gem stays, our state is gone
        assert not Path("/etc/puppetlabs").exists() and not Path(AIO).exists()  # the host never saw any of it
    finally:
        shutil.rmtree(root)
