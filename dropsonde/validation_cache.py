"""Schema verdicts by content, kept across runs.

Every plugin's data is checked against its JSON Schema by jsonschema, and
importing jsonschema costs more than the checks themselves: about 40 ms, a
quarter of a warm preview's CPU time on bench/ruby.py's trees. A warm run's
data is nearly always what the last run checked, so the SHA-256 of each
(JSON Schema, data) pair found valid is kept in ``$cachepath/validated.json``,
and a pair found valid before is not checked again: a run whose every pair is
known never imports jsonschema.

A verdict is a pure function of the schema and the data for one validator, so
the file names the validator (jsonschema's version and the code that sets it
up) and another one starts afresh. Only data made of exactly JSON's own types is remembered: a tuple or
a str subclass encodes like a list or a str but is not one to the validator,
so such data is always checked. Only valid verdicts are kept (an invalid one
is checked again, so the warning names the error), only those of the last run,
written atomically when they changed; a damaged file is ignored.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Set

from dropsonde import __version__
from dropsonde.schema import schema_validator

if TYPE_CHECKING:
    from dropsonde.cache_dir import CacheDir


CACHE_FILENAME = "validated.json"
# One 64-hex-digit digest per plugin of the last run: a few KiB; the cap only bounds a planted file.
MAX_CACHE_BYTES = 1024 * 1024
# Deeper data is not remembered (so never walked recursively): real plugin data is 3 levels deep.
MAX_DEPTH = 64

_SCALARS = (str, int, float, bool, type(None))


def plain_json(value: Any) -> bool:
    """Whether ``value`` is made of exactly dict (with str keys), list, str, int,
    float, bool and None, no deeper than MAX_DEPTH: data whose JSON encoding
    stands for it alone."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        kind = type(item)
        if kind in _SCALARS:
            continue
        if depth >= MAX_DEPTH:
            return False
        if kind is list:
            pending.extend((element, depth + 1) for element in item)
        elif kind is dict:
            if any(type(key) is not str for key in item):
                return False
            pending.extend((element, depth + 1) for element in item.values())
        else:
            return False
    return True


def verdict_key(json_schema: Any, data: Any) -> Optional[str]:
    """The SHA-256 naming the pair, or None when the data is not plain JSON (or not
    finite: NaN is not JSON) and so must always be checked."""
    if not plain_json(data):
        return None
    try:
        encoded = json.dumps([json_schema, data], sort_keys=True, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return None
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


class Verdicts:
    """The pairs found valid by the last run, and those found valid by this one."""

    VERSION = 1

    def __init__(self, cache: Optional["CacheDir"] = None) -> None:
        """``cache``: the cache directory (None: nothing is remembered)."""
        self.cache = cache
        self._known: Set[str] = set()
        self._valid: Set[str] = set()
        self.checked = 0  # pairs checked by jsonschema this run (the others were known)
        if cache is not None:
            self._load(cache)

    def _stamp(self) -> Dict[str, Any]:
        return {"version": self.VERSION, "validator": _validator_id()}

    def _load(self, cache: "CacheDir") -> None:
        data = cache.read_stamped(CACHE_FILENAME, MAX_CACHE_BYTES, self._stamp())
        if data is not None and isinstance(data.get("valid"), list):  # else none yet: check everything
            self._known = {key for key in data["valid"] if isinstance(key, str)}

    def check(self, json_schema: Any) -> "RememberingValidator":
        """A validator of ``json_schema`` that consults and feeds these verdicts."""
        return RememberingValidator(json_schema, self)

    def known_valid(self, key: str) -> bool:
        if key in self._known or key in self._valid:
            self._valid.add(key)
            return True
        return False

    def add(self, key: str) -> None:
        self._valid.add(key)

    def save(self) -> None:
        """Write this run's valid pairs when they differ from the file's; a
        read-only cache directory is not an error."""
        if self.cache is None or self._valid == self._known:
            return
        self.cache.write_stamped(CACHE_FILENAME, self._stamp(), {"valid": sorted(self._valid)})


class RememberingValidator:
    """``iter_errors`` as jsonschema's validators have it, answering from the
    verdicts when the pair is known; jsonschema's validator is built (and the
    library imported) on the first pair that is not."""

    def __init__(self, json_schema: Any, verdicts: Verdicts) -> None:
        self.json_schema = json_schema
        self.verdicts = verdicts
        self._validator: Any = None

    def iter_errors(self, data: Any) -> Iterator[Any]:
        key = verdict_key(self.json_schema, data)
        if key is not None and self.verdicts.known_valid(key):
            return iter(())
        if self._validator is None:
            self._validator = schema_validator(self.json_schema)
        self.verdicts.checked += 1
        errors: List[Any] = list(self._validator.iter_errors(data))
        if not errors and key is not None:
            self.verdicts.add(key)
        return iter(errors)


@functools.lru_cache(maxsize=None)
def _validator_id() -> str:
    """Names the validator: jsonschema's version (read from its metadata, without
    importing it) and the code choosing how it validates (``dropsonde/schema.py``)."""
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.md5(usedforsecurity=False)
    try:
        digest.update(Path(__file__).with_name("schema.py").read_bytes())
    except OSError:
        digest.update(__version__.encode())
    try:
        digest.update(f"jsonschema={version('jsonschema')}".encode())
    except PackageNotFoundError:
        digest.update(b"jsonschema")
    return digest.hexdigest()
