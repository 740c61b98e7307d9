"""The cache directory (``--cachepath``, default ``$vardir/dropsonde``): the
one place dropsonde writes, and a place it must be able to trust.

What is in it decides what leaves the site (``forge.json`` lists the public
modules) and what the admin is shown (``last-submission.json``), and a
scheduled run writes there. Puppet's vardir belongs to the ``puppet`` user,
so whoever else can write in the cache directory could plant a Forge list
naming private modules, or links that make a run write elsewhere (a
``submit.lock -> /etc/nologin`` made root create that file). Hence the rule,
checked before any command uses the directory:

- it is a real directory, not a symbolic link (give ``--cachepath`` the real path);
- it belongs to the user running dropsonde — for root, to root: root does not
  use a directory the ``puppet`` user owns; ``puppetserver dropsonde`` and the
  timer run as ``puppet`` instead;
- neither its group nor others may write to it;
- when missing, it is created with mode 0700.

The directory is opened once (:class:`CacheDir`) and every file in it is
then reached through that descriptor, so a directory swapped in at the same
path during the run is never read or written. Files in it are written with
``atomic_file`` (never through a link) and opened with ``O_NOFOLLOW``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import pwd
import stat
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Union

from dropsonde.atomic_file import DIRECTORY_MODE, open_directory, write_atomic_at
from dropsonde.errors import BadInput
from dropsonde.json_input import load_json
from dropsonde.tree_files import read_at_most

log = logging.getLogger(__name__)


def _user(uid: int) -> str:
    """``name (uid N)``, or just the uid for an account that no longer exists."""
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _refuse(path: Path, reason: str) -> BadInput:
    return BadInput(f"{path}: refusing to use this cache directory: {reason}")


def check_ownership(path: Path, status: os.stat_result) -> None:
    """BadInput unless ``status`` (of ``path``, not followed) is a directory of
    ours that nobody else may write to."""
    if stat.S_ISLNK(status.st_mode):
        raise _refuse(path, "it is a symbolic link (give --cachepath the real directory)")
    if not stat.S_ISDIR(status.st_mode):
        raise _refuse(path, "it is not a directory")
    me = os.geteuid()
    if status.st_uid != me:
        raise _refuse(path, f"it belongs to {_user(status.st_uid)}, but dropsonde runs as {_user(me)} "
                            "(run it as that user, e.g. `puppetserver dropsonde`, or choose another --cachepath)")
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise _refuse(path, f"its group or others may write to it (mode {stat.S_IMODE(status.st_mode):04o}; "
                            "chmod go-w it)")


def check_cache_dir(path: Path) -> None:
    """Refuse an existing cache directory that is not ours alone; a missing one is
    fine (it is created 0700 when first written)."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _refuse(Path(path), exc.strerror or str(exc)) from None
    check_ownership(Path(path), status)


def _remedy(path: Path, exc: OSError) -> str:
    """What to do when the directory cannot be made: on a read-only file system
    (the systemd sandbox makes all but the unit's directories so) it must be
    created by root or named in the unit; no run of dropsonde can fix it."""
    if exc.errno != errno.EROFS:
        return ""
    return (f" (create it owned by {_user(os.geteuid())}, mode 0700, as installing the package does; "
            f"for the systemd service, a directory outside /var/lib needs a drop-in with ReadWritePaths={path})")


def open_cache_dir(path: Path) -> int:
    """A descriptor on the cache directory, created 0700 if missing, checked as
    ``check_cache_dir`` does on what was actually opened (no check-then-use race)."""
    path = Path(path)
    try:
        path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    except FileExistsError:
        pass  # a link or a file: the checks below say which
    except OSError as exc:
        raise _refuse(path, f"cannot create it: {exc.strerror or exc}{_remedy(path, exc)}") from None
    try:
        fd = open_directory(path)
    except OSError as exc:
        check_cache_dir(path)  # names the problem when it is a link or not a directory
        raise _refuse(path, exc.strerror or str(exc)) from None
    try:
        check_ownership(path, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


class CacheDir:
    """The cache directory, opened once per run and used only through that
    descriptor: every file in it is opened, written, renamed, linked and locked
    relative to ``fd`` (``openat`` and friends), never again by path.

    The owner of the parent directory (the ``puppet`` user owns Puppet's vardir)
    could otherwise rename the checked directory away during a run and put its
    own in its place: root would then read a forged Forge list from it, or write
    the report there. With the descriptor, whatever happens to the path, the run
    keeps using the directory it checked.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = Path(path)
        self.fd = fd

    @classmethod
    def open(cls, path: Path) -> "CacheDir":
        """Open (creating it 0700 if missing) and check the directory; BadInput when it is not ours alone."""
        return cls(Path(path), open_cache_dir(Path(path)))

    def __enter__(self) -> "CacheDir":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __truediv__(self, name: str) -> Path:
        """The path of a file in it, for messages only (nothing is opened by it)."""
        return self.path / name

    def open_file(self, name: str, flags: int, mode: int = 0o600) -> int:
        """``openat`` in the directory, never following a link (ELOOP for one)."""
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.fd)

    def read_bytes(self, name: str, limit: int) -> bytes:
        """The regular file ``name`` in the directory, at most ``limit`` bytes.
        FileNotFoundError when absent; another OSError when it is a link, not a
        regular file, or larger than ``limit``."""
        fd = self.open_file(name, os.O_RDONLY | os.O_NONBLOCK)
        try:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode):
                raise OSError(errno.EINVAL, "not a regular file", str(self / name))
            if status.st_size > limit:
                raise OSError(errno.EFBIG, f"larger than {limit} bytes", str(self / name))
            data = read_at_most(fd, limit + 1)
        finally:
            os.close(fd)
        if len(data) > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes", str(self / name))
        return data

    def write(self, name: str, data: Union[bytes, Iterable[bytes]], mode: int = 0o644) -> Path:
        """Replace ``name`` atomically (see atomic_file), in this directory whatever its path now names."""
        write_atomic_at(self.fd, name, data, mode)
        return self / name

    def read_stamped(self, name: str, limit: int, stamp: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The JSON object a cache file ``name`` holds, when it carries every key and
        value of ``stamp`` (its format and the code that wrote it); None when it is
        absent, damaged, over ``limit`` or stamped otherwise: the cache is then
        rebuilt, never an error."""
        try:
            data = load_json(self.read_bytes(name, limit), limit)
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or any(data.get(key) != value for key, value in stamp.items()):
            return None
        return data

    def write_stamped(self, name: str, stamp: Dict[str, Any], body: Dict[str, Any]) -> None:
        """Write the cache file ``name`` (0600): ``stamp`` and ``body`` as one JSON
        object. A read-only cache directory is not an error: the next run rebuilds."""
        data = json.dumps({**stamp, **body}, separators=(",", ":")).encode("utf-8")
        try:
            self.write(name, data, mode=0o600)
        except OSError as exc:
            log.debug("not saving %s: %s", self / name, exc)
