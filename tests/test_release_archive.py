"""Reading a release tarball we do not trust: only autoloadable manifests come out,
and anything a release never holds refuses the whole archive, whatever the input."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dropsonde.release_archive import ArchiveRefused, read_release_manifests
from dropsonde.release_evidence import (
    MAX_MANIFEST_PATH_BYTES,
    MAX_RELEASE_MANIFESTS,
    EvidenceFormatError,
    autoloadable_path,
    evidence_from_json,
)
from tests.support.fuzzing import EXAMPLE_CPU_LIMIT, FUZZ
from tests.support.time_limits import cpu_limit

TOP = "puppetlabs-ntp-10.0.0"


def tarball(members, compress=True) -> bytes:
    """A .tar.gz of (name, type, data) members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if compress else "w") as archive:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return buffer.getvalue()


def test_only_autoloadable_manifests_are_kept():
    data = tarball([
        (f"{TOP}/", tarfile.DIRTYPE, b""),
        (f"{TOP}/manifests/init.pp", tarfile.REGTYPE, b"class ntp { }"),
        (f"{TOP}/manifests/config/file.pp", tarfile.REGTYPE, b"class ntp::config::file { }"),
        (f"{TOP}/manifests/Odd-Name.pp", tarfile.REGTYPE, b"class ntp::odd { }"),
        (f"{TOP}/manifests/notes.txt", tarfile.REGTYPE, b"x"),
        (f"{TOP}/templates/init.pp", tarfile.REGTYPE, b"class ntp::template { }"),
        (f"./{TOP}/metadata.json", tarfile.REGTYPE, b"{}"),
    ])
    assert read_release_manifests(data) == {"init.pp": b"class ntp { }", "config/file.pp": b"class ntp::config::file { }"}


@pytest.mark.parametrize("name, kind, reason", [
    (f"{TOP}/../escape.pp", tarfile.REGTYPE, "outside its directory"),
    ("/etc/cron.d/x", tarfile.REGTYPE, "outside its directory"),
    (f"{TOP}/manifests/link.pp", tarfile.SYMTYPE, "a link or a device"),
    (f"{TOP}/fifo", tarfile.FIFOTYPE, "a link or a device"),
    ("elsewhere/manifests/x.pp", tarfile.REGTYPE, "one top directory"),
    (f"{TOP}/manifests/init.pp", tarfile.REGTYPE, "holds manifests/init.pp twice"),
])
def test_what_a_release_never_holds_refuses_the_archive(name, kind, reason):
    data = tarball([(f"{TOP}/manifests/init.pp", tarfile.REGTYPE, b"class ntp { }"), (name, kind, b"x")])
    with pytest.raises(ArchiveRefused, match=reason):
        read_release_manifests(data)


def test_a_release_at_the_caps_of_what_it_may_keep_is_read():
    """MAX_RELEASE_MANIFESTS manifests, one at a path of exactly MAX_MANIFEST_PATH_BYTES."""
    longest = "a/" * ((MAX_MANIFEST_PATH_BYTES - 4) // 2) + "x.pp"
    longest = "b" * (MAX_MANIFEST_PATH_BYTES - len(longest)) + longest
    assert len(longest) == MAX_MANIFEST_PATH_BYTES and autoloadable_path(longest)
    members = [(f"{TOP}/manifests/m{i}.pp", tarfile.REGTYPE, b"") for i in range(MAX_RELEASE_MANIFESTS - 1)]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as archive:
        for name, _, data in members + [(f"{TOP}/manifests/{longest}", tarfile.REGTYPE, b"")]:
            archive.addfile(tarfile.TarInfo(name), io.BytesIO(data))
    assert len(read_release_manifests(buffer.getvalue())) == MAX_RELEASE_MANIFESTS


def test_pax_and_gnu_long_names_of_real_lengths_are_read():
    """Paths over 100 bytes take a pax (or GNU long-name) header before the member: the
    header walk skips their data block by block, as tarfile does."""
    deep = f"{TOP}/manifests/" + "/".join(["level"] * 25) + "/deep.pp"
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz", format=fmt) as archive:
            for name, data in ((deep, b"class ntp::deep { }"), (f"{TOP}/manifests/init.pp", b"class ntp { }")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.pax_headers = {"comment": "x" * 700} if fmt == tarfile.PAX_FORMAT else {}
                archive.addfile(info, io.BytesIO(data))
        manifests = read_release_manifests(buffer.getvalue())
        assert manifests == {deep.split("/manifests/", 1)[1]: b"class ntp::deep { }", "init.pp": b"class ntp { }"}


def test_a_plain_tar_or_garbage_is_not_a_release():
    for data in (tarball([(f"{TOP}/manifests/init.pp", tarfile.REGTYPE, b"")], compress=False), b"", b"\x1f\x8b junk",
                 gzip.compress(b"not a tar at all" * 100)):
        with pytest.raises(ArchiveRefused, match="not a readable .tar.gz"):
            read_release_manifests(data)


@FUZZ
@given(st.binary(max_size=4096) | st.builds(gzip.compress, st.binary(max_size=4096)))
def test_whatever_the_bytes_the_reader_answers_or_refuses(data):
    with cpu_limit(EXAMPLE_CPU_LIMIT):
        try:
            manifests = read_release_manifests(data)
        except ArchiveRefused:
            return
    assert all(autoloadable_path(relative) for relative in manifests)


NAMES = st.sampled_from([TOP, f"{TOP}/manifests", f"{TOP}/manifests/init.pp", f"{TOP}/manifests/a/b.pp", "..",
                         f"{TOP}/..", "/abs", f"{TOP}/manifests/../../x.pp", "other/x", f"./{TOP}/manifests/c.pp",
                         f"{TOP}//manifests//d.pp", f"{TOP}/manifests/\\x.pp", f"{TOP}/manifests/x.PP"])
KINDS = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE,
                         tarfile.CHRTYPE])


@FUZZ
@given(st.lists(st.tuples(NAMES, KINDS, st.binary(max_size=64)), max_size=12))
def test_whatever_the_members_no_path_outside_manifests_comes_out(members):
    with cpu_limit(EXAMPLE_CPU_LIMIT):
        try:
            manifests = read_release_manifests(tarball(members))
        except ArchiveRefused:
            return
    for relative in manifests:
        assert autoloadable_path(relative) and ".." not in relative and not relative.startswith("/")
    assert not any(kind not in (tarfile.REGTYPE, tarfile.DIRTYPE) for _, kind, _ in members)


@FUZZ
@given(st.binary(max_size=2048) | st.text(max_size=2048).map(str.encode))
def test_whatever_the_evidence_file_holds_it_is_read_or_refused_in_one_line(data):
    with cpu_limit(EXAMPLE_CPU_LIMIT):
        try:
            evidence_from_json(data)
        except EvidenceFormatError as exc:
            assert "\n" not in str(exc)


# ---- the review's 1 and 8: what tarfile or the parser would turn into far more than the archive's bytes ----


def _gnu_long_name(length: int, under: str = f"{TOP}/") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as archive:
        info = tarfile.TarInfo(under + "a/" * (length // 2) + "x.pp")
        archive.addfile(info, io.BytesIO(b""))
    return buffer.getvalue()


def _pax(headers: dict) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(f"{TOP}/manifests/init.pp")
        info.pax_headers = headers
        archive.addfile(info, io.BytesIO(b""))
    return buffer.getvalue()


@pytest.mark.parametrize("make, reason", [
    (lambda: _gnu_long_name(20 * 1024 * 1024), "a name or link target longer than 4096 bytes"),
    (lambda: _pax({"GNU.sparse.map": "0,1," * 10}), "a GNU sparse member"),
    (lambda: _pax({"comment": "x" * (100 * 1024)}), "a pax header larger than 64 KiB"),
    (lambda: tarball([(f"{TOP}/manifests/m{i}.pp", tarfile.REGTYPE, b"#" * (4 * 1024 * 1024)) for i in range(5)]),
     "manifests larger than 16 MiB in all"),
    # the second review (F4): 19,990 empty manifests with 4,000-byte paths kept 80 MB of
    # evidence per release, within every archive rule; four wiped all of a site's evidence
    (lambda: tarball([(f"{TOP}/manifests/m{i}.pp", tarfile.REGTYPE, b"") for i in range(MAX_RELEASE_MANIFESTS + 1)]),
     f"more than {MAX_RELEASE_MANIFESTS} autoloadable manifests"),
    (lambda: _gnu_long_name(MAX_MANIFEST_PATH_BYTES - 2, f"{TOP}/manifests/"),
     f"a manifest path longer than {MAX_MANIFEST_PATH_BYTES} bytes"),
])
def test_headers_and_manifests_that_would_cost_memory_or_cpu_are_refused_cheaply(make, reason):
    """A 200 MB GNU long name took 1.9 GB, a 100 MB pax sparse map 4.7 GB, 63 manifests of
    4 MiB a minute of parsing: refused before tarfile or the parser gets to them."""
    data = make()
    with cpu_limit(EXAMPLE_CPU_LIMIT):
        with pytest.raises(ArchiveRefused, match=reason):
            read_release_manifests(data)


# ---- the re-check's A, B and E: headers a check-then-tarfile reader let through ----


def _raw_member(name: bytes, kind: bytes, size: int, data: bytes = b"", size_field: bytes = b"") -> bytes:
    """One header block (ustar, checksum right) and its data, padded to whole blocks;
    ``size_field`` is written as the size field's text instead of ``size`` in octal."""
    header = bytearray(512)
    header[0:len(name)] = name
    header[100:108] = b"0000644\0"
    header[124:136] = size_field.ljust(12, b"\0") if size_field else f"{size:011o}\0".encode()
    header[136:148] = b"00000000000\0"
    header[156:157] = kind
    header[257:263] = b"ustar\0"
    header[263:265] = b"00"
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}\0 ".encode()
    return bytes(header) + data + bytes(-len(data) % 512)


def _pax_record(key: str, value: str) -> bytes:
    """``length key=value\n``, the length counting its own digits."""
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


def _archive(*members: bytes) -> bytes:
    return gzip.compress(b"".join(members) + bytes(1024))


def test_a_pax_size_cannot_desynchronise_the_reader():
    """B: a pax record says 1024 bytes follow, the ustar header says 0: a reader that checks
    headers with one size and reads with the other is led past a 20 MB GNU long name."""
    pax = _pax_record("size", "1024")
    data = _archive(
        _raw_member(b"PaxHeader", b"x", len(pax), pax),
        _raw_member(f"{TOP}/files/a".encode(), b"0", 0) + bytes(1024),
        _raw_member(b"././@LongLink", b"L", 20 * 1024 * 1024, b"a" * (20 * 1024 * 1024)),
        _raw_member(b"x", b"0", 0),
    )
    with cpu_limit(EXAMPLE_CPU_LIMIT):
        with pytest.raises(ArchiveRefused, match="a name or link target longer than 4096 bytes"):
            read_release_manifests(data)


def test_global_pax_headers_and_long_pax_paths_are_refused():
    """A: global headers (merged into every later member by tarfile); E: 64 KiB pax paths."""
    global_header = _pax_record("comment", "x" * 60_000)
    with pytest.raises(ArchiveRefused, match="a global pax header"):
        read_release_manifests(_archive(_raw_member(b"GlobalHead", b"g", len(global_header), global_header)))
    long_path = _pax_record("path", f"{TOP}/" + "p" * 60_000)
    with pytest.raises(ArchiveRefused, match="a name or link target longer than 4096 bytes"):
        read_release_manifests(_archive(_raw_member(b"PaxHeader", b"x", len(long_path), long_path),
                                        _raw_member(b"x", b"0", 0)))


def test_a_header_with_a_wrong_checksum_is_no_tar():
    member = bytearray(_raw_member(f"{TOP}/manifests/init.pp".encode(), b"0", 0))
    member[0] = ord("Q")
    with pytest.raises(ArchiveRefused, match="not a tar header"):
        read_release_manifests(_archive(bytes(member)))


@pytest.mark.parametrize("field", [b"-1", b"+20", b"0o2_0", b"2_0", b"-0"])
def test_a_size_is_octal_digits_or_the_header_is_no_tar_header(field):
    """Third review: ``int(text, 8)`` took ``-1``, and a size of -1 read the whole rest
    of the stream (255 MiB of it) past every cap before the archive was refused."""
    member = _raw_member(f"{TOP}/manifests/init.pp".encode(), b"0", 0, size_field=field)
    with pytest.raises(ArchiveRefused, match="not a tar header"):
        read_release_manifests(_archive(member, b"a" * 4096))


def test_an_old_style_file_named_like_a_directory_is_a_directory():
    """Third review: a type NUL member ``manifests/init.pp/`` was read as the file
    init.pp, which tar tools (tarfile among them) make a directory."""
    manifests = read_release_manifests(_archive(
        _raw_member(f"{TOP}/manifests/init.pp/".encode(), b"\0", 0),
        _raw_member(f"{TOP}/manifests/real.pp".encode(), b"0", 13, b"class x::y {}"),
    ))
    assert manifests == {"real.pp": b"class x::y {}"}
