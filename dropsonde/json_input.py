"""The one way JSON that someone else wrote is read: metadata.json, forge.json
(the cache and ``update --from-file``), answers of the Forge API and of
PuppetDB, Forge release records, and our own state files.

``json.loads`` alone has three failure modes a reader would each have to
remember: a ``RecursionError`` for deep nesting (one C call per level: 100,000
``[`` end the run as an internal error), ``NaN`` and ``Infinity`` accepted
though JSON has neither, and memory out of proportion to the input (``[[],[],...]``
costs about 20 times its size in Python objects). :func:`load_json` bounds all
three before or while decoding, and every refusal is one :class:`InvalidJSON`
whose message fits after "<file>: " or "the answer is ":

- size: at most ``max_bytes`` (the caller's limit for that kind of input);
- values: at most ``max_values`` arrays, objects and elements, counted on the
  raw bytes before anything is decoded (an over-estimate: a comma inside a
  string counts too), which is what bounds the memory a document can take;
- depth: at most ``max_depth`` levels of arrays and objects, measured on the
  raw bytes (strings left out) before decoding, so the decoder never goes deep: a garbage collection while it
  was a thousand C calls down ran finalizers with no stack left ("Exception
  ignored in ...: RecursionError" on stderr).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable, Dict, Optional, Union

#: Levels of arrays and objects. Real inputs nest at most 7 (a Forge module
#: page: results, module, current_release, metadata, dependencies, entry); the
#: decoder itself gives up near 1,000 with a RecursionError.
MAX_JSON_DEPTH = 32
#: Values (arrays, objects and their elements) in one document, unless the
#: caller sets its own: a Forge page of 100 modules has about 5,000, the
#: largest real answers (a PuppetDB class list of a 10,000-class site) some
#: 30,000. At about 100 bytes of Python object per small value, a document at
#: the limit costs some 100 MB at most.
MAX_JSON_VALUES = 1_000_000


#: a string, or an unterminated one up to the end (so that no position is scanned twice)
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"?', re.DOTALL)
_BRACKETS = bytes.maketrans(b"[{]}", b"(())")
_INNERMOST = re.compile(rb"\(\)")
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"()")


class InvalidJSON(ValueError):
    """JSON that is not read; ``str()`` is the reason, without the file's name."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    """A JSON number as a float; one too large for a float (``1e999``) would become infinity."""
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"number out of range: {text[:20]}")
    return value


def load_json(
    data: Union[bytes, str],
    max_bytes: int,
    *,
    max_depth: Optional[int] = MAX_JSON_DEPTH,
    max_values: int = MAX_JSON_VALUES,
    object_hook: Optional[Callable[[Dict[str, Any]], Any]] = None,
) -> Any:
    """The value of the JSON document ``data`` (UTF-8 when bytes); InvalidJSON
    when it is too large, holds too many values, nests too deeply or is not
    strict JSON (``NaN``, ``Infinity``, ``1e999``, a BOM, a lone surrogate escape are refused).
    ``max_depth`` None: no depth check beyond the decoder's own (a RecursionError is still
    refused), for our own cache files, whose walk would cost more than it guards."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise InvalidJSON(f"larger than {max_bytes} bytes")
    values = raw.count(b",") + raw.count(b"[") + raw.count(b"{")
    if values > max_values:
        raise InvalidJSON(f"made of more than {max_values} values")
    if max_depth is not None and _brackets_deeper_than(raw, max_depth):
        raise InvalidJSON(f"nested more than {max_depth} levels deep")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidJSON("not valid UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float, object_hook=object_hook)
    except RecursionError:
        raise InvalidJSON(f"nested more than {max_depth or 'a thousand'} levels deep") from None
    except ValueError as exc:  # json.JSONDecodeError, and an integer of more than 4,300 digits
        reason = str(exc).splitlines()[0][:100] if str(exc) else "malformed"
        raise InvalidJSON(f"not valid JSON ({reason})") from None
    if "\\ud" in text.lower() and _has_lone_surrogate(value):
        raise InvalidJSON("not valid JSON (a lone surrogate escape)")
    return value


def _brackets_deeper_than(raw: bytes, limit: int) -> bool:
    """Whether the arrays and objects of ``raw`` (strings left out) open more than
    ``limit`` levels: each pass removes the innermost pairs, so ``limit`` passes
    empty any complete document that nests no deeper, in linear time each; one
    they do not empty is walked once."""
    brackets = _STRING.sub(b"", raw).translate(_BRACKETS).translate(None, _NOT_BRACKETS)
    left = brackets
    for _ in range(limit):
        if not left:
            return False
        left = _INNERMOST.sub(b"", left)
    if not left:
        return False
    depth = 0  # deeper pairs, or a document cut short (the decoder says so): walked whole, once
    for bracket in brackets:
        depth += 1 if bracket == ord("(") else -1
        if depth > limit:
            return True
    return False


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a string anywhere in ``value`` holds a lone surrogate (``"\\ud800"``),
    which no file or terminal can encode: writing it out would fail later."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False
