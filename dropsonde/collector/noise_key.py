"""The collector's private noise key: the identity of its releases.

OpenDP's noise cannot be seeded, so the key no longer seeds noise: it keys
the release context (HMAC-SHA256 of every parameter of a week's release,
``aggregate.release_context``) and its fingerprint is recorded in
``summary.json``. A deleted or replaced key therefore shows: a week
released under another key is refused unless forced, instead of being
silently released again with fresh noise, and no key is ever created for a
store whose release ledger (``release_ledger.py``, in the store) shows
released weeks, forced or not: a missing key is then a wrong path or a lost
key, never a reason to start again. The key is 32 random bytes, created once
(0600, never replaced) and kept beside the store.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Optional, Sequence

from dropsonde.atomic_file import create_once
from dropsonde.errors import DropsondeError, ExitStatus

KEY_BYTES = 32


class NoiseKeyError(DropsondeError):
    """The noise key at ``path`` (None: no path could be chosen) cannot be used;
    the caller names the option that gave it. ``status``: USAGE when the path
    given is not a key, FAILURE when it could not be created or read."""

    def __init__(self, path: Optional[Path], problem: str, status: ExitStatus = ExitStatus.USAGE) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem
        self.status = status


def default_key_path(db: str) -> Path:
    """Beside a SQLite store (``reports.db.noise-key``); a PostgreSQL store has
    no file beside it, so its key path must be given."""
    if "://" in db:
        raise NoiseKeyError(None, "required with a PostgreSQL store (a private file for the noise key)")
    return Path(db + ".noise-key")


def load_or_create_key(path: Path, released: Sequence[str] = ()) -> bytes:
    """The key at ``path``, created 0600 if there is none and the store has no
    ``released`` weeks (once it has, a missing key means a wrong path or a
    lost key, and a new one would release those weeks again). Created as a
    temporary file linked into place, so two runs at once end with one key,
    never a partial one. A key readable by others is tightened, as the store is."""
    path = Path(path)
    try:
        return _read(path)
    except FileNotFoundError:
        if released:
            shown = ", ".join(released[-3:]) + (" ..." if len(released) > 3 else "")
            raise NoiseKeyError(path, f"no such key, and the store has released weeks ({shown}) under one: give "
                                      "the key they were released with. None is created for such a store; if the "
                                      "key is lost, write 32 random bytes there yourself (0600) and re-release a "
                                      "week only with --force, which spends its budget again") from None
    try:
        create_once(path, secrets.token_bytes(KEY_BYTES))
        return _read(path)
    except OSError as exc:
        raise NoiseKeyError(path, f"cannot create it: {exc.strerror or exc}", ExitStatus.FAILURE) from None


def _read(path: Path) -> bytes:
    """The key's bytes. Opened without blocking and refused unless a regular file:
    a FIFO planted at the path would otherwise hang the weekly job."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise NoiseKeyError(path, f"cannot read it: {exc.strerror or exc}", ExitStatus.FAILURE) from None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise NoiseKeyError(path, "not a regular file")
        if os.fstat(handle.fileno()).st_mode & 0o077:
            os.fchmod(handle.fileno(), 0o600)
        key = handle.read(KEY_BYTES + 1)
    if len(key) != KEY_BYTES:
        raise NoiseKeyError(path, f"not a noise key ({KEY_BYTES} bytes expected, got {len(key)})")
    return key
