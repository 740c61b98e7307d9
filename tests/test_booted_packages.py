"""The Debian 12 and 13 packages as a distribution tests them: each release
booted with real systemd as PID 1 (systemd-nspawn -b on a debootstrap root,
tests/support/booted.py), Debian's puppetserver installed, then our .deb, and every
check made through systemd itself: the timer is listed and enabled; `systemctl
start` of the service submits as `puppet` over https to a receiver whose CA was
added with update-ca-certificates; a second start sends nothing (not due); a
deleted cache directory is recreated; telemetry.yaml as the puppetlabs-dropsonde
module writes it (root:root 0660) is honoured; stopping the service during a
stalled POST frees the lock; remove and purge leave no timer, link, diversion
or state.

Needs root, debootstrap, systemd-container and the Debian mirror apt uses
(tests/run installs them). The roots are made once per machine (a few minutes)
and cached under /var/cache/dropsonde-tests; each test boots a volatile overlay
of them, so nothing it does survives it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from tests.support.booted import SUITES, Container, listening, root_for, unusual_ports
from tests.support.collector_process import write_forge_cache
from tests.support.paths import REPO

SERVICE_SECONDS = 180  # one scheduled run under systemd, start to finish
TIMINGS: Dict[str, float] = {}


def _need(tool: str) -> None:
    if os.geteuid() != 0 or shutil.which(tool) is None:
        pytest.fail(f"needs root and {tool}: run tests/run as root (it installs debootstrap and systemd-container)")


@pytest.fixture(scope="module")
def prepared() -> Dict[str, Tuple[Path, Path, Path]]:
    """{suite: (its cached root, our .deb, the collector's .deb)}: the packages are built while
    the roots are made (or found in the cache), side by side."""
    for tool in ("debootstrap", "systemd-nspawn", "nsenter", "dpkg-deb"):
        _need(tool)
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(SUITES) + 1) as pool:
        roots = {suite: pool.submit(root_for, suite) for suite in SUITES}
        built = pool.submit(build_packages)
        packages = built.result(timeout=BUILD_SECONDS)
        TIMINGS["build"] = time.monotonic() - start
        made = {suite: future.result(timeout=ROOT_SECONDS) for suite, future in roots.items()}
    TIMINGS["build and roots"] = time.monotonic() - start
    return {suite: (made[suite], *packages[suite]) for suite in SUITES}


BUILD_SECONDS = 1800
ROOT_SECONDS = 2400  # debootstrap and puppetserver's installation, each bounded inside too


def build_packages() -> Dict[str, Tuple[Path, Path]]:
    """The probe's and the collector's .deb for each booted release."""
    targets = [argument for suite in SUITES for argument in ("--target", f"{suite}-amd64")]
    subprocess.run([str(REPO / "packaging" / "build"), "--collector", *targets], check=True, capture_output=True,
                   timeout=BUILD_SECONDS)
    built = json.loads((REPO / "dist" / "targets.json").read_text())
    return {suite: (REPO / "dist" / built[f"{suite}-amd64"]["file"],
                    REPO / "dist" / built[f"dropsonde-collector-{suite}-amd64"]["file"]) for suite in SUITES}


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=120)


def make_ca_and_server(directory: Path) -> None:
    """collector-ca.pem and collector.pem/.key for 127.0.0.1, with the extensions a real CA
    has: Debian 13's Python verifies strictly (X.509 strict mode) and refuses a CA
    certificate without key usage, or a certificate without authority key identifier."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(directory / "collector-ca.key"),
            "-out", str(directory / "collector-ca.pem"), "-days", "2", "-subj", "/CN=dropsonde test collector CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(directory / "collector.key"),
            "-out", str(directory / "collector.csr"), "-subj", "/CN=127.0.0.1")
    (directory / "collector.ext").write_text(
        "subjectAltName = IP:127.0.0.1\nbasicConstraints = critical,CA:FALSE\n"
        "keyUsage = critical,digitalSignature,keyEncipherment\nextendedKeyUsage = serverAuth\n"
        "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid,issuer\n")
    openssl("x509", "-req", "-in", str(directory / "collector.csr"), "-CA", str(directory / "collector-ca.pem"),
            "-CAkey", str(directory / "collector-ca.key"), "-CAcreateserial", "-out", str(directory / "collector.pem"),
            "-days", "2", "-extfile", str(directory / "collector.ext"))
    for name in ("collector.key", "collector-ca.key"):
        (directory / name).chmod(0o600)


def received(record: Path) -> List[dict]:
    """The reports the receiver recorded, in order."""
    return [json.loads((record / f"{n}.json").read_text()) for n in range(1, len(list(record.glob("*.json"))) + 1)]


def wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)  # polling what a service in the container writes, with a deadline
    raise AssertionError(f"not within {seconds} s: {what}")


TELEMETRY = """\
---
:endpoint: https://127.0.0.1
:port: {port}
:update: false
:disable:
- environments
"""

CACHE = "/var/lib/puppetserver/dropsonde"


def import_forge_list(box: Container) -> None:
    """The Forge list, imported into the probe's cache as an air-gapped admin would."""
    box.run("runuser", "-u", "puppet", "--", "dropsonde", "--cachepath", CACHE, "update", "--from-file",
            "/mnt/test/forge.json")


COLLECTOR_STATE = "/var/lib/dropsonde-collector"


def collector_under_systemd(box: Container, deb: Path, port: int) -> None:
    """The collector's .deb: installed, serving on loopback as its own user, accepting the
    probe package's scheduled report, publishing through its timer's service, purged."""
    box.run("dpkg", "-i", f"/mnt/dist/{deb.name}", timeout=300)
    assert box.run("systemctl", "is-enabled", "dropsonde-collector.service").stdout.strip() == "enabled"
    assert box.run("systemctl", "is-active", "dropsonde-collector-aggregate.timer").stdout.strip() == "active"
    assert "dropsonde-collector-aggregate.timer" in box.run("systemctl", "list-timers", "--all", "--no-pager").stdout
    verify = box.run("systemd-analyze", "verify", "dropsonde-collector.service", "dropsonde-collector-aggregate.service",
                     "dropsonde-collector-aggregate.timer", check=False)
    assert verify.returncode == 0, verify.stderr
    # first steps as README.Debian gives them: the Forge list, the address, a start
    box.run("runuser", "-u", "dropsonde-collector", "--", "/usr/lib/dropsonde-collector/dropsonde", "--cachepath",
            COLLECTOR_STATE, "update", "--from-file", "/mnt/test/forge.json")
    box.run("install", "-o", "dropsonde-collector", "-g", "dropsonde-collector", "-m", "0640",
            "/mnt/test/collector/forge-releases.json", COLLECTOR_STATE)  # built elsewhere (`releases build`)
    box.run("sed", "-i", f"s/^LISTEN=.*/LISTEN=127.0.0.1:{port}/", "/etc/default/dropsonde-collector")
    box.run("systemctl", "restart", "dropsonde-collector.service", timeout=120)
    listening(port, 120)
    reload = box.run("systemctl", "reload", "dropsonde-collector.service", check=False, timeout=120)
    assert reload.returncode == 0, reload.stderr + box.journal("dropsonde-collector.service")  # new workers
    listening(port, 120)
    EXPOSURE["dropsonde-collector.service"] = exposure(box, "dropsonde-collector.service")
    main_pid = box.run("systemctl", "show", "-p", "MainPID", "--value", "dropsonde-collector.service").stdout.strip()
    user = box.run("stat", "-c", "%U", f"/proc/{main_pid}").stdout.strip()
    assert user == "dropsonde-collector"

    # the probe package's scheduled run, sent to it (plain http: loopback)
    box.run("install", "-o", "root", "-g", "root", "-m", "0660", "/dev/stdin", "/etc/telemetry.yaml",
            input=TELEMETRY.format(port=port).replace("https://127.0.0.1", "http://127.0.0.1"))
    make_due(box)
    import_forge_list(box)
    sent = start_service(box)
    assert sent.returncode == 0, box.journal("dropsonde.service") + box.journal("dropsonde-collector.service")
    stored = box.run("runuser", "-u", "dropsonde-collector", "--", "python3", "-c",
                     "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("
                     "'SELECT count(*) FROM reports').fetchone()[0])", f"{COLLECTOR_STATE}/reports.db")
    assert stored.stdout.strip() == "1"

    # the weekly aggregation, as its timer starts it
    published = box.run("systemctl", "start", "dropsonde-collector-aggregate.service", check=False, timeout=600)
    assert published.returncode == 0, box.journal("dropsonde-collector-aggregate.service")
    assert box.run("test", "-f", f"{COLLECTOR_STATE}/published/summary.json", check=False).returncode == 0

    box.run("dpkg", "--purge", "dropsonde-collector", timeout=300)
    assert box.run("test", "-e", COLLECTOR_STATE, check=False).returncode == 1
    assert box.run("systemctl", "list-unit-files", "--no-legend", "dropsonde-collector*", check=False).stdout.strip() == ""
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


EXPOSURE: Dict[str, float] = {}


def exposure(box: Container, unit: str) -> float:
    """`systemd-analyze security`'s overall exposure of ``unit`` (0 best, 10 worst): the sandbox must hold."""
    text = box.run("systemd-analyze", "security", "--no-pager", unit, check=False).stdout
    level = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", text).group(1))
    assert level < 2.5, text
    return level


def start_service(container: Container) -> subprocess.CompletedProcess:
    """`systemctl start` of the scheduled submission; a oneshot: it returns when the run has ended.
    (systemd refuses a sixth start within 10 s: the test starts it more often than any timer would.)"""
    container.run("systemctl", "reset-failed", "dropsonde.service", check=False)
    return container.run("systemctl", "start", "dropsonde.service", check=False, timeout=SERVICE_SECONDS)


def make_due(container: Container) -> None:
    container.run("rm", "-f", f"{CACHE}/last-submission.json")


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_the_package_under_systemd(suite, prepared, tmp_path):
    start = time.monotonic()
    root, deb, collector = prepared[suite]
    share = tmp_path / "share"
    record = share / "received"
    record.mkdir(parents=True)
    share.chmod(0o755)
    make_ca_and_server(share)
    shutil.copy(REPO / "tests" / "support" / "booted_receiver.py", share)
    port, collector_port = unusual_ports(2)
    fresh = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat(timespec="seconds")
    (share / "forge.json").write_text(json.dumps({"timestamp": fresh, "modules": ["puppetlabs-ntp"]}))
    write_forge_cache(share / "collector", ["puppetlabs-ntp"], {"puppetlabs-ntp": {"10.0.0": ["ntp"]}})
    (share / "collector").chmod(0o755)
    boot = time.monotonic()
    with Container(root, binds=[(share, "/mnt/test", False), (deb.parent, "/mnt/dist", True)]) as box:
        TIMINGS[f"{suite} boot"] = time.monotonic() - boot
        box.run("dpkg", "-i", f"/mnt/dist/{deb.name}", timeout=300)
        import_forge_list(box)

        # the timer is enabled, started and listed
        assert box.run("systemctl", "is-enabled", "dropsonde.timer").stdout.strip() == "enabled"
        assert box.run("systemctl", "is-active", "dropsonde.timer").stdout.strip() == "active"
        assert "dropsonde.timer" in box.run("systemctl", "list-timers", "--all", "--no-pager").stdout
        verify = box.run("systemd-analyze", "verify", "dropsonde.service", "dropsonde.timer", check=False)
        assert verify.returncode == 0, verify.stderr
        EXPOSURE[f"{suite} dropsonde.service"] = exposure(box, "dropsonde.service")

        # a collector inside, over https, its CA added as an admin adds one
        box.run("cp", "/mnt/test/collector-ca.pem", "/usr/local/share/ca-certificates/dropsonde-test.crt")
        box.run("update-ca-certificates")
        box.run("systemd-run", "--unit=receiver", "--collect", "python3", "/mnt/test/booted_receiver.py", str(port),
                "/mnt/test/collector.pem", "/mnt/test/collector.key", "/mnt/test/received")
        listening(port)

        # the site: a public module, opted in, telemetry.yaml as the Puppet module writes it (root:root 0660)
        box.sh("mkdir -p /etc/puppet/code/environments/production/modules/ntp/manifests\n"
               "cd /etc/puppet/code/environments/production/modules/ntp\n"
               "echo 'class ntp { }' > manifests/init.pp\n"
               "printf '{\"name\": \"puppetlabs-ntp\", \"version\": \"10.0.0\", \"dependencies\": []}' > metadata.json\n"
               "echo 'dropsonde: { enabled: true, interval: 604800 }' > /etc/puppet/puppetserver/conf.d/dropsonde.conf\n")
        box.run("install", "-o", "root", "-g", "root", "-m", "0660", "/dev/stdin", "/etc/telemetry.yaml",
                input=TELEMETRY.format(port=port))

        # `systemctl start`: one report, sent as puppet, trusted through the system store
        first = start_service(box)
        assert first.returncode == 0, box.journal("dropsonde.service")
        reports = received(record)
        assert len(reports) == 1, box.journal("dropsonde.service")
        report = json.loads(reports[0]["body"])
        snapshots = report["self-service-analytics"]["snapshots"]
        assert "environment_count" not in snapshots  # telemetry.yaml's disable: honoured
        # no release evidence in this site's cache: a version the Forge is not known to have published is private
        assert snapshots["modules"]["value"] == [{"name": "ntp", "slug": "puppetlabs-ntp", "version": "(private)"}]
        owner = box.run("stat", "-c", "%U %a", CACHE, f"{CACHE}/last-submission.json").stdout.split("\n")
        assert owner[:2] == ["puppet 700", "puppet 600"], owner
        assert box.run("systemctl", "show", "-p", "User", "--value", "dropsonde.service").stdout.strip() == "puppet"

        # a second start: not due, nothing sent
        second = start_service(box)
        assert second.returncode == 0 and len(received(record)) == 1
        assert "due after" in box.journal("dropsonde.service")

        # a deleted cache directory is recreated (systemd's StateDirectory=), and the run goes through
        box.run("rm", "-rf", CACHE)
        third = start_service(box)
        assert third.returncode == 0, box.journal("dropsonde.service")
        assert box.run("stat", "-c", "%U %a", CACHE).stdout.strip() == "puppet 700"
        assert len(received(record)) == 2

        # stopped while its POST stalls: the lock is freed, and the next start submits
        make_due(box)
        (record / "stall").touch()
        box.run("systemctl", "reset-failed", "dropsonde.service", check=False)
        box.run("systemctl", "start", "--no-block", "dropsonde.service")
        wait_for(lambda: len(received(record)) == 3, SERVICE_SECONDS, "the stalled POST reached the receiver")
        box.run("systemctl", "stop", "dropsonde.service", timeout=120)
        (record / "stall").unlink()
        again = start_service(box)
        assert again.returncode == 0, box.journal("dropsonde.service")
        assert len(received(record)) == 4

        collector_under_systemd(box, collector, collector_port)

        # remove: the timer stopped and masked, no link, no diversion; the cron line left behind does nothing
        box.run("dpkg", "--remove", "dropsonde", timeout=300)
        assert box.run("systemctl", "is-active", "dropsonde.timer", check=False).stdout.strip() == "inactive"
        assert box.run("systemctl", "is-enabled", "dropsonde.timer", check=False).stdout.strip() == "masked"
        assert box.run("test", "-e", "/usr/share/puppetserver/cli/apps/dropsonde", check=False).returncode == 1
        assert box.run("test", "-L", "/usr/share/puppetserver/cli/apps/dropsonde", check=False).returncode == 1
        assert "by dropsonde" not in box.run("dpkg-divert", "--list").stdout
        line = next(text for text in box.run("cat", "/etc/cron.d/dropsonde").stdout.splitlines() if text[:1].isdigit())
        cron = box.run("runuser", "-u", "puppet", "--", "sh", "-c", line.split(None, 6)[6], check=False)
        assert cron.stdout == cron.stderr == "", (cron.stdout, cron.stderr)

        # purge: no state, no unit, no enablement link, no cron line
        box.run("dpkg", "--purge", "dropsonde", timeout=300)
        leftovers = box.sh("ls -d /var/lib/puppetserver/dropsonde /etc/cron.d/dropsonde /usr/lib/dropsonde "
                           "/etc/systemd/system/timers.target.wants/dropsonde.timer "
                           "/etc/systemd/system/dropsonde.timer 2>/dev/null || true").stdout
        assert leftovers == ""
        assert box.run("systemctl", "list-unit-files", "--no-legend", "dropsonde*", check=False).stdout.strip() == ""
        timers = box.run("systemctl", "list-timers", "--all", "--no-pager").stdout
        assert "dropsonde" not in timers, timers
    TIMINGS[f"{suite} total"] = time.monotonic() - start
    print("timings (s):", {name: round(seconds, 1) for name, seconds in TIMINGS.items()}, "exposure:", EXPOSURE)


def test_lintian_finds_nothing_in_the_collector_package(prepared):
    collector = prepared["debian12"][2]
    lintian = subprocess.run(["lintian", "--fail-on", "none", str(collector)], capture_output=True, text=True,
                             timeout=900)
    assert [line for line in lintian.stdout.splitlines() if line[:2] in ("E:", "W:")] == []
