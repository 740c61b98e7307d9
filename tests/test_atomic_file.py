"""write_atomic: a failed write leaves the old file, a successful one a new file.

Deterministic: they replace a kill -9 test that caught a write straight to the
target only when the kill landed mid-write. That the Forge cache is written
this way is tested in test_forge_cache.py; the symbolic-link rules in test_cache_dir.py.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import pytest

from dropsonde.atomic_file import create_once, write_atomic

OLD = b'{"modules": ["old-module"]}\n'


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "cache" / "forge.json"
    path.parent.mkdir()
    path.write_bytes(OLD)
    return path


def test_data_that_cannot_be_written_leaves_the_old_bytes_and_no_temporary_file(target):
    with pytest.raises(TypeError):
        write_atomic(target, "text, not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == OLD
    assert sorted(os.listdir(target.parent)) == ["forge.json"]


def test_a_file_system_refusing_the_write_midway_leaves_the_old_bytes(target):
    """The file size limit stands for a full disk: the first 4 KiB are written, then
    EFBIG. A subprocess, so the limit cannot touch the test run's own files."""
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from dropsonde.atomic_file import write_atomic
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
        try:
            write_atomic({str(target)!r}, b"x" * 100_000)
        except OSError as exc:
            sys.exit(f"refused: {{exc.strerror}}")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "refused: File too large" in result.stderr, result.stderr
    assert target.read_bytes() == OLD
    assert sorted(os.listdir(target.parent)) == ["forge.json"]


def test_a_successful_write_puts_a_new_file_in_place(target):
    """A new inode, not the old one rewritten: a reader holding the old file open
    (or a crash mid-write) never sees a mix of old and new bytes."""
    old_inode = target.stat().st_ino
    with open(target, "rb") as reader:
        write_atomic(target, b'{"modules": []}\n', mode=0o600)
        assert reader.read() == OLD
    assert target.read_bytes() == b'{"modules": []}\n'
    assert target.stat().st_ino != old_inode
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(os.listdir(target.parent)) == ["forge.json"]


def test_chunks_are_written_in_order_and_a_failing_producer_leaves_the_old_bytes(target):
    """The manifest cache is written a module at a time, never held whole in memory."""
    write_atomic(target, (part for part in (b'{"modules": ', b'["a", ', b'"b"]}\n')))
    assert target.read_bytes() == b'{"modules": ["a", "b"]}\n'

    def failing():
        yield b'{"modules": '
        raise RuntimeError("the producer failed midway")

    with pytest.raises(RuntimeError):
        write_atomic(target, failing())
    assert target.read_bytes() == b'{"modules": ["a", "b"]}\n'
    assert sorted(os.listdir(target.parent)) == ["forge.json"]


def test_create_once_makes_a_private_file_and_never_replaces_one(tmp_path):
    """The site id secret and the noise key: the second of two first runs keeps the first's bytes."""
    key = tmp_path / "reports.db.noise-key"
    create_once(key, b"first")
    create_once(key, b"second")
    assert key.read_bytes() == b"first"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["reports.db.noise-key"]


def test_create_once_never_writes_through_a_planted_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(OLD)
    (tmp_path / "siteid.secret").symlink_to(victim)
    create_once(tmp_path / "siteid.secret", b"secret")
    assert victim.read_bytes() == OLD
    assert (tmp_path / "siteid.secret").is_symlink()
    assert sorted(os.listdir(tmp_path)) == ["siteid.secret", "victim"]


def test_the_temporary_file_is_fsynced_before_the_rename(target):
    """The mutation run: without the fsync a crash after the rename could leave an empty
    file in place. Traced on the real system calls (strace), in order."""
    script = f"from dropsonde.atomic_file import write_atomic; write_atomic({str(target)!r}, b'new bytes')"
    traced = subprocess.run(["strace", "-f", "-e", "trace=openat,fsync,rename,renameat,renameat2", sys.executable,
                             "-c", script], capture_output=True, text=True, timeout=60)
    assert traced.returncode == 0, traced.stderr
    calls = [line for line in traced.stderr.splitlines() if ".forge.json." in line or line.startswith(("fsync", "["))]
    opened = next(i for i, line in enumerate(calls) if "openat" in line and ".tmp" in line and "O_CREAT" in line)
    descriptor = calls[opened].rsplit("=", 1)[1].strip()
    renamed = next(i for i, line in enumerate(calls) if "rename" in line and ".tmp" in line)
    assert any(f"fsync({descriptor})" in line for line in calls[opened:renamed]), "\n".join(calls)
    assert target.read_bytes() == b"new bytes"
