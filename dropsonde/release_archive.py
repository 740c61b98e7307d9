"""Reading a Forge release tarball, which we do not trust to be well formed.

Only the manifests are wanted: the bytes of each ``manifests/**.pp`` whose path
Puppet's autoloader can load. Nothing is ever extracted to disk. The archive
is read in ONE walk of our own over the decompressed stream (ustar headers,
GNU long names, pax ``path`` and ``size``), not with ``tarfile``: ``tarfile``
turns some headers into far more memory than their bytes (a 200 KB archive
naming a 200 MB path took 1.9 GB, global pax headers merged into thousands of
members 4 GB), and a reader that checks first and lets ``tarfile`` read after
can be told one size by a pax record and another by the ustar header. Here
nothing is read but by the walk that checks it, and it keeps nothing but the
manifests. The archive is refused whole (:class:`ArchiveRefused`, its text
says why) when anything about it is not what ``puppet module build`` / PDK
make:

- a member whose name is absolute or climbs out with ``..``, or that is a
  symbolic or hard link, a device, a FIFO or a GNU sparse file (a real
  release holds regular files and directories only);
- members not all under one top directory (``<slug>-<version>/``);
- a name over ``MAX_NAME_BYTES``, a pax header over ``MAX_PAX_BYTES``, a
  global pax header, a pax record that is not ``length key=value``;
- a header whose checksum is wrong (not a tar archive, or a damaged one);
- more than ``MAX_MEMBERS`` members, more than ``MAX_UNPACKED_BYTES`` once
  decompressed (counted on the decompressed stream: a gzip bomb stops at the
  cap), a manifest larger than ``MAX_MANIFEST_BYTES`` or manifests larger than
  ``MAX_MANIFESTS_BYTES`` in all, more autoloadable manifests than
  ``release_evidence.MAX_RELEASE_MANIFESTS`` or one whose path is longer than
  ``release_evidence.MAX_MANIFEST_PATH_BYTES`` (what the evidence keeps of a
  release is bounded: the paths of 20,000 empty manifests took 80 MB);
- the same manifest twice (which copy would count?).

A ``MemoryError`` all the same refuses the archive, never the run. The
largest Forge releases hold a few thousand files and a few tens of MB.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Dict, Iterator, Optional

from dropsonde.release_evidence import MAX_MANIFEST_PATH_BYTES, MAX_RELEASE_MANIFESTS, autoloadable_path

MAX_MEMBERS = 20_000
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# The largest real releases' manifests add up to about 1 MB (puppetlabs-apache).
MAX_MANIFESTS_BYTES = 16 * 1024 * 1024
# Real names are well under 255 bytes; pax headers of real releases hold a path, times, owners.
MAX_NAME_BYTES = 4096
MAX_PAX_BYTES = 64 * 1024
_BLOCK = 512
_REGULAR = (b"0", b"\0", b"7")
_DIRECTORY = b"5"


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


@dataclass
class _Member:
    name: str
    kind: bytes
    size: int


def read_release_manifests(tarball: bytes) -> Dict[str, bytes]:
    """The autoloadable manifests of a release tarball (``.tar.gz``), by path
    relative to the module's ``manifests`` directory; ArchiveRefused otherwise."""
    stream = io.BufferedReader(_CappedStream(gzip.GzipFile(fileobj=io.BytesIO(tarball)), MAX_UNPACKED_BYTES))
    try:
        return _manifests(stream)
    except ArchiveRefused:
        raise
    except MemoryError:
        raise ArchiveRefused("takes more memory to read than it may") from None
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise ArchiveRefused(f"is not a readable .tar.gz ({type(exc).__name__}: {str(exc)[:100]})") from None


def _manifests(stream: BinaryIO) -> Dict[str, bytes]:
    found: Dict[str, bytes] = {}
    top: Optional[str] = None
    total = 0
    for count, member in enumerate(_members(stream), start=1):
        if count > MAX_MEMBERS:
            raise ArchiveRefused(f"has more than {MAX_MEMBERS} members")
        name = member.name
        parts = name.split("/")
        if name.startswith("/") or ".." in parts or "\\" in name or "\0" in name:
            raise ArchiveRefused(f"has a member outside its directory ({name[:100]!r})")
        if member.kind not in _REGULAR and member.kind != _DIRECTORY:
            raise ArchiveRefused(f"has a member that is neither a file nor a directory ({name[:100]!r}: "
                                 "a link or a device)")
        parts = [part for part in parts if part not in ("", ".")]
        wanted = None
        if parts:
            if top is None:
                top = parts[0]
            elif parts[0] != top:
                raise ArchiveRefused(f"has members outside its one top directory {top[:100]!r}")
            relative = "/".join(parts[2:])
            if member.kind in _REGULAR and len(parts) >= 3 and parts[1] == "manifests" and autoloadable_path(relative):
                wanted = relative
        if wanted is None:
            _skip(stream, _padded(member.size))
            continue
        if wanted in found:
            raise ArchiveRefused(f"holds manifests/{wanted} twice")
        if len(found) >= MAX_RELEASE_MANIFESTS:
            raise ArchiveRefused(f"has more than {MAX_RELEASE_MANIFESTS} autoloadable manifests")
        if len(wanted.encode("utf-8")) > MAX_MANIFEST_PATH_BYTES:
            raise ArchiveRefused(f"has a manifest path longer than {MAX_MANIFEST_PATH_BYTES} bytes "
                                 f"(manifests/{wanted[:60]}…)")
        if member.size > MAX_MANIFEST_BYTES:
            raise ArchiveRefused(f"has a manifest larger than {MAX_MANIFEST_BYTES // (1024 * 1024)} MiB ({wanted})")
        total += member.size
        if total > MAX_MANIFESTS_BYTES:
            raise ArchiveRefused(f"has manifests larger than {MAX_MANIFESTS_BYTES // (1024 * 1024)} MiB in all")
        found[wanted] = _read_exactly(stream, member.size)
        _skip(stream, _padded(member.size) - member.size)
    return found


def _members(stream: BinaryIO) -> Iterator[_Member]:
    """Each member with its name and size as the headers before it say (GNU long name,
    pax path and size), the stream left at the start of its data. Headers of their own
    (long names, pax) are read here and bounded; nothing else is kept."""
    long_name: Optional[str] = None
    pax: Dict[str, str] = {}
    while True:
        header = stream.read(_BLOCK)
        if len(header) < _BLOCK:
            raise ArchiveRefused("is not a readable .tar.gz (it ends before its end-of-archive block)")
        if header == bytes(_BLOCK):
            return  # the end-of-archive block
        _check_sum(header)
        kind, size = header[156:157], _header_size(header[124:136])
        if kind in (b"L", b"K"):
            if size > MAX_NAME_BYTES:
                raise ArchiveRefused(f"has a name or link target longer than {MAX_NAME_BYTES} bytes")
            data = _read_exactly(stream, size)
            _skip(stream, _padded(size) - size)
            if kind == b"L":
                long_name = _text(data.split(b"\0", 1)[0])
            continue
        if kind == b"g":
            raise ArchiveRefused("has a global pax header")
        if kind in (b"x", b"X"):
            if size > MAX_PAX_BYTES:
                raise ArchiveRefused(f"has a pax header larger than {MAX_PAX_BYTES // 1024} KiB")
            pax = _pax_records(_read_exactly(stream, size))
            _skip(stream, _padded(size) - size)
            continue
        if kind == b"S":
            raise ArchiveRefused("has a GNU sparse member")
        name = pax.get("path") or long_name or _ustar_name(header)
        if "size" in pax:
            if not pax["size"].isdigit():
                raise ArchiveRefused("has a pax size that is not a number")
            size = int(pax["size"])
        long_name, pax = None, {}
        if kind == b"\0" and name.endswith("/"):
            kind = _DIRECTORY  # an old-style file named like a directory is one, as tarfile reads it
        yield _Member(name, kind, size if kind in _REGULAR else 0)


def _pax_records(data: bytes) -> Dict[str, str]:
    """``length key=value\\n`` records; only ``path`` and ``size`` are kept (times and
    owners are of no use here), a name over MAX_NAME_BYTES and any sparse record refused."""
    records: Dict[str, str] = {}
    position = 0
    while position < len(data):
        space = data.find(b" ", position, position + 20)
        length_text = data[position:space] if space > position else b""
        if not length_text.isdigit() or int(length_text) <= 0 or position + int(length_text) > len(data):
            raise ArchiveRefused("has a pax header that is not pax records")
        record = data[space + 1: position + int(length_text)]
        position += int(length_text)
        key, equals, value = record.rstrip(b"\n").partition(b"=")
        if not equals:
            raise ArchiveRefused("has a pax header that is not pax records")
        if key.startswith(b"GNU.sparse"):
            raise ArchiveRefused("has a GNU sparse member")
        if key == b"path":
            if len(value) > MAX_NAME_BYTES:
                raise ArchiveRefused(f"has a name or link target longer than {MAX_NAME_BYTES} bytes")
            records["path"] = _text(value)
        elif key == b"size":
            records["size"] = value.decode("ascii", "replace")
    return records


def _check_sum(header: bytes) -> None:
    """A ustar header's checksum: the sum of its bytes, the checksum field counted as spaces."""
    if _octal(header[148:156]) != sum(header[:148]) + 8 * 32 + sum(header[156:]):
        raise ArchiveRefused("is not a readable .tar.gz (a header that is not a tar header)")


def _header_size(field: bytes) -> int:
    """A tar size field: octal text, or base-256 when its first byte has the high bit set."""
    if field[:1] and field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    return _octal(field)


def _octal(field: bytes) -> int:
    """A numeric header field as octal digits only: Python's ``int(text, 8)`` also
    takes ``-1``, ``+7``, ``0o2_0``, and a size of -1 read the rest of the stream
    past every cap (third review)."""
    digits = field.split(b"\0", 1)[0].strip(b" ")
    if not digits:
        return 0
    if not _OCTAL_RE.fullmatch(digits):
        raise ArchiveRefused("is not a readable .tar.gz (a header that is not a tar header)")
    return int(digits, 8)


_OCTAL_RE = re.compile(rb"[0-7]+")


def _ustar_name(header: bytes) -> str:
    name = header[0:100].split(b"\0", 1)[0]
    if header[257:262] == b"ustar":
        prefix = header[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return _text(name)


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ArchiveRefused("has a name that is not UTF-8") from None


def _padded(size: int) -> int:
    """Data is stored in whole blocks."""
    return size + (-size % _BLOCK)


def _read_exactly(stream: BinaryIO, count: int) -> bytes:
    data = stream.read(count)
    if len(data) < count:
        raise ArchiveRefused("is not a readable .tar.gz (it ends inside a member)")
    return data


def _skip(stream: BinaryIO, count: int) -> None:
    while count > 0:
        chunk = stream.read(min(count, 1024 * 1024))
        if not chunk:
            raise ArchiveRefused("is not a readable .tar.gz (it ends inside a member)")
        count -= len(chunk)
