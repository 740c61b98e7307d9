"""The anonymous site id: one per Puppet site, never reversible to the site.

We hash the DER bytes of the site's CA certificate (the first certificate in
Puppet's ``localcacert``), which every server of a site shares and no two
sites share. The Ruby client hashed certname + the ``cacert`` setting's value
(a path): anyone who guesses the host name can recompute that. So when no CA
certificate can be read we hash instead a random 256-bit secret created once
in the state directory, and the human preview says which source was used.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from dropsonde.atomic_file import create_once_at
from dropsonde.cache_dir import CacheDir
from dropsonde.errors import Failure
from dropsonde.tree_files import read_tree_file

SECRET_FILENAME = "siteid.secret"

_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"
_SECRET_RE = re.compile(rb"[0-9a-f]{64}\n?", re.ASCII)

#: what the human preview says about each source
SOURCES = {
    "ca-certificate": "the site's CA certificate (Puppet's localcacert)",
    "local-secret": "a random secret kept on this server (no CA certificate could be read)",
    "override": "the --siteid option",
}


@dataclass(frozen=True)
class SiteId:
    """The id and how it was derived (shown in the human preview)."""

    value: str
    source: str  # a key of SOURCES
    note: Optional[str] = None

    @property
    def described_source(self) -> str:
        return SOURCES[self.source]


def first_certificate_der(path: Path) -> bytes:
    """DER bytes of the first PEM certificate in ``path``; ValueError when there is none.
    Found with two searches, never a pattern that can rescan: a file of BEGIN lines
    made a lazy regex quadratic (1 MiB: ~500 s)."""
    data = read_tree_file(path, "certificate")
    begin = data.find(_PEM_BEGIN)
    end = data.find(_PEM_END, begin + len(_PEM_BEGIN)) if begin >= 0 else -1
    if end < 0:
        raise ValueError("no PEM certificate in file")
    try:
        return base64.b64decode(b"".join(data[begin + len(_PEM_BEGIN):end].split()), validate=True)
    except binascii.Error:
        raise ValueError("malformed PEM certificate") from None


def site_id_from(material: bytes, seed: str = "") -> str:
    """SHA-512 hex of the material (CA certificate DER bytes, or the local secret) followed by the seed."""
    return hashlib.sha512(material + seed.encode("utf-8")).hexdigest()


def local_secret(cache: CacheDir) -> bytes:
    """The 32 random bytes kept in the cache directory's ``siteid.secret``, created on first use.

    Everything happens relative to the checked cache directory (opened without
    following a link, ours alone). The secret is written under a temporary name
    opened O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, and hard-linked into place,
    which never replaces or follows an existing entry: two runs racing agree on
    one secret, and a planted symlink is refused, never written through.
    Failure names the file when it is unusable.
    """
    path, dir_fd = cache / SECRET_FILENAME, cache.fd
    try:
        return _read_secret(dir_fd, path)
    except FileNotFoundError:
        pass
    try:
        create_once_at(dir_fd, SECRET_FILENAME, (secrets.token_hex(32) + "\n").encode("ascii"))
    except OSError as exc:
        raise Failure(
            f"{path}: cannot create the site id secret ({exc.strerror or exc}); "
            "make the cache directory writable, or pass --siteid"
        ) from None
    return _read_secret(dir_fd, path)


def _read_secret(dir_fd: int, path: Path) -> bytes:
    """The secret in ``path`` (opened in ``dir_fd``); FileNotFoundError when absent,
    Failure when it is not one."""
    try:
        fd = os.open(SECRET_FILENAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        why = "a symbolic link, not followed" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
        raise Failure(f"{path}: cannot read the site id secret: {why}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Failure(f"{path}: the site id secret is not a regular file")
        data = os.read(fd, 128)
    finally:
        os.close(fd)
    if not _SECRET_RE.fullmatch(data):
        raise Failure(
            f"{path}: not a site id secret (expected 64 hex digits); remove it to make a new one "
            "(the site id will change)"
        )
    return bytes.fromhex(data.decode("ascii").strip())


def compute_site_id(localcacert: Optional[Path], seed: Optional[str], override: Optional[str],
                    state_dir: CacheDir) -> SiteId:
    """The site id for this run: ``--siteid`` if given, else from the CA certificate
    (``localcacert``, None when Puppet has no such setting), else from the local
    secret (created on first use) with a note saying why."""
    if override:
        return SiteId(override, "override")
    seed = seed or ""
    try:
        if localcacert is None:
            raise ValueError("the setting is empty")
        der = first_certificate_der(localcacert)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        note = (
            f"no CA certificate readable at the localcacert setting ({reason}); the site id is derived "
            "from a random secret kept in the cache directory, so other servers of this site get "
            "other ids (give them all the same --siteid, or the CA certificate, to share one)"
        )
        return SiteId(site_id_from(local_secret(state_dir), seed), "local-secret", note)
    return SiteId(site_id_from(der, seed), "ca-certificate")
