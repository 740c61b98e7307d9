"""Writing the files we own (Forge cache, parse cache, state) so that a crash
or kill -9 leaves either the old file or the new one, never a partial one,
and so that nothing is ever written through a symbolic link.

The cache directory may sit in a directory another user controls (Puppet's
vardir belongs to ``puppet``): a planted ``forge.json -> /etc/...`` or a
cache directory swapped for a link must not make us write elsewhere. So the
directory is opened without following a link, the temporary file is created
beside the target with ``O_EXCL | O_NOFOLLOW`` (a planted name fails instead
of being followed), and the rename replaces a link rather than writing
through it.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path
from typing import Iterable, Union

DIRECTORY_MODE = 0o700


def open_directory(path: Path) -> int:
    """A descriptor on ``path``, which must be a directory and not a symbolic link
    (OSError otherwise, ELOOP for a link)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            raise OSError(errno.ELOOP, "is a symbolic link: dropsonde never writes through one", str(path)) from None
        raise


def write_atomic(path: Path, data: Union[bytes, Iterable[bytes]], mode: int = 0o644) -> None:
    """Write ``data`` to a new temporary file beside ``path``, fsync it, then rename it
    over ``path``. A missing directory is created private (0700). ``data`` may be
    chunks, written in order, so that a large file is never held whole in memory."""
    path = Path(path)
    path.parent.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    dir_fd = open_directory(path.parent)
    try:
        write_atomic_at(dir_fd, path.name, data, mode)
    finally:
        os.close(dir_fd)


def write_atomic_at(dir_fd: int, name: str, data: Union[bytes, Iterable[bytes]], mode: int = 0o644) -> None:
    """``write_atomic`` relative to an open directory, so that the directory
    cannot be swapped for another between the checks and the write."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(10):  # a random name taken already is a freak; ten in a row is an attack
        temporary = f".{name}.{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(temporary, flags, 0o600, dir_fd=dir_fd)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(errno.EEXIST, "cannot create a temporary file beside it", name)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in (data,) if isinstance(data, bytes) else data:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        raise


def create_once_at(dir_fd: int, name: str, data: bytes) -> None:
    """Create ``name`` in ``dir_fd`` holding ``data`` (mode 0600) unless an entry of
    that name exists already; the caller reads whichever is there afterwards.

    For a secret made on first use (the site id secret, the noise key): it is
    written whole under a temporary name opened O_CREAT|O_EXCL|O_NOFOLLOW and
    hard-linked into place, and a link never replaces or follows an existing
    entry. So two first runs racing agree on one secret, nobody ever reads a
    partial one, and a planted symlink is left for the reader to refuse."""
    temporary = f".{name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temporary, flags, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            os.fsync(dir_fd)
        except FileExistsError:
            pass  # another run, or a planted entry: reading it decides
    finally:
        os.unlink(temporary, dir_fd=dir_fd)


def create_once(path: Path, data: bytes) -> None:
    """``create_once_at`` for a path: in the directory holding ``path``, which is
    opened as it is named (the caller chose it, so a link to it is followed)."""
    path = Path(path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        create_once_at(dir_fd, path.name, data)
    finally:
        os.close(dir_fd)
