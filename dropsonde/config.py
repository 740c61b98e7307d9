"""Options: the command line over ``telemetry.yaml`` over built-in defaults.

``telemetry.yaml`` is GLI's config format, as written by the Ruby client's
``initconfig`` and by the ``puppetlabs-dropsonde`` Puppet module: keys may be
symbols (``:update:``) or plain (``update:``); per-command options sit under
``commands:`` (nested again for ``dev``'s subcommands). Anything we do not
know is an error naming the file and key, so a typo never silently changes
what is sent.
"""

from __future__ import annotations

import os
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

from dropsonde.cpu_budget import CONFIG_CPU_SECONDS, OverBudget, cpu_budget
from dropsonde.errors import BadInput
from dropsonde.memory_budget import CONFIG_MEMORY_BYTES, OverMemoryBudget, memory_budget
from dropsonde.terminal import shortened
from dropsonde.tree_files import read_tree_file

CONFIG_FILENAME = "telemetry.yaml"


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("expected true or false")


_MAX_INT = 10**9  # more than any count, port or number of days needs; YAML's 0x... has no size limit


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INT:
        raise ValueError(f"expected a whole number from 0 to {_MAX_INT}")
    return value


def _str(value: Any) -> str:
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
        return str(value)
    raise ValueError("expected a non-empty string")


def _name_list(value: Any) -> List[str]:
    """GLI's Array type: a comma-separated string, or (in YAML) a list of strings."""
    if isinstance(value, str):
        return split_names(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return [name for item in value for name in split_names(item)]
    raise ValueError("expected a comma-separated string or a list of names")


def _choice(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value in choices:
            return str(value)
        raise ValueError("expected one of " + ", ".join(choices))

    return check


def split_names(value: str) -> List[str]:
    """``"a, b,,c"`` as ``["a", "b", "c"]``."""
    return [part.strip() for part in value.split(",") if part.strip()]


GLOBAL_KEYS: Dict[str, Callable[[Any], Any]] = {
    "verbose": _bool,
    "update": _bool,
    "cachepath": _str,
    "ttl": _int,
    "disable": _name_list,
    "enable": _name_list,
    "seed": _str,
    "siteid": _str,
    "confdir": _str,
    "codedir": _str,
    "vardir": _str,
    "forge_api": _str,
    "endpoint": _str,
    "port": _int,
}
# GLI's initconfig also writes the short aliases and the help/version switches.
ALIASES = {"v": "verbose", "d": "disable", "e": "enable"}
IGNORED_KEYS = frozenset({"help", "version"})

COMMAND_KEYS: Dict[str, Dict[str, Callable[[Any], Any]]] = {
    "preview": {"format": _choice("human", "json")},
    "list": {},
    "update": {"full": _bool},
    "submit": {"endpoint": _str, "port": _int},
    "last": {"format": _choice("human", "json")},
    "dev schema": {},
    "dev example": {"size": _int, "filename": _str},
    "dev shell": {},
    "dev inventory": {"format": _choice("human", "json")},
}


@dataclass
class Options:
    """Global options after merging; None means "not set anywhere"."""

    verbose: bool = False
    update: bool = True
    cachepath: Optional[str] = None
    ttl: int = 7
    disable: List[str] = field(default_factory=list)
    enable: List[str] = field(default_factory=list)
    seed: Optional[str] = None
    siteid: Optional[str] = None
    confdir: Optional[str] = None
    codedir: Optional[str] = None
    vardir: Optional[str] = None
    forge_api: Optional[str] = None
    endpoint: Optional[str] = None
    port: Optional[int] = None
    config_file: Optional[Path] = None
    commands: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    def command_option(self, command: str, name: str, given: Any, default: Any) -> Any:
        """A command's option: given on the command line, else from the file, else ``default``."""
        if given is not None:
            return given
        return self.commands.get(command, {}).get(name, default)


def _key(path: Path, raw: Any) -> str:
    """A key as GLI writes it (``:update`` or ``update``). Only a string is a name:
    ruamel makes a flow sequence key a tuple, whose text could be far larger than
    the file (the outside review's tuple key asked for 18 GB)."""
    if not isinstance(raw, str):
        raise BadInput(f"{path}: key {_shown(raw)}: expected a name")
    return raw.lstrip(":")


def _shown(value: Any) -> str:
    """A value for an error message, cut short: YAML aliases can make a small
    file hold a structure too large to print (a "billion laughs")."""
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother, short.maxlong = 2, 60, 60, 60
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 4
    try:
        return short.repr(value)
    except ValueError:  # an integer too long to convert to text
        return f"{type(value).__name__} too large to show"


def _check(path: Path, dotted: str, check: Callable[[Any], Any], value: Any) -> Any:
    try:
        return check(value)
    except ValueError as exc:
        raise BadInput(f"{path}: key '{dotted}': {exc}, got {_shown(value)}") from None


def _read_commands(path: Path, section: Any, prefix: str, out: Dict[str, Dict[str, Any]]) -> None:
    if section is None:
        return
    if not isinstance(section, Mapping):
        raise BadInput(f"{path}: key '{prefix or 'commands'}': expected a mapping of commands")
    for raw_name, body in section.items():
        name = _key(path, raw_name)
        command = f"{prefix} {name}".strip()
        dotted = "commands." + command.replace(" ", ".commands.")
        subcommands = [c for c in COMMAND_KEYS if c.startswith(command + " ")]
        if command not in COMMAND_KEYS and not subcommands:
            known = sorted({c.split()[0] for c in COMMAND_KEYS})
            raise BadInput(f"{path}: key '{shortened(dotted)}': unknown command (known: {', '.join(known)})")
        if body is None:
            continue
        if not isinstance(body, Mapping):
            raise BadInput(f"{path}: key '{shortened(dotted)}': expected a mapping of options")
        for raw_option, value in body.items():
            option = _key(path, raw_option)
            if option == "commands" and subcommands:
                _read_commands(path, value, command, out)
                continue
            checks = COMMAND_KEYS.get(command, {})
            if option not in checks:
                raise BadInput(f"{path}: key '{shortened(f'{dotted}.{option}')}': unknown option")
            if value is not None:
                out.setdefault(command, {})[option] = _check(path, f"{dotted}.{option}", checks[option], value)


def credential_name(path: Path) -> str:
    """The name of the systemd credential that carries ``path`` to the service: the
    path without its leading slash, ``/`` as ``-`` (``systemd-escape --path``'s rule
    for these paths: ``/etc/puppetlabs/telemetry.yaml`` is ``etc-puppetlabs-telemetry.yaml``)."""
    return str(path).strip("/").replace("-", "\\x2d").replace("/", "-")


def service_credential(path: Path, environ: Mapping[str, str]) -> Optional[Path]:
    """The copy of ``path`` systemd handed this service (``LoadCredential=``), if any.

    The puppetlabs-dropsonde module writes telemetry.yaml root-owned, mode 0660,
    and the scheduled run is the ``puppet`` user: systemd reads the file as root
    when the service starts and gives the service a private copy, so the file
    never has to be widened. When the file is absent, the unit's ``SetCredential=``
    makes the copy an empty YAML document (``---``), which reads as an absent file."""
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    copy = Path(directory) / credential_name(path)
    return copy if copy.is_file() else None


def _loader() -> Any:
    """ruamel's safe, pure-Python loader, refusing aliases (``*name``).

    An alias is a reference, so a file of 1 MB can name one 900 KB string 20,000
    times within the parse budgets; everything that then reads the values (a
    tuple key's text, a ``disable`` list split into names) would build 18 GB
    outside them. GLI's file never holds an alias, and without them what the
    file expands to is bounded by its own size."""
    from ruamel.yaml import YAML
    from ruamel.yaml.composer import Composer, ComposerError
    from ruamel.yaml.events import AliasEvent

    class NoAliases(Composer):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.parser.check_event(AliasEvent):
                event = self.parser.peek_event()
                shown = shortened(str(event.anchor))
                raise ComposerError(None, None, f"an alias (*{shown}) is not accepted", event.start_mark)
            return super().compose_node(parent, index)

    yaml = YAML(typ="safe", pure=True)
    yaml.Composer = NoAliases
    return yaml


def read_config_file(path: Path, environ: Mapping[str, str] = os.environ) -> Dict[str, Any]:
    """The options in ``telemetry.yaml`` as {key: checked value}, plus "commands"
    (from the service's credential when systemd passed one: :func:`service_credential`).

    A missing file is an empty config; anything malformed raises BadInput
    naming the file and the key or line.
    """
    credential = service_credential(path, environ)
    try:
        text = read_tree_file(credential or path, "telemetry.yaml").decode("utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        with cpu_budget(CONFIG_CPU_SECONDS), memory_budget(CONFIG_MEMORY_BYTES):
            data = _loader().load(text)
    except OverBudget as exc:
        raise BadInput(f"{path}: not read: parsing it took {exc} (CONFIG_CPU_SECONDS)") from None
    except OverMemoryBudget as exc:
        raise BadInput(f"{path}: not read: parsing it took {exc} (CONFIG_MEMORY_BYTES)") from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise BadInput(f"{path}{line}: YAML syntax error: {exc.problem or exc.context}") from None
    except YAMLError as exc:
        raise BadInput(f"{path}: YAML error: {str(exc).splitlines()[0]}") from None
    except RecursionError:  # the parser nests one Python call per level
        raise BadInput(f"{path}: YAML nested too deeply") from None
    except (ValueError, TypeError) as exc:  # from the constructors: an integer of 5,000 digits, a list as a key
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise BadInput(f"{path}: YAML value not accepted: {reason}") from None
    except MemoryError:
        raise BadInput(f"{path}: not read: parsing it took more memory than there is") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise BadInput(f"{path}: expected a mapping of settings at the top level")
    options: Dict[str, Any] = {}
    for raw_key, value in data.items():
        key = ALIASES.get(_key(path, raw_key), _key(path, raw_key))
        if key == "commands":
            commands: Dict[str, Dict[str, Any]] = {}
            _read_commands(path, value, "", commands)
            options["commands"] = commands
        elif key in IGNORED_KEYS:
            continue
        elif key not in GLOBAL_KEYS:
            raise BadInput(f"{path}: key '{shortened(key)}': unknown setting (known: {', '.join(GLOBAL_KEYS)})")
        elif value is not None:
            options[key] = _check(path, key, GLOBAL_KEYS[key], value)
    return options


def merge_options(given: Mapping[str, Any], file_options: Mapping[str, Any], config_file: Optional[Path]) -> Options:
    """Command line (``given``, None = not given) over the file over defaults."""
    options = Options(config_file=config_file)
    for name in GLOBAL_KEYS:
        if given.get(name) is not None:
            setattr(options, name, given[name])
        elif name in file_options:
            setattr(options, name, file_options[name])
    options.commands = dict(file_options.get("commands", {}))
    return options
