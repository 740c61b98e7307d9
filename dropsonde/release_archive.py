"""Reading a Forge release tarball, which we do not trust to be well formed.

Only the manifests are wanted: the bytes of each ``manifests/**.pp`` whose path
Puppet's autoloader can load. Nothing is ever extracted to disk; the archive
is read as a stream with the standard library's ``tarfile``, and refused
whole (:class:`ArchiveRefused`, its text says why) when anything about it is
not what ``puppet module build`` / PDK make:

- a member whose name is absolute or climbs out with ``..``, or that is a
  symbolic or hard link, a device or a FIFO (a real release holds regular
  files and directories only);
- members not all under one top directory (``<slug>-<version>/``);
- more than ``MAX_MEMBERS`` members, more than ``MAX_UNPACKED_BYTES`` once
  decompressed (counted on the decompressed stream itself, so tar's own long
  name and pax headers count too: a gzip bomb stops at the cap), or a manifest
  larger than ``MAX_MANIFEST_BYTES``;
- the same manifest twice (which copy would count?).

The largest Forge releases hold a few thousand files and a few tens of MB.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from typing import Dict, Optional

from dropsonde.release_evidence import autoloadable_path

MAX_MEMBERS = 20_000
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


class ArchiveRefused(Exception):
    """The tarball is not read; the text says why (it fits after "the tarball ...")."""


class _CappedStream(io.RawIOBase):
    """A decompressed stream that refuses to give more than ``limit`` bytes."""

    def __init__(self, inner: "io.BufferedIOBase", limit: int) -> None:
        self.inner = inner
        self.left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        data = self.inner.read(min(len(buffer), self.left + 1))
        if len(data) > self.left:
            raise ArchiveRefused(f"unpacks to more than {MAX_UNPACKED_BYTES // (1024 * 1024)} MiB")
        self.left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def read_release_manifests(tarball: bytes) -> Dict[str, bytes]:
    """The autoloadable manifests of a release tarball (``.tar.gz``), by path
    relative to the module's ``manifests`` directory; ArchiveRefused otherwise."""
    stream = io.BufferedReader(_CappedStream(gzip.GzipFile(fileobj=io.BytesIO(tarball)), MAX_UNPACKED_BYTES))
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            return _manifests(archive)
    except ArchiveRefused:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as exc:
        raise ArchiveRefused(f"is not a readable .tar.gz ({type(exc).__name__}: {str(exc)[:100]})") from None


def _manifests(archive: tarfile.TarFile) -> Dict[str, bytes]:
    found: Dict[str, bytes] = {}
    top: Optional[str] = None
    for count, member in enumerate(archive, start=1):
        if count > MAX_MEMBERS:
            raise ArchiveRefused(f"has more than {MAX_MEMBERS} members")
        name = member.name
        parts = name.split("/")
        if name.startswith("/") or ".." in parts or "\\" in name or "\0" in name:
            raise ArchiveRefused(f"has a member outside its directory ({name[:100]!r})")
        if not (member.isreg() or member.isdir()):
            raise ArchiveRefused(f"has a member that is neither a file nor a directory ({name[:100]!r}: a link or a device)")
        parts = [part for part in parts if part not in ("", ".")]
        if not parts:
            continue
        if top is None:
            top = parts[0]
        elif parts[0] != top:
            raise ArchiveRefused(f"has members outside its one top directory {top[:100]!r}")
        if not member.isreg() or len(parts) < 3 or parts[1] != "manifests":
            continue
        relative = "/".join(parts[2:])
        if not autoloadable_path(relative):
            continue
        if relative in found:
            raise ArchiveRefused(f"holds manifests/{relative} twice")
        if member.size > MAX_MANIFEST_BYTES:
            raise ArchiveRefused(f"has a manifest larger than {MAX_MANIFEST_BYTES // (1024 * 1024)} MiB ({relative})")
        handle = archive.extractfile(member)
        found[relative] = handle.read() if handle is not None else b""
    return found
