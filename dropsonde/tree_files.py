"""Reading one file that someone else wrote: the Puppet code tree (metadata.json,
environment.conf, Puppetfiles, manifests) and the configuration
files (puppet.conf, puppetdb.conf, telemetry.yaml, Puppet Server's conf.d, the
CA certificate).

Whoever commits to the control repository decides what sits in the tree, so
every such read goes through :func:`read_tree_file`, which guarantees three
things an ordinary ``open().read()`` does not:

- it never blocks: the file is opened ``O_NONBLOCK`` and must be a regular file
  (``fstat`` on what was opened): a FIFO would wait for a writer forever, and
  ``/dev/zero`` never ends;
- it is bounded: at most the limit of its kind (:data:`LIMITS`) is read, so a
  3 GB sparse file costs nothing but a refusal;
- with ``within``, it stays inside that directory: a symbolic link is followed
  only when its real path is inside ``within`` (checked on the descriptor
  actually opened, so a link swapped between the check and the open is caught
  too), and only to a regular file.

A refusal is a :class:`RefusedFile`, an ``OSError`` whose ``strerror`` says why,
so each reader keeps its own convention for an unreadable file (skip with a
warning, treat the module as private, or stop with an error naming the file).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Dict, Optional, Union

MiB = 1024 * 1024

#: The most read of each kind of file. Generous for real files (the largest real
#: manifests and Puppetfiles are about 100 KB, metadata.json a few KB, release
#: evidence a few KB per release), small enough that a hostile one costs
#: little memory and time.
LIMITS: Dict[str, int] = {
    "manifest": 4 * MiB,
    "Puppetfile": 256 * 1024,  # tree-sitter takes up to 300 bytes of memory per byte of nested input
    "metadata.json": 1 * MiB,
    "environment.conf": 1 * MiB,
    "puppet.conf": 1 * MiB,
    "puppetdb.conf": 1 * MiB,
    "telemetry.yaml": 1 * MiB,
    "conf.d file": 1 * MiB,
    "certificate": 1 * MiB,
    "forge.json": 64 * MiB,
    "forge-releases.json": 256 * MiB,
    "release list": 16 * MiB,
}

_TYPES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class RefusedFile(OSError):
    """A file that is not read: not a regular file, too large, or outside ``within``."""

    def __init__(self, reason: str, path: str) -> None:
        super().__init__(errno.EPERM, reason, path)


def is_inside(real_path: str, real_root: str) -> bool:
    """Whether ``real_path`` is ``real_root`` or below it (both already real paths)."""
    root = real_root.rstrip(os.sep) or os.sep
    return real_path == root or real_path.startswith(root if root == os.sep else root + os.sep)


def describe_limit(kind: str) -> str:
    """``4 MiB`` for a manifest: what a warning about an oversized file says."""
    limit = LIMITS[kind]
    if limit % MiB == 0:
        return f"{limit // MiB} MiB"
    return f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"


def read_tree_file(path: Union[str, "os.PathLike[str]"], kind: str, within: Optional[str] = None) -> bytes:
    """The bytes of the regular file at ``path``, at most ``LIMITS[kind]`` of them.

    ``within`` (a real path): the file's real path must be inside it. Raises
    FileNotFoundError when there is no file, :class:`RefusedFile` when it must
    not be read, another OSError when it cannot be.
    """
    name = os.fspath(path)
    limit = LIMITS[kind]
    fd = _open(name, within)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise RefusedFile(f"not a regular file ({_file_type(status.st_mode)})", name)
        if within is not None and not is_inside(_opened_path(fd, name), within):
            raise RefusedFile(f"its real path is outside {within}", name)
        if status.st_size > limit:
            raise RefusedFile(f"larger than {describe_limit(kind)}, the limit for a {kind}", name)
        data = read_at_most(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew after the fstat
        raise RefusedFile(f"larger than {describe_limit(kind)}, the limit for a {kind}", name)
    return data


def _open(name: str, within: Optional[str]) -> int:
    """A descriptor on ``name``. A symbolic link is resolved first and followed only
    to a regular file (inside ``within``): opening a device can have effects, and
    one outside the tree is not ours to open at all."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        return os.open(name, flags | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
    real = os.path.realpath(name)
    if within is not None and not is_inside(real, within):
        raise RefusedFile(f"a symbolic link leading outside {within}", name)
    status = os.lstat(real)
    if not stat.S_ISREG(status.st_mode):
        raise RefusedFile(f"a symbolic link to {_file_type(status.st_mode)}, not to a regular file", name)
    return os.open(real, flags | os.O_NOFOLLOW)


def _opened_path(fd: int, name: str) -> str:
    """The real path of what ``fd`` is open on (Linux's /proc), so that the check
    is of the file read, not of a path that may have changed since."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(name)


def _file_type(mode: int) -> str:
    for test, description in _TYPES:
        if test(mode):
            return description
    return "neither file nor directory"


def read_at_most(fd: int, count: int) -> bytes:
    """Up to ``count`` bytes from ``fd``, read a MiB at a time: a file that grows
    while it is read costs no more than ``count``."""
    chunks = []
    while count > 0:
        chunk = os.read(fd, min(count, MiB))
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)
