"""Puppetfile results by content, kept across runs.

r10k deploys one copy of the control repository per environment, so a site's
Puppetfiles are a few distinct contents repeated dozens of times, and they
change rarely. Parsing one costs tree-sitter's import and a parse (about
0.3 s of a 0.6 s warm preview for 40 environments); reading one and hashing it
costs almost nothing. So, like the manifest cache, results are kept by the
MD5 of the file's bytes in ``$cachepath/puppetfiles.json``, with the reader's
own identity (its code and the Ruby grammar's version): a run whose
Puppetfiles are all known never imports tree-sitter.

The file holds only the contents seen in the last run (a Puppetfile edited
away is forgotten), is written atomically when it changed, and a damaged one
is ignored. A refusal (a syntax error, or a Puppetfile over its CPU budget) is
kept too: a hostile file costs its budget once, not at every run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional

from dropsonde import __version__
from dropsonde.cpu_budget import PUPPETFILES_RUN_CPU_SECONDS, RunBudget

if TYPE_CHECKING:
    from dropsonde.cache_dir import CacheDir


CACHE_FILENAME = "puppetfiles.json"
# Records are a few hundred bytes per distinct Puppetfile; a hostile one's names are
# bounded by its own size (4 MiB), so this is room for a few such and hundreds of real ones.
MAX_CACHE_BYTES = 64 * 1024 * 1024


class PuppetfileResult(NamedTuple):
    """What one Puppetfile content calls: each command's name with how often, the
    methods it defines, or why it was refused (``error``; then nothing else)."""

    counts: Dict[str, int]
    defined_methods: List[str]
    error: Optional[str] = None

    def to_json(self) -> Dict[str, Any]:
        if self.error is not None:
            return {"error": self.error}
        return {"counts": self.counts, "defined_methods": self.defined_methods}

    @classmethod
    def from_json(cls, raw: Any) -> Optional["PuppetfileResult"]:
        """The record, or None when it is damaged (the Puppetfile is then parsed again)."""
        if not isinstance(raw, dict):
            return None
        if isinstance(raw.get("error"), str):
            return cls({}, [], raw["error"])
        counts, defined = raw.get("counts"), raw.get("defined_methods")
        if not (isinstance(counts, dict) and isinstance(defined, list)
                and all(isinstance(n, str) and type(c) is int and c > 0 for n, c in counts.items())
                and all(isinstance(name, str) for name in defined)):
            return None
        return cls(counts, defined)


def parse_puppetfile(source: bytes) -> PuppetfileResult:
    """Parse one Puppetfile (tree-sitter is imported here, on the first miss only)."""
    from dropsonde.puppet.puppetfile import PuppetfileSyntaxError, read_puppetfile_source

    try:
        calls = read_puppetfile_source(source)
    except PuppetfileSyntaxError as exc:
        return PuppetfileResult({}, [], str(exc))
    counts: Dict[str, int] = {}
    for name in calls.commands:
        counts[name] = counts.get(name, 0) + 1
    return PuppetfileResult(counts, sorted(calls.defined_methods))


class PuppetfileCache:
    """Puppetfile results by the MD5 of their bytes, loaded from and saved to the cache directory."""

    VERSION = 1

    def __init__(self, cache: Optional["CacheDir"] = None) -> None:
        """``cache``: the cache directory (None: nothing is kept)."""
        self.cache = cache
        self._known: Dict[str, Any] = {}  # md5 -> record JSON, as loaded
        self._used: Dict[str, PuppetfileResult] = {}  # md5 -> result, this run
        self.parsed = 0  # contents parsed this run (the others came from the cache)
        self.budget = RunBudget(PUPPETFILES_RUN_CPU_SECONDS)
        if cache is not None:
            self._load(cache)

    def _stamp(self) -> Dict[str, Any]:
        return {"version": self.VERSION, "parser": _PARSER_ID}

    def _load(self, cache: "CacheDir") -> None:
        data = cache.read_stamped(CACHE_FILENAME, MAX_CACHE_BYTES, self._stamp())
        if data is not None and isinstance(data.get("contents"), dict):  # else none yet: start afresh
            self._known = data["contents"]

    def result(self, source: bytes) -> Optional[PuppetfileResult]:
        """What the Puppetfile with these bytes calls, from the cache or parsed now;
        None when it would have to be parsed and this run's budget for parsing
        Puppetfiles (PUPPETFILES_RUN_CPU_SECONDS) is spent (nothing is kept of it:
        a later run may read it)."""
        md5 = hashlib.md5(source, usedforsecurity=False).hexdigest()
        found = self._used.get(md5)
        if found is None:
            found = PuppetfileResult.from_json(self._known.get(md5))
            if found is None:
                if self.budget.exhausted:
                    return None
                with self.budget.charge():
                    found = parse_puppetfile(source)
                self.parsed += 1
            self._used[md5] = found
        return found

    def save(self) -> None:
        """Write the results of this run's Puppetfiles when they differ from the file's;
        a read-only cache directory is not an error."""
        if self.cache is None:
            return
        contents = {md5: result.to_json() for md5, result in sorted(self._used.items())}
        if contents == self._known:
            return
        self.cache.write_stamped(CACHE_FILENAME, self._stamp(), {"contents": contents})


def _parser_id() -> str:
    """Identifies the Puppetfile reader: its code and the grammar's version, so that
    results of another reader are never reused (found without importing tree-sitter)."""
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.md5(usedforsecurity=False)
    try:
        digest.update(Path(__file__).with_name("puppetfile.py").read_bytes())
    except OSError:
        digest.update(__version__.encode())
    for package in ("tree-sitter", "tree-sitter-ruby"):
        try:
            digest.update(f"{package}={version(package)}".encode())
        except PackageNotFoundError:
            digest.update(package.encode())
    return digest.hexdigest()


_PARSER_ID = _parser_id()
