"""Manifest files on disk: finding them in a module, and reading each distinct
content once, per run and across runs.

r10k deploys a full copy of the control repository per environment, so the
same manifest sits at dozens of paths. Parse results are therefore kept by
content (the md5 of the file's bytes), and a path whose ``stat`` is unchanged since the
last run is not even read: a warm run costs a ``stat`` per manifest, a cold
one a read and a hash per file plus one parse per distinct content.

The cache file stays bounded: it holds records only for the manifests
directories of the modules installed now (a removed environment's go at the
next run), a module read whole drops the records of files it no longer has, a
file found missing drops its own, and a content no path refers to is dropped.
It is written atomically, and a damaged one is ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from stat import S_ISREG
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Set, Tuple

from dropsonde import __version__
from dropsonde.cpu_budget import MANIFESTS_RUN_CPU_SECONDS, RunBudget
from dropsonde.puppet import manifests
from dropsonde.puppet.manifests import MANIFESTS_RUN_OUTPUT_BYTES, Definition, output_bytes, read_manifest_data
from dropsonde.json_input import load_json
from dropsonde.tree_files import is_inside, read_tree_file

if TYPE_CHECKING:
    from dropsonde.cache_dir import CacheDir

log = logging.getLogger(__name__)

# A file changed within this long of being read could change again without its
# stat changing (timestamps are coarse): its record is not trusted next time
# (git's "racily clean" rule).
RACY_WINDOW_NS = 2_000_000_000
CACHE_FILENAME = "manifests.json"
#: The error of a manifest left unread because this run's parsing budget was spent
#: (its classes are not public); one warning names them all (:meth:`ManifestCache.warn_set_aside`).
SET_ASIDE_BY_RUN_BUDGET = "set aside: this run's budget for parsing manifests was spent (MANIFESTS_RUN_CPU_SECONDS)"
#: The error of a manifest whose names would take the run past MANIFESTS_RUN_OUTPUT_BYTES.
SET_ASIDE_BY_RUN_OUTPUT = "set aside: this run's budget for the names of all manifests was spent (MANIFESTS_RUN_OUTPUT_BYTES)"
# Set-aside manifests named in that warning; the count says how many more.
MAX_NAMED = 5
# what the writer can produce within the budgets (MANIFESTS_RUN_MAX_PATHS paths of MAX_MANIFEST_PATH characters, and
# MANIFESTS_RUN_OUTPUT_BYTES of names: about 150 MB), so a planted file cannot exhaust memory
MAX_CACHE_BYTES = 256 * 1024 * 1024
# five values per manifest path, a few per definition: room for a million manifests
MAX_CACHE_VALUES = 20_000_000


#: Directories below a module's ``manifests`` that are walked: a class of 16 name
#: segments (``privacy._CLASS_NAME_MAX_SEGMENTS``, the most a class name may have)
#: autoloads from 14 directories down, so nothing deeper can define a class asked
#: about. Walking by recursion, 1,500 nested directories raised RecursionError.
MAX_MANIFEST_DEPTH = 16
#: Characters of a manifest's path below ``manifests``: the longest of Debian's
#: modules has 51 (mcollective's ``server/config/connector/rabbitmq/hosts_iteration.pp``);
#: longer ones are not listed, so that what the run keeps of each path (and the
#: cache writes) is bounded whatever the names (16 directories of 255 bytes
#: would be 4 KB a path).
MAX_MANIFEST_PATH = 255
#: Manifest paths listed in one run, all modules of all environments together
#: (each costs a stat, a record and about 1.5 KB of memory, even when empty and
#: shared: 300,000 empty files took 361 MB and 8 s). ``bench/r10k.py``'s 160
#: environments hold 113,505 (40 environments: 28,000); past it, a module's manifests
#: are set aside whole. 299,000 empty ones peak at 390 MB (about 500 MB with the longest
#: paths), within the scheduled unit's MemoryMax.
MANIFESTS_RUN_MAX_PATHS = 300_000


def module_manifests(manifests_dir: Path, limit: Optional[int] = None) -> Optional[List[str]]:
    """Every ``.pp`` file under a module's ``manifests`` directory relative to it,
    in autoload order (a directory's files sorted, then its subdirectories, down to
    MAX_MANIFEST_DEPTH), or None when there are more than ``limit``. Links to
    directories below it are not followed, and a ``manifests`` that is a link leading
    out of its module (``manifests -> /`` would walk the whole filesystem) is not
    walked at all. Iterative: no depth of directories can exhaust the stack."""
    found: List[str] = []
    top = str(manifests_dir)
    module_dir = os.path.dirname(top)
    if os.path.islink(top) and not is_inside(os.path.realpath(top), os.path.realpath(module_dir)):
        log.warning("not reading %s: a symbolic link leading outside its module %s", top, module_dir)
        return found
    pending: List[Tuple[str, int]] = [("", 0)]  # (directory relative to top, depth), next last
    while pending:
        relative, depth = pending.pop()
        files, directories = _entries(os.path.join(top, relative) if relative else top)
        found.extend(path for name in files if len(path := os.path.join(relative, name)) <= MAX_MANIFEST_PATH)
        if limit is not None and len(found) > limit:
            return None
        if depth < MAX_MANIFEST_DEPTH:
            pending.extend((path, depth + 1) for name in reversed(directories)
                           if len(path := os.path.join(relative, name)) < MAX_MANIFEST_PATH)
    return found


def _entries(directory: str) -> Tuple[List[str], List[str]]:
    """The ``.pp`` files and the subdirectories (not links) of a directory, each
    sorted; nothing when it cannot be listed (as ``os.walk`` skips it)."""
    files: List[str] = []
    directories: List[str] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        directories.append(entry.name)
                    elif entry.name.endswith(".pp"):
                        files.append(entry.name)
                except OSError:
                    continue
    except OSError:
        pass
    return sorted(files), sorted(directories)


def _read_bytes(path: str, within: Optional[str]) -> Tuple[Optional[bytes], Optional[str]]:
    """The file's bytes (see tree_files: regular, bounded, inside ``within``), or why not."""
    try:
        return read_tree_file(path, "manifest", within), None
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"


class FileStamp(NamedTuple):
    """What ``stat`` says of a file; while all of it is unchanged the content is
    taken to be unchanged (git's index makes the same bet)."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int

    @classmethod
    def of(cls, stat: os.stat_result) -> "FileStamp":
        return cls(stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


class PathRecord(NamedTuple):
    """The last content seen at a path; ``stamp`` is None when it was too fresh to trust.

    Stored as one JSON object per path: ``{"md5": ..., "size": ..., "mtime_ns": ...,
    "ctime_ns": ..., "inode": ...}`` (only ``md5`` for an untrusted stamp).
    """

    md5: str
    stamp: Optional[FileStamp]

    @classmethod
    def from_json(cls, raw: Any) -> Optional["PathRecord"]:
        """The record, or None when it is damaged (the file is then read again)."""
        try:
            md5 = raw["md5"]
            if "size" not in raw:
                return cls(md5, None)
            return cls(md5, FileStamp(raw["size"], raw["mtime_ns"], raw["ctime_ns"], raw["inode"]))
        except (KeyError, TypeError):
            return None

    def to_json(self) -> Dict[str, Any]:
        stamp = self.stamp
        if stamp is None:
            return {"md5": self.md5}
        return {"md5": self.md5, "size": stamp.size, "mtime_ns": stamp.mtime_ns, "ctime_ns": stamp.ctime_ns,
                "inode": stamp.inode}


class ContentRecord(NamedTuple):
    """What a manifest with some content defines (shared by every path holding it)."""

    definitions: List[Definition]
    error: Optional[str]

    @classmethod
    def from_json(cls, raw: Any) -> Optional["ContentRecord"]:
        """The record, or None when it is damaged (the file is then parsed again).
        Its definitions were made objects as the file was decoded (:func:`_definition`)."""
        try:
            definitions, error = raw["definitions"], raw["error"]
        except (KeyError, TypeError):
            return None
        if not isinstance(definitions, list) or not all(isinstance(d, Definition) for d in definitions):
            return None
        return cls(definitions, error if isinstance(error, str) else None)

    def to_json(self) -> Dict[str, Any]:
        definitions = [{"kind": d.kind, "name": d.name, "line": d.line, "declares": list(d.declares)}
                       for d in self.definitions]  # not dataclasses.asdict: 40 times slower (deep copies)
        return {"definitions": definitions, "error": self.error}


class ManifestFile:
    """One manifest as read: where (``relative`` to its module's ``manifests``), the
    MD5 of its bytes (None when unreadable) and what it defines. Small, as there
    is one per manifest of every environment: what it defines is shared by all
    files with the same content."""

    __slots__ = ("manifests_dir", "relative", "md5", "content")

    def __init__(self, manifests_dir: str, relative: str, md5: Optional[str], content: ContentRecord) -> None:
        self.manifests_dir = manifests_dir
        self.relative = relative
        self.md5 = md5
        self.content = content

    @property
    def path(self) -> str:
        return os.path.join(self.manifests_dir, self.relative)

    @property
    def definitions(self) -> List[Definition]:
        return self.content.definitions

    @property
    def error(self) -> Optional[str]:
        return self.content.error

    @property
    def classes(self) -> List[str]:
        """Names of the classes defined, in file order."""
        return [d.name for d in self.definitions if d.kind == "class"]


class ManifestCache:
    """Parse results by content, and the content last seen at each path, kept on disk.

    Records of a module's files are grouped under its ``manifests`` directory,
    so forgetting a module that is gone is one dictionary removal. Records are
    read from the file as plain JSON and turned into objects when first used.
    """

    VERSION = 2

    def __init__(self, cache: Optional["CacheDir"] = None, name: str = CACHE_FILENAME,
                 clock: Callable[[], int] = time.time_ns) -> None:
        """``cache``: the cache directory the file ``name`` is kept in (None: nothing kept)."""
        self.cache, self.name = cache, name
        self._now_ns = clock()
        self._paths: Dict[str, Dict[str, Optional[PathRecord]]] = {}  # manifests dir -> relative path -> record
        self._contents: Dict[str, Any] = {}  # md5 -> ContentRecord (or its JSON)
        self._seen: Dict[str, Set[str]] = {}  # manifests dir -> relative paths read this run
        self._complete: Set[str] = set()  # manifests dirs read whole this run
        self._md5s: Dict[str, str] = {}
        self._names: Dict[str, str] = {}
        # This run's listing of each manifests directory asked about, and what was read:
        # a lookup of a file that is not there costs a set lookup, not a stat (a hostile
        # PuppetDB's 20,000 deep class titles cost 1.6 million of them), and a file is
        # read once per run however many class names lead to it.
        self._listings: Dict[str, Dict[str, None]] = {}
        self.max_paths = MANIFESTS_RUN_MAX_PATHS  # all listings together
        self.paths_listed = 0
        self.over_count: List[str] = []  # manifests directories set aside for it
        self._read: Dict[Tuple[str, str], Optional[ManifestFile]] = {}
        self.dirty = False
        # what parsing manifests not known from the cache may cost this run, all together
        self.budget = RunBudget(MANIFESTS_RUN_CPU_SECONDS)
        # what the distinct contents used this run may weigh, parsed or from the cache
        self.output_budget = MANIFESTS_RUN_OUTPUT_BYTES
        self.output_spent = 0
        self._counted: Set[str] = set()  # md5s whose weight is in output_spent
        self.output_full = False  # a content did not fit: no other new one is used (or parsed)
        self.over_output: List[str] = []  # paths set aside for it
        if cache is not None:
            self._load(cache)

    def _load(self, cache: "CacheDir") -> None:
        try:
            data = load_json(cache.read_bytes(self.name, MAX_CACHE_BYTES), MAX_CACHE_BYTES, max_depth=None,
                             max_values=MAX_CACHE_VALUES, object_hook=self._decode)
        except (OSError, ValueError):
            return  # no cache yet, or a damaged one: start afresh
        if (
            isinstance(data, dict)
            and data.get("version") == self.VERSION
            and data.get("parser") == _PARSER_ID
            and isinstance(data.get("paths"), dict)
            and isinstance(data.get("contents"), dict)
            and all(isinstance(records, dict) for records in data["paths"].values())
        ):
            self._paths, self._contents = data["paths"], data["contents"]

    def _decode(self, raw: Dict[str, Any]) -> Any:
        """Path records become objects as they are decoded (a dict each would take
        twice the memory: there is one per manifest of every environment); a
        damaged one becomes None, so its file is read again."""
        if raw.keys() == _DEFINITION_KEYS:
            return _definition(raw)
        if "md5" not in raw:
            return raw
        record = PathRecord.from_json(raw)
        if record is None or not isinstance(record.md5, str):
            return None
        return record._replace(md5=self._md5s.setdefault(record.md5, record.md5))

    def module(self, manifests_dir: Path) -> List[ManifestFile]:
        """Every manifest of a module's ``manifests`` directory, in autoload order."""
        listing = self._listing(str(manifests_dir), manifests_dir)
        files = [self.read(manifests_dir, relative) for relative in listing]
        self._complete.add(str(manifests_dir))
        return [found for found in files if found is not None]

    def listed(self, manifests_dir: Path, candidates: List[str]) -> List[str]:
        """Those of ``candidates`` (paths under ``manifests``) the directory has, from
        this run's listing of it: a name that leads nowhere costs a set lookup."""
        listing = self._listing(str(manifests_dir), manifests_dir)
        return [relative for relative in candidates if relative in listing]

    def _listing(self, key: str, manifests_dir: Path) -> Dict[str, None]:
        """This run's listing of a ``manifests`` directory, in autoload order (a dict as
        an ordered set); empty when the run's count of manifest paths has no room for it."""
        listing = self._listings.get(key)
        if listing is None:
            found = module_manifests(manifests_dir, self.max_paths - self.paths_listed)
            if found is None:
                self.over_count.append(key)
                found = []
            self.paths_listed += len(found)
            names = self._names  # one string per relative path, however many copies of the module there are
            listing = self._listings[key] = {names.setdefault(relative, relative): None for relative in found}
        return listing

    def read(self, manifests_dir: Path, relative: str) -> Optional[ManifestFile]:
        """One manifest of a module by its path under ``manifests``; None when there
        is no such file (or the path would lead out of ``manifests``). ``manifests_dir``
        is ``<the module's real directory>/manifests``: a file whose real path is
        outside that module is not read (an error says so)."""
        if os.path.isabs(relative) or ".." in relative.split("/"):
            return None
        key = str(manifests_dir)
        if relative not in self._listing(key, manifests_dir):
            records = self._paths.get(key)
            if records is not None and records.pop(relative, None) is not None:
                self.dirty = True  # a file gone since the last run
            return None
        if (key, relative) not in self._read:
            self._read[(key, relative)] = self._read_file(key, relative)
        return self._read[(key, relative)]

    def _read_file(self, key: str, relative: str) -> Optional[ManifestFile]:
        """One manifest, from the records when its stat is unchanged, else read and parsed."""
        path = os.path.join(key, relative)
        records = self._paths.setdefault(key, {})
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            if records.pop(relative, None) is not None:
                self.dirty = True
            return None
        except OSError as exc:
            return ManifestFile(key, relative, None, ContentRecord([], f"cannot read: {exc.strerror or exc}"))
        if not S_ISREG(stat.st_mode):
            return None  # a directory or a device is no manifest (and a FIFO would block the read)
        self._seen.setdefault(key, set()).add(relative)
        stamp = FileStamp.of(stat)
        known = self._record(records, relative)
        if known is not None and known.stamp == stamp:
            content = self._content(known.md5)
            if content is not None:
                if not self._admitted(known.md5, content):
                    return self._set_aside_for_output(key, relative)
                return ManifestFile(key, relative, known.md5, content)
        data, error = _read_bytes(path, os.path.dirname(key))  # the module's real directory
        if data is None:
            self.dirty = records.pop(relative, None) is not None or self.dirty
            return ManifestFile(key, relative, None, ContentRecord([], error))
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        md5 = self._md5s.setdefault(md5, md5)
        content = self._content(md5)
        if content is None and self.output_full:
            return self._set_aside_for_output(key, relative)
        if content is None:
            if self.budget.exhausted:  # set aside, and nothing kept: a later run reads it
                self.budget.set_aside.append(path)
                return ManifestFile(key, relative, None, ContentRecord([], SET_ASIDE_BY_RUN_BUDGET))
            with self.budget.charge():
                info = read_manifest_data(data)
            content = ContentRecord(info.definitions, info.error)
            if not self._admitted(md5, content):  # nothing kept either
                return self._set_aside_for_output(key, relative)
            self._contents[md5] = content
        elif not self._admitted(md5, content):
            return self._set_aside_for_output(key, relative)
        fresh = max(stat.st_mtime_ns, stat.st_ctime_ns) > self._now_ns - RACY_WINDOW_NS
        record = records[relative] = PathRecord(md5, None if fresh else stamp)
        self.dirty = self.dirty or record != known
        return ManifestFile(key, relative, md5, content)

    def _admitted(self, md5: str, content: ContentRecord) -> bool:
        """Whether the run's output budget has room for this content (counted once
        per content, however many paths hold it)."""
        if md5 in self._counted:
            return True
        weight = output_bytes(content.definitions)
        if self.output_full or self.output_spent + weight > self.output_budget:
            self.output_full = True  # what comes later is set aside unread, as a spent CPU budget does
            return False
        self.output_spent += weight
        self._counted.add(md5)
        return True

    def _set_aside_for_output(self, key: str, relative: str) -> ManifestFile:
        """A manifest the run's output budget has no room for: it defines nothing."""
        self.over_output.append(os.path.join(key, relative))
        return ManifestFile(key, relative, None, ContentRecord([], SET_ASIDE_BY_RUN_OUTPUT))

    @staticmethod
    def _record(records: Dict[str, Any], relative: str) -> Optional[PathRecord]:
        record = records.get(relative)
        return record if isinstance(record, PathRecord) else None

    def _content(self, md5: str) -> Optional[ContentRecord]:
        raw = self._contents.get(md5)
        if raw is None or isinstance(raw, ContentRecord):
            return raw
        content = self._contents[md5] = ContentRecord.from_json(raw)
        return content

    def warn_set_aside(self) -> None:
        """One warning per run-wide budget for all the manifests it set aside (there may be thousands)."""
        paths = self.budget.set_aside
        if paths:
            log.warning("%d manifests set aside, not read (their classes are not public): this run's parsing of "
                        "manifests took more than %g s of CPU time (MANIFESTS_RUN_CPU_SECONDS): %s",
                        len(paths), self.budget.seconds, _named(paths))
        if self.over_count:
            log.warning("%d modules' manifests set aside, not read (their classes are not public): this run lists "
                        "at most %d manifests (MANIFESTS_RUN_MAX_PATHS): %s",
                        len(self.over_count), self.max_paths, _named(self.over_count))
        if self.over_output:
            log.warning("%d manifests set aside (their classes are not public): the names of all the manifests "
                        "of this run weigh more than %d KiB (MANIFESTS_RUN_OUTPUT_BYTES): %s",
                        len(self.over_output), self.output_budget // 1024, _named(self.over_output))

    def save(self, installed: Iterable[Path]) -> None:
        """Write the cache back when anything changed, keeping only the records of
        the ``installed`` modules' ``manifests`` directories; a read-only cache
        directory is not an error."""
        self._forget_gone({str(directory) for directory in installed})
        if self.cache is None or not self.dirty:
            return
        try:
            self.cache.write(self.name, self._serialized(), mode=0o600)
        except OSError as exc:
            log.debug("not saving the manifest cache: %s", exc)
        self.dirty = False

    def _serialized(self) -> Iterator[bytes]:
        """The cache as JSON, one module's records at a time, so that no second copy
        of every record is held in memory; damaged records are left out."""
        head = {"version": self.VERSION, "parser": _PARSER_ID}
        yield json.dumps(head, separators=(",", ":"))[:-1].encode() + b',"paths":{'
        used: Set[str] = set()
        for index, (key, records) in enumerate(sorted(self._paths.items())):
            kept: Dict[str, Any] = {}
            for relative in sorted(records):
                record = self._record(records, relative)
                if record is not None and self._content(record.md5) is not None:
                    kept[relative] = record.to_json()
                    used.add(record.md5)
            separator = b"," if index else b""
            yield separator + f"{json.dumps(key)}:{json.dumps(kept, separators=(',', ':'))}".encode()
        contents = {md5: content.to_json() for md5 in sorted(used) if (content := self._content(md5)) is not None}
        yield b'},"contents":' + json.dumps(contents, separators=(",", ":")).encode() + b"}"

    def _forget_gone(self, installed: Set[str]) -> None:
        """Drop the records of modules no longer installed and of files a module
        read whole no longer has."""
        for key in list(self._paths):
            records = self._paths[key]
            if key not in installed:
                del self._paths[key]
                self.dirty = self.dirty or bool(records)
            elif key in self._complete and len(records) != len(self._seen.get(key, ())):
                seen = self._seen.get(key, set())
                gone = [relative for relative in records if relative not in seen]
                for relative in gone:
                    del records[relative]
                self.dirty = self.dirty or bool(gone)  # files set aside are seen, not recorded


def _named(paths: List[str]) -> str:
    """The first MAX_NAMED paths, and how many more."""
    more = f" and {len(paths) - MAX_NAMED} more" if len(paths) > MAX_NAMED else ""
    return ", ".join(paths[:MAX_NAMED]) + more


_DEFINITION_KEYS = frozenset({"kind", "name", "line", "declares"})


def _definition(raw: Dict[str, Any]) -> Optional[Definition]:
    """A definition read back from the file, as compact as the reader's own (a dict
    each, until first used, made a warm run's memory twice a cold one's); None
    when it lacks the types the reader gives (its file is then read again)."""
    kind, name, line, declares = raw["kind"], raw["name"], raw["line"], raw["declares"]
    if (
        kind not in ("class", "define")
        or not isinstance(name, str)
        or not isinstance(line, int)
        or not isinstance(declares, list)
        or not all(isinstance(declared, str) for declared in declares)
    ):
        return None
    return Definition(sys.intern(kind), sys.intern(name), line, tuple(sys.intern(declared) for declared in declares))


def _parser_id() -> str:
    """Identifies the manifest reader's code, so results of an older reader are not reused."""
    try:
        return hashlib.md5(Path(manifests.__file__).read_bytes(), usedforsecurity=False).hexdigest()
    except OSError:
        return __version__


_PARSER_ID = _parser_id()
