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
  name and pax headers count too: a gzip bomb stops at the cap), a manifest
  larger than ``MAX_MANIFEST_BYTES`` or manifests larger than
  ``MAX_MANIFESTS_BYTES`` in all;
- the same manifest twice (which copy would count?);
- what ``tarfile`` would turn into far more memory than its bytes, found by
  reading the raw headers first (:func:`_prescan`), before ``tarfile`` sees
  them: a GNU long name or link over ``MAX_NAME_BYTES`` (200 MB of name from a
  200 KB archive took 1.9 GB), a pax header over ``MAX_PAX_BYTES`` or naming a
  ``GNU.sparse`` map (a 100 MB map became 64 million tuples), a GNU sparse
  member. A ``MemoryError`` all the same refuses the archive, never the run.

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
# The largest real releases' manifests add up to about 1 MB (puppetlabs-apache).
MAX_MANIFESTS_BYTES = 16 * 1024 * 1024
# Real names are well under 255 bytes; pax headers of real releases hold a path, times, owners.
MAX_NAME_BYTES = 4096
MAX_PAX_BYTES = 64 * 1024
_BLOCK = 512


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


def _unpacked(tarball: bytes) -> "io.BufferedReader":
    return io.BufferedReader(_CappedStream(gzip.GzipFile(fileobj=io.BytesIO(tarball)), MAX_UNPACKED_BYTES))


def read_release_manifests(tarball: bytes) -> Dict[str, bytes]:
    """The autoloadable manifests of a release tarball (``.tar.gz``), by path
    relative to the module's ``manifests`` directory; ArchiveRefused otherwise."""
    try:
        _prescan(_unpacked(tarball))
        with tarfile.open(fileobj=_unpacked(tarball), mode="r|") as archive:
            return _manifests(archive)
    except ArchiveRefused:
        raise
    except MemoryError:
        raise ArchiveRefused("takes more memory to read than it may") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as exc:
        raise ArchiveRefused(f"is not a readable .tar.gz ({type(exc).__name__}: {str(exc)[:100]})") from None


def _prescan(stream: "io.BufferedReader") -> None:
    """Walk the raw tar headers (ustar layout: size at 124, type flag at 156) and refuse
    what tarfile would blow up in memory: long GNU names, large or sparse pax headers,
    GNU sparse members. Data is skipped, never kept; the stream is capped."""
    headers = 0
    while True:
        header = stream.read(_BLOCK)
        if len(header) < _BLOCK or header == bytes(_BLOCK):
            return  # the end of the archive (or a short one: tarfile says what is wrong)
        headers += 1
        if headers > 3 * MAX_MEMBERS:  # a member may take a long-name and a pax header too
            raise ArchiveRefused(f"has more than {MAX_MEMBERS} members")
        size, kind = _header_size(header[124:136]), header[156:157]
        if kind in (b"L", b"K") and size > MAX_NAME_BYTES:
            raise ArchiveRefused(f"has a name or link target longer than {MAX_NAME_BYTES} bytes")
        if kind == b"S":
            raise ArchiveRefused("has a GNU sparse member")
        padded = size + (-size % _BLOCK)  # data is stored in whole blocks
        if kind in (b"x", b"g", b"X"):
            if size > MAX_PAX_BYTES:
                raise ArchiveRefused(f"has a pax header larger than {MAX_PAX_BYTES // 1024} KiB")
            data = stream.read(size)
            if b"GNU.sparse" in data:
                raise ArchiveRefused("has a GNU sparse member")
            padded -= len(data)
        _skip(stream, padded)


def _header_size(field: bytes) -> int:
    """A tar size field: octal text, or base-256 when its first byte has the high bit set."""
    if field[:1] and field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    digits = field.split(b"\0", 1)[0].strip()
    try:
        return int(digits, 8) if digits else 0
    except ValueError:
        raise ArchiveRefused("is not a readable .tar.gz (a header that is not a tar header)") from None


def _skip(stream: "io.BufferedReader", count: int) -> None:
    while count > 0:
        chunk = stream.read(min(count, 1024 * 1024))
        if not chunk:
            return
        count -= len(chunk)


def _manifests(archive: tarfile.TarFile) -> Dict[str, bytes]:
    found: Dict[str, bytes] = {}
    top: Optional[str] = None
    total = 0
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
        total += member.size
        if total > MAX_MANIFESTS_BYTES:
            raise ArchiveRefused(f"has manifests larger than {MAX_MANIFESTS_BYTES // (1024 * 1024)} MiB in all")
        handle = archive.extractfile(member)
        found[relative] = handle.read() if handle is not None else b""
    return found
