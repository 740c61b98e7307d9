"""The site as plugins see it: Puppet's settings, the environments and their
modules, the Forge cache, parsed manifests, and the one rule that decides
which modules are public.

Everything expensive is computed on first use and kept, so a run that only
needs ``environment_count`` never parses a manifest, and a module linked into
thirty environments is parsed once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Dict, List, Optional, Set

from dropsonde.cache_dir import CacheDir
from dropsonde.config import Options
from dropsonde.forge_cache import ForgeCache, load_forge_cache
from dropsonde.privacy import class_name, reportable_class
from dropsonde.puppet.environments import (
    Environment,
    Module,
    ModuleStore,
    discover_environments,
)
from dropsonde.puppet.manifest_cache import ManifestCache, ManifestFile
from dropsonde.puppet.manifests import Definition
from dropsonde.puppet.module_checksums import (
    DPKG_INFO_DIR,
    UNLISTED_REASON,
    DpkgRecords,
    PublishedFiles,
    read_published_files,
)
from dropsonde.puppet.puppetdb import (
    ClassUsage,
    PuppetDBClient,
    PuppetDBConfig,
    PuppetDBError,
    fetch_class_usage,
    read_puppetdb_conf,
)
from dropsonde.puppet.puppet_conf import PuppetSettings, load_puppet_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Publicity:
    """Whether a module may be reported, and why (shown by ``dev inventory``)."""

    public: bool
    reason: str


def autoload_files(name: str) -> List[str]:
    """The manifests Puppet's autoloader tries for class ``name``, in its order,
    relative to the module's ``manifests`` directory (Puppet's TypeLoader:
    ``a::b::c`` -> ``b/c.pp``, ``b.pp``, ``init.pp``). ``name`` must already
    have passed :func:`~dropsonde.privacy.class_name`, so no segment is a path."""
    parts = name.split("::")
    return ["/".join(parts[1:i]) + ".pp" for i in range(len(parts), 1, -1)] + ["init.pp"]


def puppet_settings(options: Options, layout: Optional[str] = None) -> PuppetSettings:
    """Puppet's settings for these options (command line and telemetry.yaml merged),
    said in one log line; ``layout`` None means detected from this process's user
    and the filesystem."""
    overrides = {"confdir": options.confdir, "codedir": options.codedir, "vardir": options.vardir}
    puppet = load_puppet_settings(overrides, layout=layout)
    log.info("Puppet settings (%s layout) from %s: confdir %s, codedir %s, vardir %s", puppet.layout,
             puppet.puppet_conf or "built-in defaults (no puppet.conf)", puppet.confdir, puppet.codedir,
             puppet.vardir)
    return puppet


def cache_path(options: Options, puppet: PuppetSettings) -> Path:
    """The cache directory: ``--cachepath``, else ``$vardir/dropsonde`` (the Ruby client's)."""
    return Path(options.cachepath) if options.cachepath else puppet.vardir / "dropsonde"


class Site:
    """What dropsonde knows about the Puppet site it runs on.

    ``forge`` is the Forge list when the caller has read it already (to decide
    on a refresh before the site is built); otherwise it is read on first use.
    ``dpkg_info`` is dpkg's info directory (tests build their own)."""

    def __init__(
        self,
        options: Options,
        puppet: PuppetSettings,
        forge: Optional[ForgeCache] = None,
        dpkg_info: Path = DPKG_INFO_DIR,
        cache: Optional[CacheDir] = None,
    ) -> None:
        self.options = options
        self.puppet = puppet
        self.cachepath = cache.path if cache is not None else cache_path(options, puppet)
        self._cache = cache
        self._owns_cache = cache is None
        self._forge = forge
        self.store = ModuleStore()
        self._manifests: Dict[str, List[ManifestFile]] = {}
        self._manifest_cache: Optional[ManifestCache] = None
        self._class_lookups: Dict[str, bool] = {}  # by canonical class name
        self._verdicts: Dict[str, bool] = {}  # by the name as asked
        self._published: Dict[str, PublishedFiles] = {}
        self._dpkg = DpkgRecords(dpkg_info)
        self._set_aside: Dict[str, Dict[str, str]] = {}
        self._public_classes: Dict[str, Set[str]] = {}  # by module path: judged once per run
        #: why PuppetDB data is missing, for the preview (no host names: they are private)
        self.puppetdb_problem: Optional[str] = None

    @classmethod
    def from_options(cls, options: Options, layout: Optional[str] = None) -> "Site":
        """The site with Puppet's settings for these options (see :func:`puppet_settings`)."""
        return cls(options, puppet_settings(options, layout))

    @property
    def forge(self) -> ForgeCache:
        """The list of public modules (privacy rule 1), read once."""
        if self._forge is None:
            self._forge = load_forge_cache(self.cache)
        return self._forge

    @property
    def cache(self) -> CacheDir:
        """The cache directory: the caller's (a run's one descriptor), else opened
        and checked on first use and closed with the site."""
        if self._cache is None:
            self._cache = CacheDir.open(self.cachepath)
        return self._cache

    @cached_property
    def environments(self) -> List[Environment]:
        environments = discover_environments(self.puppet.environmentpath, self.puppet.basemodulepath, self.store,
                                             self.puppet.codedir)
        log.info("%d environments in %s; %d distinct module directories", len(environments),
                 ":".join(str(p) for p in self.puppet.environmentpath), len(self.store.modules))
        return environments

    @property
    def modules(self) -> List[Module]:
        """Every distinct module directory used by some environment, by real path."""
        self.environments  # noqa: B018 - discovery fills the store
        return [self.store.modules[key] for key in sorted(self.store.modules)]

    def publicity(self, module: Module) -> Publicity:
        """Privacy rule 1: public only if its slug is on the Forge and its directory
        carries the Forge name (a renamed fork's directory name may be private)."""
        if module.slug is None:
            return Publicity(False, module.problem or "no usable metadata.json")
        if not self.forge.is_public(module.slug):
            if self.forge.problem:
                return Publicity(False, f"{self.forge.problem}: nothing is public")
            return Publicity(False, f"{module.slug} is not in the Forge module cache")
        if module.slug.split("-", 1)[1] != module.name:
            return Publicity(False, f"directory name differs from the Forge name {module.slug}")
        return Publicity(True, f"{module.slug} is on the Forge")

    def is_public(self, module: Module) -> bool:
        return self.publicity(module).public

    @property
    def manifest_cache(self) -> ManifestCache:
        """Parse results by content (md5), loaded from the cache directory on first use."""
        if self._manifest_cache is None:
            self._manifest_cache = ManifestCache(self.cache)
        return self._manifest_cache

    def manifest_files(self, module: Module) -> List[ManifestFile]:
        """Every manifest of the module with its md5 and what it defines (each
        distinct content parsed once per run, and cached on disk)."""
        key = str(module.path)
        if key not in self._manifests:
            log.info("reading the manifests of %s", module.path)
            self._manifests[key] = self.manifest_cache.module(module.manifests_dir)
            for found in self._manifests[key]:
                _warn_if_unreadable(found)
        return self._manifests[key]

    def definitions(self, module: Module) -> List[Definition]:
        """Classes and defined types in the module's manifests."""
        return [d for found in self.manifest_files(module) for d in found.definitions]

    @cached_property
    def _public_modules_by_name(self) -> Dict[str, List[Module]]:
        by_name: Dict[str, List[Module]] = {}
        for module in self.modules:
            if self.is_public(module):
                by_name.setdefault(module.name, []).append(module)
        return by_name

    def set_aside(self, module: Module) -> Dict[str, str]:
        """The module's manifests found so far to be the site's own code (added
        or edited after install, by ``checksums.json`` or dpkg's record), or whose
        classes other than the main one are private for want of such a list,
        with why; for ``dev inventory``."""
        return dict(self._set_aside.get(str(module.path), {}))

    def published_files(self, module: Module) -> PublishedFiles:
        """The module's list of published files: its ``checksums.json``, else
        dpkg's record when a Debian package installed the directory, else none."""
        key = str(module.path)
        if key not in self._published:
            published = read_published_files(module.path)
            if not published.listed:
                published = self._dpkg.published_files(module.path) or published
            self._published[key] = published
        return self._published[key]

    def _published_definitions(self, module: Module, found: Optional[ManifestFile]) -> List[Definition]:
        """What a manifest of a public module defines, or nothing when the file is
        absent or is the site's own (privacy rule 3). Its MD5 comes with the parse
        (the cache's content key), so the file is not read a second time. A module
        with no list of its published files keeps only its main class (rule 3
        fails closed: a fork from git or a vendored copy may hold the site's classes)."""
        if found is None:
            return []
        key = str(module.path)
        published = self.published_files(module)
        relative = f"manifests/{found.relative}"
        if not published.listed:
            kept = [d for d in found.definitions if d.kind == "class" and d.name == module.name]
            if len(kept) < len(found.definitions):
                self._set_aside.setdefault(key, {})[relative] = UNLISTED_REASON
            return kept
        reason = published.set_aside(module.path, relative, found.md5)
        if reason is not None:
            self._set_aside.setdefault(key, {})[relative] = reason
            log.info("%s: classes in %s are treated as private: %s", module.path, relative, reason)
            return []
        return found.definitions

    def defines_public_class(self, name: str) -> bool:
        """Whether an installed public module defines class ``name`` (any case,
        as PuppetDB titles it), reading only the files Puppet's autoloader would:
        the cost grows with the classes asked about, not with every manifest installed.
        Verdicts are kept by the name as asked too: a site's profiles declare the
        same few classes thousands of times."""
        verdict = self._verdicts.get(name)
        if verdict is None:
            verdict = self._verdicts[name] = self._defines_public_class(name)
        return verdict

    def _defines_public_class(self, name: str) -> bool:
        canonical = class_name(name)
        if canonical is None or not reportable_class(canonical):
            return False
        if canonical not in self._class_lookups:
            self._class_lookups[canonical] = any(
                d.kind == "class" and d.name == canonical
                for module in self._public_modules_by_name.get(canonical.split("::", 1)[0], [])
                for relative in self.manifest_cache.listed(module.manifests_dir, autoload_files(canonical))
                for d in self._published_definitions(module, self._autoload_file(module, relative))
            )
        return self._class_lookups[canonical]

    def public_classes_of(self, module: Module) -> Set[str]:
        """The classes a public module publicly defines: in its own namespace, in the
        file Puppet's autoloader would load for each, and in a file as published.
        The same rule as :meth:`defines_public_class`, applied to every manifest.
        Kept per module for the run: the inventory and the modules metric ask for
        every module after :attr:`public_classes` has, and judging each manifest
        again would log each file set aside again. A copy, so no caller can change
        what the next one gets."""
        key = str(module.path)
        if key not in self._public_classes:
            self._public_classes[key] = self._find_public_classes(module)
        return set(self._public_classes[key])

    def _find_public_classes(self, module: Module) -> Set[str]:
        if not self.is_public(module):
            return set()
        classes: Set[str] = set()
        for found in self.manifest_files(module):
            relative = found.relative
            for d in self._published_definitions(module, found):
                if (
                    d.kind == "class"
                    and reportable_class(d.name)
                    and class_name(d.name) == d.name
                    and d.name.split("::", 1)[0] == module.name
                    and relative in autoload_files(d.name)
                ):
                    classes.add(d.name)
        return classes

    def _autoload_file(self, module: Module, relative: str) -> Optional[ManifestFile]:
        """One file of the module's ``manifests``, None when it has no such file."""
        manifests_dir = module.manifests_dir
        log.debug("looking up manifest %s/%s", manifests_dir, relative)  # formatted only if shown
        found = self.manifest_cache.read(manifests_dir, relative)
        if found is not None:
            _warn_if_unreadable(found)
        return found

    @cached_property
    def public_classes(self) -> Set[str]:
        """Lower-case names of the classes that installed public modules publicly define."""
        return {name for module in self.modules for name in self.public_classes_of(module)}

    @cached_property
    def puppetdb_config(self) -> Optional[PuppetDBConfig]:
        """``$confdir/puppetdb.conf`` with Puppet's certificate settings, or None when absent."""
        path = self.puppet.confdir / "puppetdb.conf"
        config = read_puppetdb_conf(path, self.puppet.values)
        if config is not None:
            log.info("PuppetDB settings from %s: %s", path, ", ".join(config.server_urls))
        return config

    @cached_property
    def puppetdb(self) -> Optional[PuppetDBClient]:
        config = self.puppetdb_config
        return PuppetDBClient(config) if config is not None else None

    @cached_property
    def class_usage(self) -> Optional[ClassUsage]:
        """Node counts per class and per (class, OS family), or None when PuppetDB
        is not configured or cannot answer (one warning says which server and why)."""
        if self.puppetdb is None:
            self.puppetdb_problem = "PuppetDB is not configured (no puppetdb.conf)"
            log.info("PuppetDB: not configured (no %s)", self.puppet.confdir / "puppetdb.conf")
            return None
        try:
            usage = fetch_class_usage(self.puppetdb)
        except PuppetDBError as exc:
            log.warning("%s; PuppetDB metrics are left empty", exc)
            self.puppetdb_problem = "PuppetDB could not be queried (the warning on stderr says why)"
            return None
        log.info("PuppetDB %s answered: %d classes declared, %d (class, OS family) pairs",
                 self.puppetdb.answered_by, len(usage.classes), len(usage.platforms))
        return usage

    def close(self) -> None:
        """Persist the manifest parse cache, keeping only what installed modules hold."""
        if self._manifest_cache is not None:
            self._manifest_cache.save(module.manifests_dir for module in self.store.modules.values())
        if self._owns_cache and self._cache is not None:
            self._cache.close()
            self._cache = None


def _warn_if_unreadable(found: ManifestFile) -> None:
    if found.error:
        log.warning("manifest %s: %s", found.path, found.error)
