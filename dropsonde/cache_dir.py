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

Files in it are written with ``atomic_file`` (never through a link) and the
lock is opened with ``O_NOFOLLOW``.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from dropsonde.atomic_file import DIRECTORY_MODE, open_directory
from dropsonde.errors import DropsondeError


def _user(uid: int) -> str:
    """``name (uid N)``, or just the uid for an account that no longer exists."""
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _refuse(path: Path, reason: str) -> DropsondeError:
    return DropsondeError(f"{path}: refusing to use this cache directory: {reason}")


def check_ownership(path: Path, status: os.stat_result) -> None:
    """DropsondeError unless ``status`` (of ``path``, not followed) is a directory of
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


def open_cache_dir(path: Path) -> int:
    """A descriptor on the cache directory, created 0700 if missing, checked as
    ``check_cache_dir`` does on what was actually opened (no check-then-use race)."""
    path = Path(path)
    try:
        path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    except FileExistsError:
        pass  # a link or a file: the checks below say which
    except OSError as exc:
        raise _refuse(path, f"cannot create it: {exc.strerror or exc}") from None
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
