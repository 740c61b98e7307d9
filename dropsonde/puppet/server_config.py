"""Puppet Server's own configuration: every ``*.conf`` HOCON file of its
conf.d, merged as Puppet Server merges them.

Two things come from there: whether the admin opted in to scheduled
submission (``dropsonde { enabled: true }``, with ``interval``), and, when run
as ``puppetserver dropsonde``, which Puppet directories the server uses
(``jruby-puppet.server-*-dir``, or the legacy ``master-*-dir``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from dropsonde.errors import DropsondeError
from dropsonde.tree_files import read_tree_file

DEFAULT_INTERVAL = 604800  # seconds: a week, Puppet Server's default

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
# HOCON's `include url("...")` (or `include required(url(...))`) would make
# pyhocon fetch it: a probe run must not reach out to wherever conf.d points.
_URL_INCLUDE_RE = re.compile(r"\binclude\s+(?:required\s*\(\s*)?url\s*\(")


@dataclass
class ServerConfig:
    """What dropsonde reads from Puppet Server's conf.d."""

    enabled: bool = False
    interval: int = DEFAULT_INTERVAL
    directories: Dict[str, str] = field(default_factory=dict)
    files: int = 0


def _read_tree(confd: Path) -> Any:
    from pyhocon import ConfigFactory, ConfigTree

    merged = ConfigTree()
    files = sorted(confd.glob("*.conf")) if confd.is_dir() else []
    for path in files:
        try:
            text = read_tree_file(path, "conf.d file").decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DropsondeError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
        if _URL_INCLUDE_RE.search(text):
            raise DropsondeError(f"{path}: includes a URL; dropsonde never fetches configuration over the network")
        try:
            tree = ConfigFactory.parse_string(text, basedir=str(path.parent), resolve=True)
        except OSError as exc:
            raise DropsondeError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except Exception as exc:  # pyhocon raises pyparsing and its own errors
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise DropsondeError(f"{path}: not valid HOCON: {reason}") from None
        merged = ConfigTree.merge_configs(merged, tree)
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
        raise DropsondeError(f"{confd}: dropsonde.enabled: expected true or false, got {enabled!r}")
    config.enabled = enabled
    interval = tree.get("dropsonde.interval", DEFAULT_INTERVAL)
    if isinstance(interval, str) and interval.isdigit():
        interval = int(interval)
    if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
        raise DropsondeError(f"{confd}: dropsonde.interval: expected a positive number of seconds, got {interval!r}")
    config.interval = interval
    defaults = SERVER_DIRS_BY_LAYOUT[layout]
    for name, key in _DIR_KEYS.items():
        setting = f"jruby-puppet.server-{key}"
        value: Optional[Any] = tree.get(setting, None)
        if value is None:
            setting = f"jruby-puppet.master-{key}"
            value = tree.get(setting, None)
        if value is not None and not (isinstance(value, str) and value.strip() and "\0" not in value):
            raise DropsondeError(f"{confd}: {setting}: expected a directory, got {str(value)[:80]!r}")
        config.directories[name] = value if value is not None else defaults[name]
    return config
