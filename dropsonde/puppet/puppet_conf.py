"""Puppet's settings, read from ``puppet.conf`` and the packaging layout's defaults.

We do not run Puppet to ask it (``puppet config print``): dropsonde must work
where Ruby is not installed. Instead we know the three layouts Puppet ships in
(official AIO packages, Debian/Ubuntu packages, a non-root user) and read
``puppet.conf`` the way Puppet does: INI sections, ``$setting`` interpolation,
the first section that sets a value wins.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from dropsonde.cpu_budget import CONFIG_CPU_SECONDS, OverBudget, cpu_budget
from dropsonde.errors import BadInput
from dropsonde.tree_files import read_tree_file

# dropsonde runs on a Puppet server and reports what that server compiles, so
# it reads puppet.conf as the server does; [user] is consulted before [main]
# so that settings an admin wrote for command-line tools still apply.
SECTION_ORDER = ("server", "master", "user", "main")

LAYOUT_DEFAULTS: Dict[str, Dict[str, str]] = {
    "aio": {
        "confdir": "/etc/puppetlabs/puppet",
        "codedir": "/etc/puppetlabs/code",
        "vardir": "/opt/puppetlabs/puppet/cache",
        "logdir": "/var/log/puppetlabs/puppet",
        "ssldir": "$confdir/ssl",
        "cadir": "/etc/puppetlabs/puppetserver/ca",
        "basemodulepath": "$codedir/modules:/opt/puppetlabs/puppet/modules",
    },
    "debian": {
        "confdir": "/etc/puppet",
        "codedir": "/etc/puppet/code",
        "vardir": "/var/cache/puppet",
        "logdir": "/var/log/puppet",
        "ssldir": "/var/lib/puppet/ssl",
        "cadir": "/etc/puppet/puppetserver/ca",
        "basemodulepath": "$codedir/modules:/usr/share/puppet/modules",
    },
    "user": {
        "confdir": "~/.puppetlabs/etc/puppet",
        "codedir": "~/.puppetlabs/etc/code",
        "vardir": "~/.puppetlabs/opt/puppet/cache",
        "logdir": "~/.puppetlabs/var/log",
        "ssldir": "$confdir/ssl",
        "cadir": "$ssldir/ca",
        "basemodulepath": "$codedir/modules:/opt/puppetlabs/puppet/modules",
    },
}

COMMON_DEFAULTS: Dict[str, str] = {
    "environmentpath": "$codedir/environments",
    "certdir": "$ssldir/certs",
    "privatekeydir": "$ssldir/private_keys",
    "hostcert": "$certdir/$certname.pem",
    "hostprivkey": "$privatekeydir/$certname.pem",
    "localcacert": "$certdir/ca.pem",
    "cacert": "$cadir/ca_crt.pem",
    "server_url_timeout": "30",
}

# Settings that only the command line or the environment can set (puppet.conf
# lives inside confdir, so it cannot move it).
DIRECTORY_SETTINGS = ("confdir", "codedir", "vardir", "logdir")
ENVIRONMENT_VARIABLES = {name: f"PUPPET_{name.upper()}" for name in DIRECTORY_SETTINGS}

_SECTION_RE = re.compile(r"^\[([A-Za-z0-9_]+)\]$")
_SETTING_RE = re.compile(r"([A-Za-z0-9_]+)\s*=(.*)", re.DOTALL)
_INTERPOLATION_RE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass
class PuppetSettings:
    """The Puppet settings dropsonde needs, fully interpolated."""

    layout: str
    values: Dict[str, str] = field(default_factory=dict)
    puppet_conf: Optional[Path] = None

    def __getitem__(self, name: str) -> str:
        return self.values[name]

    @property
    def confdir(self) -> Path:
        return Path(self.values["confdir"])

    @property
    def codedir(self) -> Path:
        return Path(self.values["codedir"])

    @property
    def vardir(self) -> Path:
        return Path(self.values["vardir"])

    @property
    def environmentpath(self) -> List[Path]:
        return _path_list(self.values["environmentpath"])

    @property
    def basemodulepath(self) -> List[Path]:
        return _path_list(self.values["basemodulepath"])


#: Directories in ``environmentpath`` and in ``basemodulepath``, each once: Debian's
#: defaults have 1 and 2. Every environmentpath entry is listed and every
#: basemodulepath entry joins every environment's modulepath (its own cap is 64 too):
#: one directory named 25,000 times cost 9.5 s over 500 environments.
MAX_PATH_ENTRIES = 64


def _path_list(value: str) -> List[Path]:
    """The directories of a path setting, each once, first first."""
    return list(dict.fromkeys(Path(part) for part in value.split(os.pathsep) if part.strip()))


def _check_path_lists(settings: "PuppetSettings") -> None:
    for name in ("environmentpath", "basemodulepath"):
        if len(_path_list(settings.values[name])) > MAX_PATH_ENTRIES:
            where = settings.puppet_conf or "puppet settings"
            raise BadInput(f"{where}: {name}: more than {MAX_PATH_ENTRIES} directories (MAX_PATH_ENTRIES)")


def detect_layout(is_root: Optional[bool] = None, root: Path = Path("/")) -> str:
    """Which packaging of Puppet this machine has: "aio", "debian" or "user".

    A non-root user gets Puppet's ``~/.puppetlabs`` defaults, as Puppet itself
    does; root gets AIO paths when ``/etc/puppetlabs`` or ``/opt/puppetlabs/puppet``
    exists, Debian's when ``/etc/puppet`` does, and AIO otherwise. ``root`` is
    where those directories are looked for, so tests can build each layout.
    """
    if is_root is None:
        is_root = os.geteuid() == 0
    if not is_root:
        return "user"
    if (root / "etc/puppetlabs").is_dir() or (root / "opt/puppetlabs/puppet").is_dir():
        return "aio"
    if (root / "etc/puppet").is_dir():
        return "debian"
    return "aio"


def resolve_confdir(
    override: Optional[str], environ: Optional[Mapping[str, str]] = None, layout: Optional[str] = None
) -> str:
    """Puppet's confdir: the command line, else $PUPPET_CONFDIR, else the layout's.
    (puppet.conf cannot move it: it lives there. telemetry.yaml sits in its parent.)"""
    environ = os.environ if environ is None else environ
    chosen = override or environ.get("PUPPET_CONFDIR") or LAYOUT_DEFAULTS[layout or detect_layout()]["confdir"]
    return os.path.expanduser(chosen)


def parse_puppet_conf(path: Path) -> Dict[str, Dict[str, str]]:
    """Sections of ``puppet.conf`` as {section: {setting: raw value}}.

    Raises BadInput naming the file and line for a line Puppet would reject.
    """
    sections: Dict[str, Dict[str, str]] = {"main": {}}
    current = "main"
    try:
        text = read_tree_file(path, "puppet.conf").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not valid UTF-8 ({exc.reason})") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        with cpu_budget(CONFIG_CPU_SECONDS):
            for number, raw in enumerate(text.splitlines(), start=1):
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                section = _SECTION_RE.match(line)
                if section:
                    current = section.group(1)
                    sections.setdefault(current, {})
                    continue
                setting = _SETTING_RE.match(line)
                if not setting:
                    raise BadInput(f"{path}:{number}: cannot parse line: {line[:80]!r}")
                if "\0" in line:
                    raise BadInput(f"{path}:{number}: contains a NUL character")
                sections[current][setting.group(1)] = _without_file_options(setting.group(2).strip())
    except OverBudget as exc:
        raise BadInput(f"{path}: not read: parsing it took {exc} (CONFIG_CPU_SECONDS)") from None
    return sections


def _without_file_options(value: str) -> str:
    """``$vardir/ssl {owner = service, mode = 0750}`` without its trailing ``{...}``.

    Done with string searches, not one regex: a lazy value followed by
    optional blanks and braces backtracks quadratically on a long line.
    """
    if not value.endswith("}"):
        return value
    opening = value.find("{", value.rfind("}", 0, len(value) - 1) + 1)
    return value[:opening].rstrip() if opening >= 0 else value


# Settings referring to settings referring to ... deeper than this are an
# error: Puppet's own settings nest a few levels, and it bounds the recursion.
_MAX_INTERPOLATION_DEPTH = 50
#: The longest value a setting may have once interpolated. Real ones are paths
#: (the longest default, hostprivkey, about 60 characters); `a = $b$b`, `b = $c$c`...
#: doubles at each line, and 33 such lines (577 bytes) asked for 8 GB.
MAX_SETTING_LENGTH = 64 * 1024
#: All settings together once interpolated: four times the largest puppet.conf read
#: (1 MiB). Each setting within MAX_SETTING_LENGTH is not enough: 84,000 lines of
#: `sN = $b$b` over a 32,000-character `b` (1 MB) asked for 5.3 GB.
MAX_SETTINGS_TOTAL = 4 * 1024 * 1024


def _interpolate(name: str, raw: Mapping[str, str], resolved: Dict[str, str], seen: Tuple[str, ...],
                 total: List[int]) -> str:
    """``name``'s value with its $settings interpolated; ``total`` counts the
    characters of every value resolved so far, against MAX_SETTINGS_TOTAL."""
    if name in resolved:
        return resolved[name]
    if name in seen:
        raise BadInput(f"puppet settings: ${name} refers to itself")
    if len(seen) > _MAX_INTERPOLATION_DEPTH:
        raise BadInput(f"puppet settings: ${name}: more than {_MAX_INTERPOLATION_DEPTH} levels of $setting")
    value = raw.get(name, "")
    grown = [len(value)]

    def replace(match: "re.Match[str]") -> str:
        ref = match.group(1) or match.group(2)
        if ref == "environment" or ref not in raw:
            return match.group(0)
        piece = _interpolate(ref, raw, resolved, seen + (name,), total)
        grown[0] += len(piece)
        if grown[0] > MAX_SETTING_LENGTH:
            raise BadInput(f"puppet settings: ${name}: longer than {MAX_SETTING_LENGTH} characters "
                           "once its $settings are interpolated (MAX_SETTING_LENGTH)")
        return piece

    value = os.path.expanduser(_INTERPOLATION_RE.sub(replace, value)) if "$" in value or "~" in value else value
    total[0] += len(value)
    if total[0] > MAX_SETTINGS_TOTAL:
        raise BadInput(f"puppet settings: more than {MAX_SETTINGS_TOTAL // (1024 * 1024)} MiB in all once their "
                       f"$settings are interpolated, at ${name} (MAX_SETTINGS_TOTAL)")
    resolved[name] = value
    return value


def load_puppet_settings(
    overrides: Optional[Mapping[str, Optional[str]]] = None,
    environ: Optional[Mapping[str, str]] = None,
    layout: Optional[str] = None,
) -> PuppetSettings:
    """Puppet's settings: command line (``overrides``) > environment variables >
    puppet.conf > the layout's defaults."""
    given: Dict[str, str] = {k: v for k, v in (overrides or {}).items() if v}
    environ = os.environ if environ is None else environ
    layout = layout or detect_layout()
    raw: Dict[str, str] = dict(LAYOUT_DEFAULTS[layout])
    raw.update(COMMON_DEFAULTS)
    raw["certname"] = socket.getfqdn().lower()
    for name, variable in ENVIRONMENT_VARIABLES.items():
        if environ.get(variable):
            raw[name] = environ[variable]
    confdir = resolve_confdir(given.get("confdir"), environ, layout)
    raw["confdir"] = confdir
    conf_path = Path(confdir) / "puppet.conf"
    from_file: Dict[str, str] = {}
    if os.path.lexists(conf_path):  # anything there but a readable file is an error naming it
        sections = parse_puppet_conf(conf_path)
        for section in reversed(SECTION_ORDER):
            from_file.update(sections.get(section, {}))
    for name, value in from_file.items():
        if name == "confdir":
            continue
        if name in ENVIRONMENT_VARIABLES and environ.get(ENVIRONMENT_VARIABLES[name]):
            continue
        raw[name] = value
    raw.update(given)
    resolved: Dict[str, str] = {}
    total = [0]
    for name in list(raw):
        _interpolate(name, raw, resolved, (), total)
    settings = PuppetSettings(layout=layout, values=resolved, puppet_conf=conf_path if conf_path.is_file() else None)
    _check_path_lists(settings)
    return settings
