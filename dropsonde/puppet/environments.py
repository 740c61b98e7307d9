"""Directory environments and the modules on their modulepaths.

Puppet's rules, read from files: an environment is a directory, with a valid
environment name, of an ``environmentpath`` entry (the first entry holding a
name wins); its modulepath comes from ``environment.conf`` (default
``modules:$basemodulepath``, relative entries from the environment); a module
is a directory with a valid module name on that path (the first wins).

Sites link the same module directory into dozens of environments, so modules
are keyed by real path and each is read once (:class:`ModuleStore`); r10k
copies them instead, so each distinct metadata.json content is parsed once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISDIR
from typing import Dict, List, Optional, Set, Tuple

from dropsonde.cpu_budget import CONFIG_CPU_SECONDS, ENVIRONMENT_CONFS_RUN_CPU_SECONDS, OverBudget, RunBudget, cpu_budget
from dropsonde.errors import BadInput
from dropsonde.json_input import load_json
from dropsonde.tree_files import LIMITS, RefusedFile, is_inside, read_tree_file
from dropsonde.vocabulary import normalize_slug

log = logging.getLogger(__name__)

# Puppet::Node::Environment.valid_name?: Ruby's /\A\w+\Z/, where \w is ASCII
# only. r10k makes environments of branch names, capitals included (`AL2023`,
# `MartyEwings_patch_1`). Ruby's \Z also matches before a final newline, so Puppet
# would take a directory named "production\n"; no r10k branch or deploy makes
# one, and its name would print a line of its own, so it is not an environment
# here. Module directory names: Puppet's /\A[a-z][a-z0-9_]*\z/, matched whole.
ENVIRONMENT_NAME_RE = re.compile(r"[A-Za-z0-9_]+", re.ASCII)
MODULE_NAME_RE = re.compile(r"[a-z][a-z0-9_]*", re.ASCII)
ENVIRONMENT_CONF_KEYS = frozenset(
    {"modulepath", "manifest", "config_version", "environment_timeout", "static_catalogs", "rich_data"}
)
DEFAULT_MODULEPATH = "modules:$basemodulepath"


@dataclass(frozen=True)
class Dependency:
    """One entry of a module's ``metadata.json`` ``dependencies``."""

    slug: str
    version_requirement: Optional[str]


@dataclass
class Module:
    """A module directory, read once whatever number of environments use it.

    ``slug`` is ``author-name`` from metadata.json, or None when the metadata
    is missing or unusable (``problem`` then says why); such a module can
    never be public.
    """

    name: str
    path: Path
    slug: Optional[str] = None
    version: Optional[str] = None
    dependencies: List[Dependency] = field(default_factory=list)
    problem: Optional[str] = None

    @property
    def manifests_dir(self) -> Path:
        return self.path / "manifests"


@dataclass
class Environment:
    """A directory environment and the modules visible in it, first on the path first."""

    name: str
    path: Path
    modulepath: List[Path]
    modules: List[Module] = field(default_factory=list)

    @property
    def puppetfile(self) -> Path:
        return self.path / "Puppetfile"


#: Values in one metadata.json: the largest of Debian's modules (filebeat) has 86.
#: What a module keeps of it (its dependencies) is bounded with it, however many
#: modules an environment holds.
MAX_METADATA_VALUES = 10_000


@dataclass(frozen=True)
class Metadata:
    """What one metadata.json content gives a module: its slug, version and
    dependencies, or the problem that leaves it private (then nothing else)."""

    slug: Optional[str] = None
    version: Optional[str] = None
    dependencies: Tuple[Dependency, ...] = ()
    problem: Optional[str] = None


def parse_metadata(raw: bytes) -> Metadata:
    """The fields of one metadata.json's bytes, checked: any defect is a problem."""
    try:
        data = load_json(raw, LIMITS["metadata.json"], max_values=MAX_METADATA_VALUES)
    except ValueError as exc:
        return Metadata(problem=f"metadata.json is {exc}")
    if not isinstance(data, dict):
        return Metadata(problem="metadata.json is not a JSON object")
    name = data.get("name")
    slug = normalize_slug(name) if isinstance(name, str) else None
    if slug is None:
        return Metadata(problem="metadata.json has no valid 'name' (author-name)")
    version = data.get("version")
    if not isinstance(version, str):
        return Metadata(problem="metadata.json has no 'version' string")
    entries = data.get("dependencies", [])
    if not isinstance(entries, list):
        return Metadata(problem="metadata.json 'dependencies' is not a list")
    dependencies = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            return Metadata(problem="metadata.json has a dependency without a 'name'")
        requirement = entry.get("version_requirement")
        dep_slug = normalize_slug(entry["name"])
        if dep_slug is None:
            continue  # not a Forge name, so it can never be public
        dependencies.append(Dependency(dep_slug, requirement if isinstance(requirement, str) else None))
    return Metadata(slug, version, tuple(dependencies))


def read_metadata(module: Module, parsed: Optional[Dict[bytes, Metadata]] = None) -> None:
    """Fill slug, version and dependencies from metadata.json; on any defect
    leave the module without a slug (so private) and record the problem.

    ``parsed``: metadata already parsed in this run, by the SHA-256 of its bytes.
    r10k copies every module into every environment (720 metadata.json files of
    18 distinct contents on bench/r10k.py's 40 environments), so each content is
    decoded and checked once; reading and hashing a copy costs a tenth of that."""
    path = module.path / "metadata.json"
    try:
        raw = read_tree_file(path, "metadata.json", within=str(module.path))
    except FileNotFoundError:
        module.problem = "no metadata.json"
        return
    except RefusedFile as exc:
        module.problem = f"metadata.json unreadable: {exc.strerror}"
        log.warning("%s: not read, so the module is private: %s", path, exc.strerror)
        return
    except OSError as exc:
        module.problem = f"metadata.json unreadable: {exc.strerror or exc}"
        return
    if parsed is None:
        metadata = parse_metadata(raw)
    else:
        digest = hashlib.sha256(raw).digest()
        metadata = parsed.get(digest) or parsed.setdefault(digest, parse_metadata(raw))
    if metadata.problem is not None:
        module.problem = metadata.problem
        return
    module.slug, module.version = metadata.slug, metadata.version
    module.dependencies = list(metadata.dependencies)


class ModuleStore:
    """Modules by real path: reading a directory linked into many environments once.

    A directory is recognised by its (device, inode), one ``stat`` call;
    resolving the real path (a system call per path component) is done once
    per distinct directory, not once per environment that links it.
    """

    def __init__(self) -> None:
        self.modules: Dict[str, Module] = {}
        self._by_inode: Dict[Tuple[int, int], Module] = {}
        self._metadata: Dict[bytes, Metadata] = {}  # by the SHA-256 of metadata.json's bytes

    @property
    def distinct_metadata(self) -> int:
        """metadata.json contents parsed so far (copies of one are parsed once)."""
        return len(self._metadata)

    def get(self, name: str, path: str, identity: Tuple[int, int], resolved: bool = False) -> Module:
        """The module at ``path``; ``resolved`` says the path is real already."""
        module = self._by_inode.get(identity)
        if module is None:
            key = path if resolved else os.path.realpath(path)
            module = self.modules.get(key)
            if module is None:
                module = Module(name=name, path=Path(key))
                read_metadata(module, self._metadata)
                self.modules[key] = module
            self._by_inode[identity] = module
        return module


def read_environment_conf(path: Path, within: Optional[str] = None) -> Dict[str, str]:
    """``environment.conf`` settings; a line Puppet would reject is an error naming it,
    and so is a file that must not be read (see tree_files; ``within``: the
    environment's real directory). A setting Puppet does not know is ignored
    with a warning, as Puppet does."""
    settings: Dict[str, str] = {}
    try:
        text = read_tree_file(path, "environment.conf", within=within).decode("utf-8")
    except FileNotFoundError:
        return settings
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        with cpu_budget(CONFIG_CPU_SECONDS):
            for number, raw in enumerate(text.splitlines(), start=1):
                line = raw.strip()
                if not line or line.startswith("#") or line == "[main]":
                    continue
                key, sep, value = line.partition("=")
                key = key.strip()
                if not sep:
                    raise BadInput(f"{path}:{number}: not an environment.conf setting: {line[:80]!r}")
                if "\0" in value:
                    raise BadInput(f"{path}:{number}: contains a NUL character")
                if key not in ENVIRONMENT_CONF_KEYS:  # Puppet only warns (environment_data_provider, from Puppet 4)
                    log.warning("%s:%d: ignoring %r, not an environment.conf setting", path, number, key[:80])
                    continue
                settings[key] = value.strip()
    except OverBudget as exc:
        raise BadInput(f"{path}: not read: parsing it took {exc} (CONFIG_CPU_SECONDS)") from None
    return settings


#: Directories in one environment's modulepath, as written (counted before anything
#: is expanded or de-duplicated) and once ``$basemodulepath`` is expanded: real ones
#: have 2 to 5 (``site-modules:modules:$basemodulepath``). Each is listed in every
#: environment, and r10k copies the same environment.conf into all of them: 140,000
#: entries cost 2 s of CPU per environment, and 100,000 ``~nosuch/m`` (one user
#: lookup each, outside the budget) 5.7 s.
MAX_MODULEPATH_ENTRIES = 64


def environment_modulepath(env_dir: Path, basemodulepath: List[Path], within: Optional[str] = None) -> List[Path]:
    """The environment's modulepath, ``$basemodulepath`` expanded, relative entries
    from ``env_dir`` (``within``: its real path, where environment.conf must be).
    Reading the file and computing the path each have CONFIG_CPU_SECONDS."""
    conf_path = env_dir / "environment.conf"
    value = read_environment_conf(conf_path, within).get("modulepath", DEFAULT_MODULEPATH)
    if value.count(os.pathsep) >= MAX_MODULEPATH_ENTRIES:
        raise BadInput(f"{conf_path}: modulepath: more than {MAX_MODULEPATH_ENTRIES} directories "
                       "(MAX_MODULEPATH_ENTRIES)")
    try:
        with cpu_budget(CONFIG_CPU_SECONDS):
            entries = _modulepath_entries(env_dir, value, basemodulepath)
    except OverBudget as exc:
        raise BadInput(f"{conf_path}: modulepath: not read: it took {exc} (CONFIG_CPU_SECONDS)") from None
    if len(entries) > MAX_MODULEPATH_ENTRIES:
        raise BadInput(f"{conf_path}: modulepath: more than {MAX_MODULEPATH_ENTRIES} directories "
                       "(MAX_MODULEPATH_ENTRIES)")
    return entries


def _modulepath_entries(env_dir: Path, value: str, basemodulepath: List[Path]) -> List[Path]:
    """The directories of a modulepath value, each once, first first. ``~user/...`` is
    left out: Puppet would look in that user's home, outside the trees read here
    (see AllowedRoots), and each would be a user lookup (NSS: LDAP on many sites)."""
    entries: List[Path] = []
    for part in value.split(os.pathsep):
        part = part.strip()
        if not part:
            continue
        if part in ("$basemodulepath", "${basemodulepath}"):
            entries.extend(basemodulepath)
            continue
        part = part.replace("$environment", env_dir.name)
        if part.startswith("~") and not (part == "~" or part.startswith("~/")):
            continue
        path = Path(os.path.expanduser(part))
        entries.append(path if path.is_absolute() else env_dir / path)
    return list(dict.fromkeys(entries))  # a directory searched twice finds nothing new


class AllowedRoots:
    """The directories dropsonde reads Puppet code from (privacy rule 7, "never
    read outside the tree"): Puppet's codedir, the environmentpath and
    basemodulepath entries, and the module directories the packages install
    (:data:`SYSTEM_MODULE_DIRS`), all by real path. A link inside them is
    followed only when its real path is inside one of them too, so that
    modules linked from Debian's /usr/share/puppet/modules into an environment
    keep working while ``modules/x -> /home/alice/secret`` is not read."""

    def __init__(self, directories: List[Path]) -> None:
        self.roots = sorted({os.path.realpath(os.path.expanduser(str(d))) for d in directories})
        self._linked: Dict[Tuple[int, int], Tuple[str, bool]] = {}

    def contains(self, real_path: str) -> bool:
        return any(is_inside(real_path, root) for root in self.roots)

    def resolve_link(self, path: str, identity: Tuple[int, int]) -> Tuple[str, bool]:
        """The real path of the directory a link leads to and whether it is inside
        the roots, found once per directory (``identity``: its device and inode):
        sites link the same module into hundreds of environments."""
        found = self._linked.get(identity)
        if found is None:
            real = os.path.realpath(path)
            found = self._linked[identity] = (real, self.contains(real))
        return found


#: Module directories installed by packages: allowed roots whatever basemodulepath
#: says. Debian's puppet-module-* put each module in modules.available and link
#: it into modules through /etc/alternatives; Puppet's AIO packages vendor some.
SYSTEM_MODULE_DIRS = (
    Path("/usr/share/puppet/modules"),
    Path("/usr/share/puppet/modules.available"),
    Path("/usr/share/puppet/vendor_modules"),
    Path("/opt/puppetlabs/puppet/modules"),
    Path("/opt/puppetlabs/puppet/vendor_modules"),
)


def _warn_link_outside_roots(kind: str, link: str, real: str) -> None:
    """Say why a linked module or environment is left out: a link out of the Puppet
    trees could make the probe read (and report on) any directory on the host."""
    log.warning("skipping %s %s: a symbolic link to %s, outside the codedir, environmentpath and basemodulepath",
                kind, link, real)


def _module_dirs(directory: Path, roots: AllowedRoots) -> List[Tuple[str, str, Tuple[int, int], bool]]:
    """(name, path, (device, inode), path is real) of the module directories in one
    modulepath entry, sorted by name. The entry's real path is resolved once, so a
    module directory that is no link needs no resolving of its own (r10k copies
    every module into every environment: thousands of them). The entry and each
    linked module must lie inside ``roots`` (warned about and skipped otherwise)."""
    real_directory = os.path.realpath(directory)
    if not roots.contains(real_directory):
        if os.path.exists(real_directory):
            log.warning("skipping modulepath entry %s: its real path %s is outside the codedir, environmentpath "
                        "and basemodulepath (add it to basemodulepath in puppet.conf to have it read)",
                        directory, real_directory)
        return []
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("skipping modulepath entry %s: %s", directory, exc.strerror or exc)
        return []
    found = []
    for entry in entries:
        if not MODULE_NAME_RE.fullmatch(entry.name):
            continue
        try:
            stat = entry.stat()
        except OSError as exc:  # a symlink loop, a dangling link...
            log.warning("skipping module %s: %s", entry.path, exc.strerror or exc)
            continue
        if not S_ISDIR(stat.st_mode):
            continue
        if not entry.is_symlink():
            found.append((entry.name, os.path.join(real_directory, entry.name), (stat.st_dev, stat.st_ino), True))
            continue
        real, inside = roots.resolve_link(entry.path, (stat.st_dev, stat.st_ino))
        if not inside:
            _warn_link_outside_roots("module", entry.path, real)
            continue
        found.append((entry.name, real, (stat.st_dev, stat.st_ino), True))
    return found


def _identity(directory: Path) -> object:
    """(device, inode) of a directory, so entries shared by environments are listed once;
    the path itself when it cannot be stat'ed (listing it then reports why)."""
    try:
        stat = os.stat(directory)
    except OSError:
        return str(directory)
    return (stat.st_dev, stat.st_ino)


#: environments read in one run; the rest, in name order, are left out with one
#: warning. A real r10k site has tens to hundreds of branches (bench/r10k.py's
#: largest tree: 160); 200,000 empty ones took 27 s and 322 MB (re-check V3).
MAX_ENVIRONMENTS = 5_000


def discover_environments(
    environmentpath: List[Path], basemodulepath: List[Path], store: ModuleStore, codedir: Optional[Path] = None,
    max_environments: int = MAX_ENVIRONMENTS,
) -> List[Environment]:
    """Every directory environment (at most ``max_environments``), sorted by name,
    with its modules resolved. Nothing outside the allowed roots (see AllowedRoots) is read."""
    roots = AllowedRoots([*environmentpath, *basemodulepath, *SYSTEM_MODULE_DIRS, *([codedir] if codedir else [])])
    environments: Dict[str, Environment] = {}
    set_aside: Set[str] = set()  # names of environments left out: one further on the path does not stand in
    left_out: Set[str] = set()  # names past max_environments
    budget = RunBudget(ENVIRONMENT_CONFS_RUN_CPU_SECONDS)
    listings: Dict[object, List[Tuple[str, str, Tuple[int, int], bool]]] = {}  # modulepath entries by identity
    for root in environmentpath:
        try:
            entries = sorted(os.scandir(root), key=lambda entry: entry.name)
        except FileNotFoundError:
            log.warning("environmentpath entry %s does not exist", root)
            continue
        except OSError as exc:
            log.warning("cannot list environmentpath entry %s: %s", root, exc.strerror or exc)
            continue
        for entry in entries:
            if entry.name in environments or entry.name in set_aside or not ENVIRONMENT_NAME_RE.fullmatch(entry.name):
                continue
            if len(environments) >= max_environments:
                left_out.add(entry.name)
                continue
            try:
                if not entry.is_dir():
                    continue
            except OSError:
                log.warning("skipping environment %s: unreadable or looping symlink", entry.path)
                continue
            env_real = os.path.realpath(entry.path)
            if not roots.contains(env_real):
                _warn_link_outside_roots("environment", entry.path, env_real)
                continue
            env_dir = Path(entry.path)
            modulepath = _modulepath_within_budget(env_dir, basemodulepath, env_real, budget)
            if modulepath is None:
                set_aside.add(entry.name)
                continue
            environment = Environment(entry.name, env_dir, modulepath)
            seen = set()
            for directory in modulepath:
                key = _identity(directory)
                if key not in listings:
                    listings[key] = _module_dirs(directory, roots)
                for name, path, identity, resolved in listings[key]:
                    if name not in seen:
                        seen.add(name)
                        environment.modules.append(store.get(name, path, identity, resolved))
            environments[entry.name] = environment
    if budget.set_aside:
        more = f" and {len(budget.set_aside) - 5} more" if len(budget.set_aside) > 5 else ""
        log.warning("%d environments set aside, their modules not read: this run's reading of environment.conf "
                    "files took more than %g s of CPU time (ENVIRONMENT_CONFS_RUN_CPU_SECONDS): %s%s",
                    len(budget.set_aside), budget.seconds, ", ".join(budget.set_aside[:5]), more)
    if left_out:
        log.warning("%d environments left out, their modules not read: a run reads at most %d "
                    "(MAX_ENVIRONMENTS); the first left out: %s", len(left_out), max_environments, min(left_out))
    return [environments[name] for name in sorted(environments)]


def _modulepath_within_budget(env_dir: Path, basemodulepath: List[Path], within: str,
                              budget: RunBudget) -> Optional[List[Path]]:
    """The environment's modulepath, or None when the environment is set aside (one
    warning): its environment.conf is one Puppet would reject or over a budget, or
    the run's budget for them all is spent. environment.conf is tree input, like a
    manifest: one branch's must not stop the run for every environment."""
    if budget.exhausted and os.path.lexists(env_dir / "environment.conf"):
        budget.set_aside.append(str(env_dir))
        return None
    try:
        with budget.charge():
            return environment_modulepath(env_dir, basemodulepath, within)
    except BadInput as exc:
        log.warning("environment %s set aside, its modules not read: %s", env_dir, exc)
        return None
