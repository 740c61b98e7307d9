"""The collector's private noise key: what makes the published noise a
fixed function of (week, table, row, column) instead of a fresh draw.

Fresh noise on every run let anyone who mirrors the files average the noise
away: ``aggregate`` is rerun for the same week by a daily cron job or a retry.
With the noise derived from a secret key (HMAC-SHA256), a rerun publishes the
same numbers, so a week's numbers cost epsilon once however often they are
published. The key is 32 random bytes, created once (0600, never replaced:
a new key would draw new noise for weeks already published) and kept beside
the store: whoever reads it can subtract the noise, like whoever reads the
store can read the reports.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from dropsonde.atomic_file import create_once
from dropsonde.errors import DropsondeError

KEY_BYTES = 32


def default_key_path(db: str) -> Path:
    """Beside a SQLite store (``reports.db.noise-key``); a PostgreSQL store has
    no file beside it, so its key path must be given."""
    if "://" in db:
        raise DropsondeError("--noise-key: required with a PostgreSQL --db (a private file for the noise key)")
    return Path(db + ".noise-key")


def load_or_create_key(path: Path) -> bytes:
    """The key at ``path``, created 0600 if there is none. Created as a
    temporary file linked into place, so two runs at once end with one key,
    never a partial one. A key readable by others is tightened, as the store is."""
    path = Path(path)
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    try:
        create_once(path, secrets.token_bytes(KEY_BYTES))
        return _read(path)
    except OSError as exc:
        raise DropsondeError(f"--noise-key {path}: cannot create it: {exc.strerror or exc}") from None


def _read(path: Path) -> bytes:
    """The key's bytes. Opened without blocking and refused unless a regular file:
    a FIFO planted at the path would otherwise hang the weekly job."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise DropsondeError(f"--noise-key {path}: cannot read it: {exc.strerror or exc}") from None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise DropsondeError(f"--noise-key {path}: not a regular file")
        if os.fstat(handle.fileno()).st_mode & 0o077:
            os.fchmod(handle.fileno(), 0o600)
        key = handle.read(KEY_BYTES + 1)
    if len(key) != KEY_BYTES:
        raise DropsondeError(f"--noise-key {path}: not a noise key ({KEY_BYTES} bytes expected, got {len(key)})")
    return key
