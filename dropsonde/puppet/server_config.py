"""Puppet Server's own configuration: every ``*.conf`` HOCON file of its
conf.d, merged as Puppet Server merges them.

Two things come from there: whether the admin opted in to scheduled
submission (``dropsonde { enabled: true }``, with ``interval``), and, when run
as ``puppetserver dropsonde``, which Puppet directories the server uses
(``jruby-puppet.server-*-dir``, or the legacy ``master-*-dir``).

conf.d is read as untrusted input, like the code tree. HOCON's ``include`` could
fetch a URL (``include "http://..."`` as much as ``include url(...)``), read any
file (``file:``, an absolute path, ``../fifo``, ``/dev/zero``) or include itself
forever, and pyhocon does each of those when asked. So every include is found
and checked first (:func:`_includes`): only a quoted plain relative path to a
file inside conf.d is followed, read through the bounded tree-file reader (no
FIFO, no device, size cap), at most ``MAX_INCLUDES`` of them and never in a
cycle; anything else is an error naming the file and line. pyhocon then parses
a staged copy of those files, never the originals.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Optional, Tuple

from dropsonde.cpu_budget import CONFD_RUN_CPU_SECONDS, CONFIG_CPU_SECONDS, OverBudget, cpu_budget
from dropsonde.errors import BadInput
from dropsonde.memory_budget import CONFIG_MEMORY_BYTES, OverMemoryBudget, memory_budget
from dropsonde.tree_files import read_tree_file

DEFAULT_INTERVAL = 604800  # seconds: a week, Puppet Server's default
# Longer than this is no schedule (and 10**23 seconds overflowed the date arithmetic).
MAX_INTERVAL = 10 * 366 * 86400

CONFD_BY_LAYOUT = {
    "aio": "/etc/puppetlabs/puppetserver/conf.d",
    "debian": "/etc/puppet/puppetserver/conf.d",
    "user": "~/.puppetlabs/etc/puppetserver/conf.d",
}
# Where Puppet Server keeps Puppet's directories when conf.d does not say.
SERVER_DIRS_BY_LAYOUT = {
    "aio": {"confdir": "/etc/puppetlabs/puppet", "codedir": "/etc/puppetlabs/code",
            "vardir": "/opt/puppetlabs/server/data/puppetserver", "logdir": "/var/log/puppetlabs/puppetserver"},
    "debian": {"confdir": "/etc/puppet", "codedir": "/etc/puppet/code",
               "vardir": "/var/lib/puppetserver", "logdir": "/var/log/puppetserver"},
    "user": {"confdir": "~/.puppetlabs/etc/puppet", "codedir": "~/.puppetlabs/etc/code",
             "vardir": "~/.puppetlabs/opt/puppetserver", "logdir": "~/.puppetlabs/var/log"},
}
_DIR_KEYS = {"confdir": "conf-dir", "codedir": "code-dir", "vardir": "var-dir", "logdir": "log-dir"}
#: Includes followed from one conf.d file, nested ones counted: Puppet Server's own
#: conf.d has none; every include is one more file read and parsed.
MAX_INCLUDES = 32
# Every `include` keyword (pyhocon's is caseless), wherever it stands: one in a comment
# or a string is looked at too, and is harmless unless an include form follows it.
_INCLUDE_RE = re.compile(r"(?<![A-Za-z0-9_$])include(?![A-Za-z0-9_$])", re.IGNORECASE)
# What pyhocon reads after `include` (blanks and line breaks allowed between the parts).
_QUOTED_RE = re.compile(r'\s*"((?:[^"\\\n]|\\.)*)"')
_REQUIRED_QUOTED_RE = re.compile(r'\s*required\s*\(\s*"((?:[^"\\\n]|\\.)*)"\s*\)')
_OTHER_FORM_RE = re.compile(r"\s*(?:required\s*\(\s*)?(url|file|package|classpath)\s*\(", re.IGNORECASE)
# A plain relative file name: no scheme, no glob, no escape, nothing pyhocon reads differently.
_PLAIN_PATH_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.@+-]*(?:/[A-Za-z0-9_.][A-Za-z0-9_.@+-]*)*")


# The only keys dropsonde reads from conf.d; everything else each file holds is dropped.
_USED_KEYS = ("dropsonde.enabled", "dropsonde.interval") + tuple(
    f"jruby-puppet.{prefix}-{key}" for key in _DIR_KEYS.values() for prefix in ("server", "master"))
_ABSENT = object()


@dataclass
class ServerConfig:
    """What dropsonde reads from Puppet Server's conf.d."""

    enabled: bool = False
    interval: int = DEFAULT_INTERVAL
    directories: Dict[str, str] = field(default_factory=dict)
    files: int = 0


def _read_text(path: Path, within: Optional[str]) -> str:
    """One conf.d file's text, read as any untrusted file is (tree_files)."""
    try:
        return read_tree_file(path, "conf.d file", within=within).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None


def _includes(path: Path, text: str) -> List[Tuple[str, int]]:
    """The files ``text`` includes, as (relative path, line); BadInput naming
    ``path`` and the line for any include but a quoted plain relative path."""
    found = []
    for keyword in _INCLUDE_RE.finditer(text):
        end = keyword.end()
        line = text.count("\n", 0, keyword.start()) + 1
        other = _OTHER_FORM_RE.match(text, end)
        if other is not None:
            raise BadInput(f"{path}:{line}: include {other.group(1).lower()}(...): dropsonde follows only "
                           "includes of plain relative files inside conf.d (no URL, no file:, no classpath)")
        quoted = _QUOTED_RE.match(text, end) or _REQUIRED_QUOTED_RE.match(text, end)
        if quoted is None:
            continue  # the word "include" in a comment, a string or a key: no include
        target = quoted.group(1)
        parts = PurePosixPath(target).parts
        if not _PLAIN_PATH_RE.fullmatch(target) or ".." in parts:
            raise BadInput(f"{path}:{line}: include {target[:80]!r}: dropsonde follows only includes of plain "
                           "relative files inside conf.d (no URL, no absolute path, no '..', no glob)")
        found.append((target, line))
    return found


def _stage(path: Path, confd: Path, real_confd: str, staging: Path, chain: Tuple[Path, ...], count: List[int]) -> str:
    """Copy ``path`` and what it includes (checked, bounded, never in a cycle) into
    ``staging``, at the same place relative to conf.d; return its text. conf.d's
    own files may be links to elsewhere (the admin put them there); an included
    one must really be inside conf.d."""
    text = _read_text(path, real_confd if chain else None)
    relative = path.relative_to(confd)
    for target, line in _includes(path, text):
        included = path.parent / target
        if included in chain or included == path:
            raise BadInput(f"{path}:{line}: include {target!r} includes itself (through {included})")
        count[0] += 1
        if count[0] > MAX_INCLUDES:
            raise BadInput(f"{path}:{line}: more than {MAX_INCLUDES} includes (MAX_INCLUDES)")
        if not os.path.lexists(included):
            continue  # pyhocon skips a missing optional include, and so does Puppet Server
        _stage(included, confd, real_confd, staging, chain + (path,), count)
    copy = staging / relative
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(text, encoding="utf-8")
    return text


def _parse(path: Path, confd: Path) -> Any:
    """One conf.d file parsed, with its includes (from a staged copy), within CONFIG_CPU_SECONDS."""
    from pyhocon import ConfigFactory

    real_confd = os.path.realpath(confd)
    with tempfile.TemporaryDirectory(prefix="dropsonde-confd-") as staging:
        text = _stage(path, confd, real_confd, Path(staging), (), [0])
        basedir = str(Path(staging) / path.relative_to(confd).parent)
        try:
            with cpu_budget(CONFIG_CPU_SECONDS):
                return _used_keys(path, ConfigFactory.parse_string(text, basedir=basedir, resolve=True))
        except OverBudget as exc:
            raise BadInput(f"{path}: not read: parsing it took {exc} (CONFIG_CPU_SECONDS)") from None
        except MemoryError:
            raise BadInput(f"{path}: not read: parsing it took {OverMemoryBudget(CONFIG_MEMORY_BYTES)} "
                           "(CONFIG_MEMORY_BYTES, all of conf.d together)") from None
        except BadInput:
            raise
        except RecursionError:
            raise BadInput(f"{path}: not valid HOCON: nested too deeply") from None
        except Exception as exc:  # pyhocon raises pyparsing and its own errors
            reason = str(exc).replace(staging, str(confd)).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise BadInput(f"{path}: not valid HOCON: {reason}") from None


def _used_keys(path: Path, tree: Any) -> Dict[str, Any]:
    """The values of :data:`_USED_KEYS` one file sets: the rest of its tree is
    dropped before the next file is parsed, so what is kept does not grow with
    the number of files (twelve files each just under the memory budget kept
    1.27 GB when every file's tree was merged)."""
    found: Dict[str, Any] = {}
    for key in _USED_KEYS:
        try:
            value = tree.get(key, _ABSENT)
        except Exception:  # pyhocon's ConfigWrongTypeException: a parent of the key is no object
            raise BadInput(f"{path}: {key}: {key.rsplit('.', 1)[0]} is not an object") from None
        if value is not _ABSENT:
            found[key] = value
    return found


class _AllFilesOverBudget(BaseException):
    """conf.d's run-wide CPU budget ran out: a BaseException, so that no parser's
    ``except Exception`` (nor ours, which names one file) takes it for that file's fault."""


def _read_tree(confd: Path, cpu_seconds: float = CONFD_RUN_CPU_SECONDS) -> Tuple[Dict[str, Any], int]:
    """The used keys of every conf.d file, later files overriding earlier ones (as
    Puppet Server merges them), all read within ONE memory budget, measured
    before the first file, and one CPU budget: a budget per file let the total
    grow with the files."""
    merged: Dict[str, Any] = {}
    files = sorted(confd.glob("*.conf")) if confd.is_dir() else []
    try:
        with memory_budget(CONFIG_MEMORY_BYTES), cpu_budget(cpu_seconds, _AllFilesOverBudget):
            for path in files:
                merged.update(_parse(path, confd))
    except _AllFilesOverBudget:
        raise BadInput(f"{confd}: not read: its {len(files)} files took more than {cpu_seconds:g} s of CPU "
                       "time together (CONFD_RUN_CPU_SECONDS)") from None
    return merged, len(files)


def read_server_config(confd: Path, layout: str) -> ServerConfig:
    """Merge ``confd/*.conf``; absent ``dropsonde.enabled`` means not enabled (opt-in).

    Puppet Server itself treats an absent ``enabled`` as true since 7.7; we
    deliberately do not: nothing is sent unless the admin said so.
    """
    tree, files = _read_tree(Path(confd).expanduser())
    config = ServerConfig(files=files)
    enabled = tree.get("dropsonde.enabled", False)
    if isinstance(enabled, str) and enabled.lower() in ("true", "false"):
        enabled = enabled.lower() == "true"
    if not isinstance(enabled, bool):
        raise BadInput(f"{confd}: dropsonde.enabled: expected true or false, got {str(enabled)[:40]!r}")
    config.enabled = enabled
    interval = tree.get("dropsonde.interval", DEFAULT_INTERVAL)
    if isinstance(interval, str) and interval.isdigit() and len(interval) <= 20:
        interval = int(interval)
    if isinstance(interval, bool) or not isinstance(interval, int) or not 0 < interval <= MAX_INTERVAL:
        raise BadInput(f"{confd}: dropsonde.interval: expected a positive number of seconds up to "
                       f"{MAX_INTERVAL} (ten years), got {str(interval)[:40]!r}")
    config.interval = interval
    defaults = SERVER_DIRS_BY_LAYOUT[layout]
    for name, key in _DIR_KEYS.items():
        setting = f"jruby-puppet.server-{key}"
        value: Optional[Any] = tree.get(setting, None)
        if value is None:
            setting = f"jruby-puppet.master-{key}"
            value = tree.get(setting, None)
        if value is not None and not (isinstance(value, str) and value.strip() and "\0" not in value):
            raise BadInput(f"{confd}: {setting}: expected a directory, got {str(value)[:80]!r}")
        config.directories[name] = value if value is not None else defaults[name]
    return config
