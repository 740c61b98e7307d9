"""Debian releases booted with real systemd as PID 1, for the package tests.

A root file system per release is made once per machine with ``debootstrap``
(minbase, plus systemd, dbus and ca-certificates, then Debian's puppetserver,
python3, openssl and man-db installed inside it booted) and kept under
``/var/cache/dropsonde-tests/roots`` under a name that hashes its recipe, so a
changed recipe makes a new root and an interrupted one is never used. A test
boots it with ``systemd-nspawn -b --volatile=overlay``: every write lands in a
tmpfs overlay that vanishes at shutdown, so the cached root stays pristine.

Commands enter the container with ``nsenter`` (all its namespaces) under
``env -i``, so nothing of the host's environment (``REQUESTS_CA_BUNDLE``,
``PYTHONPATH``...) reaches them. The host network is shared: servers in the
container must use unusual ports. Every wait has a deadline, and leaving the
``with`` block powers the container off (killed if it does not stop in time),
whatever happened inside.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

CACHE = Path(os.environ.get("DROPSONDE_TEST_ROOTS", "/var/cache/dropsonde-tests"))
# What the cached roots hold besides minbase: systemd to boot, then what the test installs beside our packages.
BOOT_PACKAGES = ("systemd", "systemd-sysv", "dbus", "ca-certificates")
SITE_PACKAGES = ("puppetserver", "python3", "openssl", "man-db")
# The release each suite is, and the distribution python3 it has.
SUITES = {"debian12": "bookworm", "debian13": "trixie"}
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
DEBOOTSTRAP_SECONDS = 900
INSTALL_SECONDS = 900
BOOT_SECONDS = 90
STOP_SECONDS = 60


def mirror() -> str:
    """The Debian mirror this machine's apt uses (the only host the roots are fetched from)."""
    sources = sorted(Path("/etc/apt").glob("sources.list.d/*")) + [Path("/etc/apt/sources.list")]
    for source in sources:
        if not source.is_file():
            continue
        text = source.read_text(errors="replace")
        for uri in re.findall(r"^(?:deb\s+(?:\[[^\]]*\]\s+)?|URIs:\s*)(https?://\S+)", text, re.MULTILINE):
            if re.search(r"/debian/?$", uri):
                return uri.rstrip("/")
    return "http://deb.debian.org/debian"


def recipe(suite: str) -> str:
    return f"{SUITES[suite]} minbase {','.join(BOOT_PACKAGES)} {' '.join(SITE_PACKAGES)} {mirror()} v1"


def root_for(suite: str) -> Path:
    """The cached root of ``suite`` ("debian12", "debian13"), made first if missing (minutes, once)."""
    key = hashlib.sha256(recipe(suite).encode()).hexdigest()[:12]
    root = CACHE / "roots" / f"{suite}-{key}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{suite}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one maker per machine; the others wait and reuse its root
        if not (root / "etc" / "os-release").exists():
            make_root(suite, root)
    return root


def make_root(suite: str, root: Path) -> None:
    """debootstrap into a scratch directory, install the site packages booted, then move it into place."""
    scratch = root.with_name(root.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(BOOT_PACKAGES)}", SUITES[suite],
                    str(scratch), mirror()], check=True, capture_output=True, timeout=DEBOOTSTRAP_SECONDS)
    (scratch / "etc" / "hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    with Container(scratch, volatile=False) as container:
        container.run("apt-get", "update", "-qq", timeout=INSTALL_SECONDS)
        container.run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *SITE_PACKAGES,
                      timeout=INSTALL_SECONDS, env={"DEBIAN_FRONTEND": "noninteractive"})
        # Puppet Server itself is not needed running (a JVM per boot on two cores): only its files and user.
        container.run("systemctl", "disable", "--now", "puppetserver.service")
        container.run("apt-get", "clean")
    shutil.rmtree(scratch / "var" / "lib" / "apt" / "lists", ignore_errors=True)
    (scratch / "var" / "lib" / "apt" / "lists" / "partial").mkdir(parents=True)
    scratch.rename(root)


class Container:
    """``root`` booted under systemd-nspawn; ``run`` executes a command inside it.

    ``volatile``: writes go to a tmpfs overlay (the default; the root is left
    as it was). ``binds``: (host path, path inside, read-only?)."""

    def __init__(self, root: Path, volatile: bool = True, binds: Sequence[Tuple[Path, str, bool]] = ()) -> None:
        self.root = root
        self.volatile = volatile
        self.binds = list(binds)
        self.name = f"dropsonde-test-{os.getpid()}-{int(time.monotonic() * 1000) % 100000}"
        self.log = Path(f"/tmp/{self.name}.console")
        self.nspawn: Optional[subprocess.Popen] = None
        self.pid1 = 0

    def __enter__(self) -> "Container":
        command = ["systemd-nspawn", "--quiet", "-D", str(self.root), "-b", "-M", self.name, "--register=no",
                   "--keep-unit", "--console=passive", "--resolv-conf=copy-host", "--timezone=off"]
        if self.volatile:
            command.append("--volatile=overlay")
        for host, inside, read_only in self.binds:
            command.append(f"--bind{'-ro' if read_only else ''}={host}:{inside}")
        with open(self.log, "wb") as log:
            self.nspawn = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
        try:
            self.pid1 = self._wait_for_pid1()
            self._wait_until_booted()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_for_pid1(self) -> int:
        """The container's PID 1: nspawn's child, once it runs systemd."""
        assert self.nspawn is not None
        deadline = time.monotonic() + BOOT_SECONDS
        children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children")
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited with {self.nspawn.returncode}: {self.console()}")
            for child in children.read_text().split() if children.exists() else []:
                try:
                    if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                        return int(child)
                except OSError:
                    continue
            time.sleep(0.05)  # polling a process table, with a deadline
        raise RuntimeError(f"no systemd in {self.name} after {BOOT_SECONDS} s: {self.console()}")

    def _wait_until_booted(self) -> None:
        """Until systemd says the boot is over (its bus may not answer at first)."""
        deadline = time.monotonic() + BOOT_SECONDS
        state = None
        while time.monotonic() < deadline:
            state = self.run("systemctl", "is-system-running", "--wait", check=False,
                             timeout=max(1.0, deadline - time.monotonic()))
            if state.stdout.strip() in ("running", "degraded"):
                return
            time.sleep(0.2)  # the bus is not up yet: ask again, with a deadline
        raise RuntimeError(f"{self.name} did not boot: {state and (state.stdout + state.stderr)} {self.console()}")

    def console(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def run(self, *args: str, check: bool = True, timeout: float = 300, input: Optional[str] = None,
            env: Optional[dict] = None) -> subprocess.CompletedProcess:
        """``args`` inside the container as root, in a clean environment (``env`` added)."""
        variables = [f"PATH={PATH}", "LANG=C.UTF-8", *(f"{k}={v}" for k, v in (env or {}).items())]
        result = subprocess.run(["nsenter", "-t", str(self.pid1), "-a", "env", "-i", *variables, *args],
                                capture_output=True, text=True, timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"in {self.name}: {' '.join(args)} exited {result.returncode}\n"
                                 f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}")
        return result

    def sh(self, script: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.run("sh", "-ec", script, check=check, timeout=timeout)

    def journal(self, unit: str) -> str:
        return self.run("journalctl", "-q", "-o", "cat", "--no-pager", "-u", unit, check=False).stdout

    def stop(self) -> None:
        """Power off (nspawn turns SIGTERM into an orderly shutdown); kill it past the deadline."""
        if self.nspawn is None or self.nspawn.poll() is not None:
            self.log.unlink(missing_ok=True)
            return
        self.nspawn.send_signal(signal.SIGTERM)
        try:
            self.nspawn.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.nspawn.pid, signal.SIGKILL)
            self.nspawn.wait(timeout=STOP_SECONDS)
        self.log.unlink(missing_ok=True)


def listening(port: int, seconds: float = 30) -> None:
    """Wait (with a deadline) until a server in the container accepts on 127.0.0.1:``port``
    (the container shares the host's network, so the host can connect)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)  # polling a port, with a deadline
    raise AssertionError(f"nothing accepts on 127.0.0.1:{port} after {seconds} s")


def unusual_ports(count: int) -> Iterator[int]:
    """Free ports on the shared loopback, from a range no common service uses."""
    found: List[int] = []
    for port in range(47613 + os.getpid() % 1000, 49151):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            break
    return iter(found)
