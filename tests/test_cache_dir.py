"""The cache directory is ours alone: planted links, another owner and loose
modes are refused, as root (the tests run as root in CI) and as an
unprivileged user who owns it (what the packaged timer runs as)."""

from __future__ import annotations

import errno
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from dropsonde.atomic_file import write_atomic
from dropsonde.errors import ExitStatus
from tests.support.cli import Result, assert_clean_error
from tests.support.paths import REPO
from tests.support.puppet_tree import PuppetTree, make_module, write
from tests.support.receiver import Receiver

USER = "dropsonde-test"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="creates a user and changes owners: needs root")


@pytest.fixture(scope="module")
def user() -> Iterator[pwd.struct_passwd]:
    """An unprivileged user, created for these tests and removed afterwards."""
    created = False
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
        created = True
    try:
        yield pwd.getpwnam(USER)
    finally:
        if created:
            subprocess.run(["userdel", USER], check=False)


@pytest.fixture
def world() -> Iterator[Path]:
    """A directory every user can enter (pytest's tmp_path is root's alone)."""
    root = Path(tempfile.mkdtemp(prefix="dropsonde-cachedir-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def site(root: Path) -> PuppetTree:
    tree = PuppetTree(root / "site")
    make_module(tree.environment("production") / "modules", "ntp", "puppetlabs-ntp", "10.0.0")
    write(root / "confd" / "dropsonde.conf", "dropsonde { enabled: true }\n")
    return tree


def forge_file(root: Path) -> Path:
    return write(root / "carried.json", json.dumps({"timestamp": "2026-11-20T00:00:00+00:00", "modules": ["puppetlabs-ntp"]}))


def python_for_user() -> Tuple[List[str], Dict[str, str]]:
    """How the unprivileged user runs this interpreter with our packages. When it lives
    where that user cannot go (pyenv under /root), Debian's python3 of the same version
    is given this interpreter's site-packages."""
    probe = subprocess.run(["runuser", "-u", USER, "--", sys.executable, "-c", "import dropsonde.cli"],
                           capture_output=True, cwd="/")
    if probe.returncode == 0:
        return [sys.executable], {}
    system = "/usr/bin/python3"
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    same = os.access(system, os.X_OK) and subprocess.run(
        [system, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True).stdout.strip()
    if same != version:
        pytest.skip(f"no Python {version} the user {USER} can run")
    packages = [p for p in sys.path if p.endswith("site-packages")]
    return [system], {"PYTHONPATH": os.pathsep.join([str(REPO), *packages])}


def run_as(account: str, root: Path, tree: PuppetTree, *args: str) -> Result:
    """The CLI in a fresh process as ``account`` ("root" for this process's user)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUPPET_", "PYTHON"))}
    env["HOME"] = str(root)
    command = [sys.executable]
    if account != "root":
        command, extra = python_for_user()
        env.update(extra)
        command = ["runuser", "-u", account, "--", *command]
    proc = subprocess.run([*command, "-m", "dropsonde", *tree.args(), "--puppetserver-confd", str(root / "confd"), *args],
                          capture_output=True, text=True, env=env, cwd=root, timeout=120)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def listing(directory: Path) -> List[str]:
    return sorted(p.name for p in directory.iterdir())


# ---- as root, with links planted by whoever else can write beside the cache ----


@needs_root
def test_a_planted_lock_link_is_refused_and_its_target_never_created(world):
    tree = site(world)
    target = world / "etc"
    target.mkdir()
    (tree.cachepath / "submit.lock").symlink_to(target / "nologin")
    with Receiver() as receiver:
        result = run_as("root", world, tree, "submit", "--scheduled", "--endpoint", receiver.endpoint,
                        "--port", str(receiver.port))
    assert_clean_error(result, ExitStatus.USAGE, "submit.lock", "symbolic link")
    assert listing(target) == []
    assert receiver.state.received == []


@needs_root
@pytest.mark.parametrize("command", [["update", "--from-file"], ["preview"], ["last"]])
def test_a_symlinked_cache_directory_is_refused(world, command):
    tree = site(world)
    target = world / "elsewhere"
    target.mkdir()
    tree.cachepath.rmdir()
    tree.cachepath.symlink_to(target)
    args = [*command, str(forge_file(world))] if command[0] == "update" else command
    result = run_as("root", world, tree, *args)
    assert_clean_error(result, ExitStatus.USAGE, str(tree.cachepath), "symbolic link")
    assert listing(target) == []


@needs_root
@pytest.mark.parametrize("name", ["forge.json", "last-submission.json"])
def test_state_is_never_written_through_a_planted_file_link(world, name):
    tree = site(world)
    victim = write(world / "victim", "untouched\n")
    (tree.cachepath / name).symlink_to(victim)
    with Receiver() as receiver:
        assert run_as("root", world, tree, "update", "--from-file", str(forge_file(world))).returncode == 0
        sent = run_as("root", world, tree, "submit", "--endpoint", receiver.endpoint, "--port", str(receiver.port))
    assert sent.returncode == 0, sent.stderr
    assert victim.read_text() == "untouched\n"
    assert not (tree.cachepath / name).is_symlink()


@needs_root
def test_root_refuses_a_cache_directory_another_user_owns(world, user):
    """Whoever owns it could plant a Forge list naming private modules as public."""
    tree = site(world)
    os.chown(tree.cachepath, user.pw_uid, user.pw_gid)
    result = run_as("root", world, tree, "update", "--from-file", str(forge_file(world)))
    assert_clean_error(result, ExitStatus.USAGE, str(tree.cachepath), f"belongs to {USER}", "runs as root")
    assert listing(tree.cachepath) == []


@needs_root
@pytest.mark.parametrize("mode", [0o777, 0o775, 0o1777])
def test_a_cache_directory_others_may_write_to_is_refused(world, mode):
    tree = site(world)
    tree.cachepath.chmod(mode)
    result = run_as("root", world, tree, "preview")
    assert_clean_error(result, ExitStatus.USAGE, str(tree.cachepath), "group or others may write")
    assert listing(tree.cachepath) == []


@needs_root
def test_a_missing_cache_directory_is_created_private(world):
    tree = site(world)
    tree.cachepath.rmdir()
    result = run_as("root", world, tree, "update", "--from-file", str(forge_file(world)))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(tree.cachepath.stat().st_mode) == 0o700


# ---- as the unprivileged user that owns the cache (how the packages run it) ----


@needs_root
def test_an_unprivileged_owner_runs_everything(world, user):
    tree = site(world)
    tree.cachepath.rmdir()
    var = world / "var"
    var.mkdir()
    os.chown(var, user.pw_uid, user.pw_gid)
    tree.cachepath = var / "dropsonde"  # created by the user, on first write
    assert run_as(USER, world, tree, "update", "--from-file", str(forge_file(world))).returncode == 0
    preview = run_as(USER, world, tree, "preview", "--format", "json")
    assert preview.returncode == 0, preview.stderr
    modules = preview.json()["self-service-analytics"]["snapshots"]["modules"]["value"]
    # no release evidence was carried in: the version is not proven published, so it is private
    assert modules == [{"name": "ntp", "slug": "puppetlabs-ntp", "version": "(private)"}]
    with Receiver() as receiver:
        sent = run_as(USER, world, tree, "submit", "--scheduled", "--endpoint", receiver.endpoint, "--port", str(receiver.port))
    assert sent.returncode == 0, sent.stderr
    assert len(receiver.state.received) == 1
    assert stat.S_IMODE(tree.cachepath.stat().st_mode) == 0o700
    for path in [tree.cachepath, *tree.cachepath.iterdir()]:
        assert path.stat().st_uid == user.pw_uid, path
    assert stat.S_IMODE((tree.cachepath / "last-submission.json").stat().st_mode) == 0o600


@needs_root
def test_an_unprivileged_user_refuses_a_cache_directory_root_owns(world, user):
    tree = site(world)
    tree.cachepath.chmod(0o755)
    result = run_as(USER, world, tree, "preview")
    assert_clean_error(result, ExitStatus.USAGE, str(tree.cachepath), "belongs to root", f"runs as {USER}")


# ---- atomic_file itself ----


def test_write_atomic_never_writes_through_a_linked_directory(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "cache").symlink_to(target)
    with pytest.raises(OSError) as refused:
        write_atomic(tmp_path / "cache" / "forge.json", b"{}")
    assert refused.value.errno == errno.ELOOP and "symbolic link" in str(refused.value)
    assert listing(target) == []


def test_write_atomic_replaces_a_planted_link_and_leaves_no_temporary_file(tmp_path):
    victim = write(tmp_path / "victim", "untouched\n")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "forge.json").symlink_to(victim)
    write_atomic(tmp_path / "cache" / "forge.json", b"{}", mode=0o600)
    assert victim.read_text() == "untouched\n"
    assert (tmp_path / "cache" / "forge.json").read_bytes() == b"{}"
    assert stat.S_IMODE((tmp_path / "cache" / "forge.json").lstat().st_mode) == 0o600
    assert listing(tmp_path / "cache") == ["forge.json"]


def test_a_cache_directory_swapped_during_a_run_is_neither_read_nor_written(tree):
    """Review M4: the owner of the cache directory's parent (Puppet's vardir belongs
    to ``puppet``) renames the checked directory away while the Forge list is
    refreshed and puts its own there, holding a forged list that names a private
    module. The run keeps using the directory it opened and checked: the list read
    back is the one it wrote, and the files written later land there too."""
    from datetime import datetime, timezone

    from dropsonde.session import Session
    from tests.support.forge_server import ForgeServer, generate_modules

    now = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
    modules = tree.environment("production") / "modules"
    make_module(modules, "module7", "author7-module7", manifests={"init.pp": "class module7 { }\n"})
    make_module(modules, "canaryprivmod", "acme-canaryprivmod", "3.1.4", manifests={"init.pp": "class canaryprivmod {}\n"})
    tree.forge([])  # unusable, so the report refreshes it first
    checked_inode = tree.cachepath.stat().st_ino
    moved = tree.root / "moved-away"
    forged = json.dumps({"timestamp": now.isoformat(), "modules": ["author7-module7", "acme-canaryprivmod"]})

    def swap(_summary: str) -> None:
        """Between writing the refreshed list and reading it back (the notice comes then)."""
        os.rename(tree.cachepath, moved)
        tree.cachepath.mkdir(mode=0o700)
        (tree.cachepath / "forge.json").write_text(forged)

    given = {"confdir": str(tree.confdir), "codedir": str(tree.codedir), "cachepath": str(tree.cachepath),
             "puppetserver": False, "update": True, "ttl": 7}
    with ForgeServer(generate_modules(20)) as server:
        with Session({**given, "forge_api": server.url}, clock=lambda: now, notify=swap) as session:
            report = session.report()
            session.agree(["modules"])
    assert moved.stat().st_ino == checked_inode  # the swap happened
    # the loopback Forge publishes no release of it: the version is private
    assert report.values()["modules"] == [{"name": "module7", "slug": "author7-module7", "version": "(private)"}]
    assert "canaryprivmod" not in json.dumps(report.values())
    written = json.loads((moved / "forge.json").read_text())
    assert "acme-canaryprivmod" not in written["modules"] and len(written["modules"]) == 20
    assert {"manifests.json", "consent.json"} <= {p.name for p in moved.iterdir()}
    assert [p.name for p in tree.cachepath.iterdir()] == ["forge.json"]  # nothing written in the attacker's
    assert (tree.cachepath / "forge.json").read_text() == forged


def test_the_cache_directory_object_reads_and_writes_only_through_its_descriptor(tmp_path):
    from dropsonde.cache_dir import CacheDir

    with CacheDir.open(tmp_path / "cache") as cache:
        os.rename(tmp_path / "cache", tmp_path / "moved")
        (tmp_path / "cache").mkdir(mode=0o700)
        (tmp_path / "cache" / "state.json").write_text("attacker's")
        cache.write("state.json", b"ours")
        assert cache.read_bytes("state.json", 100) == b"ours"
        os.mkfifo(tmp_path / "moved" / "fifo")
        with pytest.raises(OSError, match="not a regular file"):
            cache.read_bytes("fifo", 100)
        (tmp_path / "moved" / "link").symlink_to(tmp_path / "moved" / "state.json")
        with pytest.raises(OSError) as refused:
            cache.read_bytes("link", 100)
        assert refused.value.errno == errno.ELOOP
        with pytest.raises(OSError, match="larger than 3 bytes"):
            cache.read_bytes("state.json", 3)
    assert (tmp_path / "moved" / "state.json").read_text() == "ours"
    assert (tmp_path / "cache" / "state.json").read_text() == "attacker's"


def test_the_lock_the_site_id_secret_and_the_submission_record_stay_in_the_checked_directory(tmp_path):
    """The other files of the cache directory, after the same swap: created, read
    and locked in the directory that was opened, never in the one now at its path."""
    from datetime import datetime, timezone

    from dropsonde.cache_dir import CacheDir
    from dropsonde.schedule import submission_lock
    from dropsonde.siteid import local_secret
    from dropsonde.submit import last_submission, record_submission

    path, moved = tmp_path / "dropsonde", tmp_path / "moved-away"
    with CacheDir.open(path) as cache:
        os.rename(path, moved)
        path.mkdir(mode=0o700)
        planted = {"siteid.secret": "f" * 64 + "\n",
                   "last-submission.json": json.dumps({"submitted_at": "2026-11-27T00:00:00+00:00"})}
        for name, text in planted.items():
            (path / name).write_text(text)
        with submission_lock(cache) as acquired:
            assert acquired
        secret = local_secret(cache)
        assert last_submission(cache) is None  # none was recorded in the checked directory
        record_submission(cache, "https://example.test", b"{}", datetime(2026, 11, 28, tzinfo=timezone.utc))
        assert last_submission(cache)["submitted_at"] == "2026-11-28T00:00:00+00:00"
    assert secret != bytes.fromhex("f" * 64)
    assert {"submit.lock", "siteid.secret", "last-submission.json"} <= {p.name for p in moved.iterdir()}
    assert sorted(p.name for p in path.iterdir()) == sorted(planted)
    assert all((path / name).read_text() == text for name, text in planted.items())


def test_a_cache_directory_that_cannot_be_created_names_the_remedy(tmp_path):
    """Under the systemd sandbox everything but the unit's directories is read-only: a
    missing cache there cannot be made by any run, and the error says who can make it.
    Reproduced with a read-only bind mount in a private mount namespace (as root, like CI)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("needs root and unshare: run tests/run as root")
    vardir = tmp_path / "vardir"
    vardir.mkdir()
    script = (f"mount --bind {vardir} {vardir} && mount -o remount,bind,ro {vardir} && exec {sys.executable} -c "
              f"'from pathlib import Path; from dropsonde.cache_dir import open_cache_dir; "
              f"open_cache_dir(Path(\"{vardir}/dropsonde\"))'")
    ran = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], capture_output=True,
                         text=True, timeout=60, cwd=REPO)
    assert ran.returncode == 1
    last = ran.stderr.strip().splitlines()[-1]
    assert f"{vardir}/dropsonde: refusing to use this cache directory: cannot create it: Read-only file system" in last
    assert "create it owned by root (uid 0), mode 0700" in last and f"ReadWritePaths={vardir}/dropsonde" in last
