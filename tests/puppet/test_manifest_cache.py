"""Manifest files on disk: the walk, and the parse cache keyed by content
(each distinct manifest parsed once, per run and across runs, the file kept
bounded and damaged ones ignored)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from dropsonde.cache_dir import CacheDir
from dropsonde.puppet.manifest_cache import RACY_WINDOW_NS, ManifestCache, module_manifests
from tests.support.puppet_tree import write
from tests.support.time_limits import cpu_limit

LATER = 10 ** 20  # a clock far past every file's timestamps: no record is too fresh to trust


def later() -> int:
    return LATER


def kept_in(cache_file: Path):
    """ManifestCache's arguments for a cache kept at ``cache_file``."""
    return CacheDir.open(cache_file.parent), cache_file.name


def cache_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_unreadable_file_is_reported_not_raised(tmp_path):
    """A manifest that is a link leading out of its module is not read: the
    reason is recorded, nothing is raised, and it defines nothing."""
    write(tmp_path / "elsewhere.pp", "class leaked { }")
    (tmp_path / "m" / "manifests").mkdir(parents=True)
    (tmp_path / "m" / "manifests" / "init.pp").symlink_to(tmp_path / "elsewhere.pp")
    found = ManifestCache(None).read(tmp_path / "m" / "manifests", "init.pp")
    assert found.md5 is None and found.content.definitions == []
    assert found.content.error.startswith("cannot read")


def test_module_manifests_lists_only_pp_files_under_manifests(tmp_path):
    write(tmp_path / "manifests" / "init.pp", "")
    write(tmp_path / "manifests" / "sub" / "x.pp", "")
    write(tmp_path / "manifests" / "notes.txt", "")
    write(tmp_path / "examples" / "init.pp", "")
    assert module_manifests(tmp_path / "manifests") == ["init.pp", os.path.join("sub", "x.pp")]


def test_identical_copies_are_parsed_once_and_stored_once(tmp_path):
    for env in ("production", "staging"):
        write(tmp_path / env / "apache" / "manifests" / "init.pp", "class apache { include apache::params }")
    cache_file = tmp_path / "cache.json"
    cache = ManifestCache(*kept_in(cache_file), clock=later)
    first = cache.read(tmp_path / "production" / "apache" / "manifests", "init.pp")
    second = cache.read(tmp_path / "staging" / "apache" / "manifests", "init.pp")
    assert first.classes == second.classes == ["apache"]
    assert first.md5 == second.md5
    assert first.definitions is second.definitions  # one parse, shared
    cache.save([tmp_path / env / "apache" / "manifests" for env in ("production", "staging")])
    stored = cache_json(cache_file)
    assert len(stored["contents"]) == 1
    assert [stored["paths"][str(tmp_path / env / "apache" / "manifests")]["init.pp"]["md5"]
            for env in ("production", "staging")] == [first.md5, first.md5]


def test_md5_is_that_of_the_file_bytes_as_checksums_json_lists_it(tmp_path):
    import hashlib

    data = b"class ntp {\n  include ntp::config\n}\n"
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "init.pp").write_bytes(data)
    found = ManifestCache(None).read(tmp_path / "manifests", "init.pp")
    assert found.md5 == hashlib.md5(data).hexdigest()


def test_unchanged_files_come_from_the_cache_and_edited_ones_are_read_again(tmp_path):
    manifests = tmp_path / "m" / "manifests"
    manifest = write(manifests / "init.pp", "class m { }")
    cache_file = tmp_path / "cache" / "manifests.json"
    cache = ManifestCache(*kept_in(cache_file), clock=later)
    assert cache.read(manifests, "init.pp").classes == ["m"]
    cache.save([manifests])
    assert cache_file.is_file() and (cache_file.stat().st_mode & 0o777) == 0o600
    warm = ManifestCache(*kept_in(cache_file), clock=later)
    assert warm.read(manifests, "init.pp").classes == ["m"]
    assert not warm.dirty  # served from the cache
    before = manifest.stat()
    manifest.write_text("class n { }")  # same size, and the same mtime put back: the ctime still differs
    os.utime(manifest, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert warm.read(manifests, "init.pp").classes == ["m"]  # a run reads each file once
    next_run = ManifestCache(*kept_in(cache_file), clock=later)
    assert next_run.read(manifests, "init.pp").classes == ["n"]
    assert next_run.dirty


def test_a_file_written_just_before_the_run_is_hashed_again_next_time(tmp_path):
    """Timestamps are coarse: a file edited within the same tick as it was read
    keeps its stat, so a fresh file's stat is not trusted (git's racy rule)."""
    manifests = tmp_path / "manifests"
    manifest = write(manifests / "init.pp", "class m { }")
    written = max(manifest.stat().st_mtime_ns, manifest.stat().st_ctime_ns)
    cache_file = tmp_path / "cache.json"
    cache = ManifestCache(*kept_in(cache_file), clock=lambda: written + RACY_WINDOW_NS // 2)
    cache.read(manifests, "init.pp")
    cache.save([manifests])
    assert set(cache_json(cache_file)["paths"][str(manifests)]["init.pp"]) == {"md5"}  # no stamp to trust
    trusted = ManifestCache(*kept_in(cache_file), clock=lambda: written + 2 * RACY_WINDOW_NS)
    trusted.read(manifests, "init.pp")
    trusted.save([manifests])
    assert cache_json(cache_file)["paths"][str(manifests)]["init.pp"]["size"] == len("class m { }")


def test_cache_keeps_only_what_installed_modules_hold(tmp_path):
    """Bounded: records of a removed environment, of a deleted file and of a
    content no longer anywhere are dropped."""
    apache = write(tmp_path / "production" / "apache" / "manifests" / "init.pp", "class apache { }").parent
    write(apache / "old.pp", "class apache::old { }")
    staging = tmp_path / "staging" / "apache" / "manifests"
    shutil.copytree(apache, staging)
    cache_file = tmp_path / "cache.json"
    cache = ManifestCache(*kept_in(cache_file), clock=later)
    cache.module(apache)
    cache.module(staging)
    cache.save([apache, staging])
    assert set(cache_json(cache_file)["paths"]) == {str(apache), str(staging)}
    assert len(cache_json(cache_file)["contents"]) == 2
    shutil.rmtree(tmp_path / "staging")  # r10k removed a branch
    (apache / "old.pp").unlink()
    write(apache / "init.pp", "class apache { include apache::params }")
    later_run = ManifestCache(*kept_in(cache_file), clock=later)
    assert [f.classes for f in later_run.module(apache)] == [["apache"]]
    later_run.save([apache])
    stored = cache_json(cache_file)
    assert list(stored["paths"]) == [str(apache)]
    assert list(stored["paths"][str(apache)]) == ["init.pp"]
    assert list(stored["contents"]) == [stored["paths"][str(apache)]["init.pp"]["md5"]]


def test_cache_of_a_module_left_out_is_dropped_even_when_nothing_else_changed(tmp_path):
    kept = write(tmp_path / "a" / "manifests" / "init.pp", "class a { }").parent
    gone = write(tmp_path / "b" / "manifests" / "init.pp", "class b { }").parent
    cache_file = tmp_path / "cache.json"
    cache = ManifestCache(*kept_in(cache_file), clock=later)
    cache.module(kept)
    cache.module(gone)
    cache.save([kept, gone])
    warm = ManifestCache(*kept_in(cache_file), clock=later)
    warm.module(kept)
    warm.save([kept])
    assert list(cache_json(cache_file)["paths"]) == [str(kept)]


def test_a_file_looked_up_and_missing_loses_its_record(tmp_path):
    manifests = tmp_path / "manifests"
    write(manifests / "init.pp", "class m { }")
    write(manifests / "extra.pp", "class m::extra { }")
    cache_file = tmp_path / "cache.json"
    cache = ManifestCache(*kept_in(cache_file), clock=later)
    cache.module(manifests)
    cache.save([manifests])
    (manifests / "extra.pp").unlink()
    warm = ManifestCache(*kept_in(cache_file), clock=later)
    assert warm.read(manifests, "extra.pp") is None
    warm.save([manifests])
    assert list(cache_json(cache_file)["paths"][str(manifests)]) == ["init.pp"]


def test_directories_and_fifos_named_pp_are_not_manifests(tmp_path):
    manifests = tmp_path / "manifests"
    (manifests / "dir.pp").mkdir(parents=True)
    os.mkfifo(manifests / "pipe.pp")  # reading it would block forever
    cache = ManifestCache(None)
    assert cache.read(manifests, "dir.pp") is None
    assert cache.module(manifests) == []


def test_damaged_cache_is_ignored(tmp_path):
    manifests = tmp_path / "manifests"
    write(manifests / "a.pp", "class a {}")
    cache_file = tmp_path / "manifests.json"
    cache_file.write_text("{not json")
    assert ManifestCache(*kept_in(cache_file)).read(manifests, "a.pp").classes == ["a"]


def test_damaged_records_are_read_again(tmp_path):
    manifests = tmp_path / "manifests"
    write(manifests / "a.pp", "class a {}")
    write(manifests / "b.pp", "class b {}")
    cache_file = tmp_path / "manifests.json"
    cache = ManifestCache(*kept_in(cache_file), clock=later)
    cache.module(manifests)
    cache.save([manifests])
    stored = cache_json(cache_file)
    records = stored["paths"][str(manifests)]
    del records["a.pp"]["inode"]
    stored["contents"][records["b.pp"]["md5"]]["definitions"] = [{"kind": "class", "name": 7, "line": 1, "declares": []}]
    cache_file.write_text(json.dumps(stored))
    warm = ManifestCache(*kept_in(cache_file), clock=later)
    assert [f.classes for f in warm.module(manifests)] == [["a"], ["b"]]


def test_unwritable_cache_directory_is_not_an_error(tmp_path):
    manifests = tmp_path / "manifests"
    write(manifests / "a.pp", "class a {}")
    cache_dir = tmp_path / "cache"
    cache = ManifestCache(CacheDir.open(cache_dir), clock=later)
    cache.read(manifests, "a.pp")
    cache_dir.rmdir()  # a directory that takes no new file, even from root
    cache.save([manifests])  # no exception
    assert not cache_dir.exists()


def test_huge_manifests_are_set_aside_and_keep_the_cache_small(tmp_path):
    """The reviewer's: two 4 MB manifests of 400,000 nested classes, differing by one
    byte, once took 3 GB and an 847 MB cache (over its read cap, so every later run
    parsed them again). Now each is set aside, the verdict is cached, and the next
    run reads neither again."""
    manifests = tmp_path / "env" / "big" / "manifests"
    text = "class p" + "x" * 1000 + " {\n" + "class b{}\n" * 400_000 + "}\n"
    write(manifests / "one.pp", text)
    write(manifests / "two.pp", text + " ")
    cache_file = tmp_path / "cache.json"
    cache = ManifestCache(*kept_in(cache_file), clock=later)
    found = cache.module(manifests)
    assert [f.definitions for f in found] == [[], []]
    assert all(f.error.startswith("set aside:") for f in found)
    cache.save([manifests])
    assert cache_file.stat().st_size < 10_000
    again = ManifestCache(*kept_in(cache_file), clock=later)
    again_found = again.module(manifests)
    assert [f.error for f in again_found] == [f.error for f in found]
    assert not again.dirty  # nothing parsed again


def test_once_the_run_wide_budget_is_spent_new_manifests_are_set_aside_and_named_in_one_warning(
        tmp_path, monkeypatch, caplog):
    """A budget per manifest alone let thousands of distinct costly manifests add up.
    With the run's budget spent (none here), a content known from the cache is still
    used; every other manifest defines nothing (its classes are not public), is named
    in ONE warning and is not kept, so a later run reads it."""
    from dropsonde.puppet import manifest_cache

    manifests = tmp_path / "m" / "manifests"
    write(manifests / "init.pp", "class m { }")
    cache_file = tmp_path / "cache" / "manifests.json"
    first = ManifestCache(*kept_in(cache_file), clock=later)
    first.module(manifests)
    first.save([manifests])
    for name in ("a", "b", "c"):
        write(manifests / f"{name}.pp", f"class m::{name} {{ }}")
    monkeypatch.setattr(manifest_cache, "MANIFESTS_RUN_CPU_SECONDS", 0.0)
    monkeypatch.setattr(manifest_cache, "MAX_NAMED", 2)
    starved = ManifestCache(*kept_in(cache_file), clock=later)
    classes = {found.relative: found.classes for found in starved.module(manifests)}
    assert classes == {"a.pp": [], "b.pp": [], "c.pp": [], "init.pp": ["m"]}
    caplog.clear()
    starved.warn_set_aside()
    starved.save([manifests])
    assert [r.getMessage() for r in caplog.records] == [
        "3 manifests set aside, not read (their classes are not public): this run's parsing of manifests took "
        f"more than 0 s of CPU time (MANIFESTS_RUN_CPU_SECONDS): {manifests / 'a.pp'}, {manifests / 'b.pp'} "
        "and 1 more"]
    monkeypatch.undo()
    again = ManifestCache(*kept_in(cache_file), clock=later)
    assert {found.relative: found.classes for found in again.module(manifests)} == {
        "a.pp": ["m::a"], "b.pp": ["m::b"], "c.pp": ["m::c"], "init.pp": ["m"]}


def test_the_names_of_all_manifests_of_a_run_have_one_budget(tmp_path, monkeypatch, caplog):
    """The second review's F1: 1,000 distinct 70 KB manifests of `class a{}`, each within
    every per-file budget, added up to 2.9 GB and "internal error: MemoryError" (only
    CPU had a run-wide budget). Now what the distinct contents used in a run weigh,
    parsed or known from the cache, has one budget (lowered here to four files' worth):
    the files past it define nothing, are named in ONE warning and are not cached; a
    copy of a content already counted (r10k) costs nothing more."""
    from dropsonde.puppet import manifest_cache

    body = "class a{}\n" * 200
    manifests = tmp_path / "production" / "site" / "manifests"
    for index in range(6):
        write(manifests / f"f{index}.pp", f"# {index}\n" + body)
    copy = tmp_path / "staging" / "site" / "manifests"
    shutil.copytree(manifests, copy)
    monkeypatch.setattr(manifest_cache, "MANIFESTS_RUN_OUTPUT_BYTES", 4 * 200 * 9)
    cache_file = tmp_path / "cache" / "manifests.json"
    cache = ManifestCache(*kept_in(cache_file), clock=later)
    read = {found.path: found for directory in (manifests, copy) for found in cache.module(directory)}
    admitted = sorted(path for path, found in read.items() if found.classes)
    assert admitted == sorted(str(d / f"f{i}.pp") for d in (manifests, copy) for i in range(4))
    assert all(read[str(d / f"f{i}.pp")].error == manifest_cache.SET_ASIDE_BY_RUN_OUTPUT
               and read[str(d / f"f{i}.pp")].definitions == [] for d in (manifests, copy) for i in (4, 5))
    caplog.clear()
    cache.warn_set_aside()
    assert [r.getMessage() for r in caplog.records] == [
        "4 manifests set aside (their classes are not public): the names of all the manifests of this run weigh "
        f"more than 7 KiB (MANIFESTS_RUN_OUTPUT_BYTES): {manifests / 'f4.pp'}, {manifests / 'f5.pp'}, "
        f"{copy / 'f4.pp'}, {copy / 'f5.pp'}"]
    cache.save([manifests, copy])
    assert set(cache_json(cache_file)["paths"][str(manifests)]) == {f"f{i}.pp" for i in range(4)}
    # what the cache knows counts too: with room for two contents, a warm run uses two
    monkeypatch.setattr(manifest_cache, "MANIFESTS_RUN_OUTPUT_BYTES", 2 * 200 * 9)
    warm = ManifestCache(*kept_in(cache_file), clock=later)
    assert [found.relative for found in warm.module(manifests) if found.classes] == ["f0.pp", "f1.pp"]


def test_a_manifest_that_exhausts_memory_is_set_aside_not_the_run():
    """MemoryError (the process's own address-space limit, here lowered to a few MiB
    more than it uses) sets that one file aside: never "internal error". In a fresh
    interpreter: the test process's freed memory, reused without growing its address
    space, would let the read run on into its CPU budget instead."""
    import subprocess
    import sys

    code = (
        "from dropsonde.memory_budget import MiB, memory_budget\n"
        "from dropsonde.puppet.manifests import read_manifest_data\n"
        "with memory_budget(4 * MiB):\n"
        "    info = read_manifest_data(b'{}' * 300_000)\n"
        "print(len(info.definitions), info.error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "0 set aside: reading it ran out of memory\n"


def test_definitions_are_compact():
    """Each Definition is kept for the run, one per definition of every distinct
    manifest: 70 KB of `class a{}` kept 2.13 MB with a __dict__ and a list each."""
    import tracemalloc

    from dropsonde.puppet.manifests import read_manifest_data

    data = ("# one\n" + "class a{}\n" * 7_000).encode()
    tracemalloc.start()
    try:
        info = read_manifest_data(data)
        kept, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(info.definitions) == 7_000
    assert kept < 7_000 * 120, kept


def test_directories_nested_deeper_than_a_class_name_can_reach_are_not_walked(tmp_path):
    """Review 2, F13: 1,500 nested directories under a module's manifests made os.walk
    (recursive) raise RecursionError: `dev inventory` "internal error", the profiles
    plugin failed. The walk is iterative, and stops at MAX_MANIFEST_DEPTH (16): no class
    name (16 segments at most) autoloads from deeper."""
    from dropsonde.puppet.manifest_cache import MAX_MANIFEST_DEPTH

    manifests = tmp_path / "m" / "manifests"
    write(manifests / "init.pp", "class m { }")
    reachable = Path(*["a"] * MAX_MANIFEST_DEPTH) / "deepest.pp"
    write(manifests / reachable, "class m::deepest { }")
    write(manifests / ("b" * 250) / "x.pp", "")  # a path of 255 characters: listed
    write(manifests / ("c" * 251) / "x.pp", "")  # 256: not (MAX_MANIFEST_PATH)
    chain = [manifests]
    for _ in range(1_500):  # one at a time: pathlib's mkdir(parents=True) recurses too
        chain.append(chain[-1] / "a")
        chain[-1].mkdir(exist_ok=True)
    (chain[-1] / "x.pp").write_text("class x { }")
    try:
        with cpu_limit(2):
            listing = module_manifests(manifests)
            found = ManifestCache(None).module(manifests)
    finally:  # deepest first, one at a time: shutil.rmtree (pytest's cleanup) recurses as well
        (chain[-1] / "x.pp").unlink()
        for directory in reversed(chain[MAX_MANIFEST_DEPTH + 1:]):
            directory.rmdir()
    assert listing == ["init.pp", str(reachable), os.path.join("b" * 250, "x.pp")]
    assert [f.classes for f in found] == [["m"], ["m::deepest"], []]


def test_the_manifest_paths_of_a_run_have_one_count(tmp_path, monkeypatch, caplog):
    """Review 2, F9: 300,000 empty manifests (one content, so the parsing budget never
    ran) cost 361 MB and 8 s of CPU to walk, stat and record, and nothing bounded how
    many. Past the run's count (lowered here to 4), a module's manifests are set aside
    whole, named in ONE warning: none is read, and a lookup finds none."""
    from dropsonde.puppet import manifest_cache

    monkeypatch.setattr(manifest_cache, "MANIFESTS_RUN_MAX_PATHS", 4)
    directories = [tmp_path / name / "manifests" for name in ("a", "b", "c")]
    for directory in directories:
        for index in range(3):
            write(directory / f"f{index}.pp", f"class {directory.parent.name}::f{index} {{ }}")
    cache = ManifestCache(None)
    with cpu_limit(2):
        found = [[f.relative for f in cache.module(directory)] for directory in directories[:2]]
        assert cache.listed(directories[2], ["f0.pp"]) == []
    assert found == [["f0.pp", "f1.pp", "f2.pp"], []]
    caplog.clear()
    cache.warn_set_aside()
    assert [r.getMessage() for r in caplog.records] == [
        "2 modules' manifests set aside, not read (their classes are not public): this run lists at most 4 "
        f"manifests (MANIFESTS_RUN_MAX_PATHS): {directories[1]}, {directories[2]}"]
