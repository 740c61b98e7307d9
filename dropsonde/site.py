"""The site as plugins see it: Puppet's settings, the environments and their
modules, the Forge cache and release evidence, parsed manifests, and the
verdicts of :mod:`dropsonde.publicness` on what is public.

Everything expensive is computed on first use and kept, so a run that only
needs ``environment_count`` never parses a manifest, and a module linked into
thirty environments is parsed once.
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

from dropsonde.cache_dir import CacheDir
from dropsonde.config import Options
from dropsonde.forge_cache import ForgeCache, load_forge_cache
from dropsonde.publicness import Publicness, Verdict, module_verdict
from dropsonde.puppet.environments import (
    Environment,
    Module,
    ModuleStore,
    discover_environments,
)
from dropsonde.puppet.manifest_cache import SET_ASIDE_BY_RUN_BUDGET, SET_ASIDE_BY_RUN_OUTPUT, ManifestCache, ManifestFile
from dropsonde.puppet.manifests import Definition
from dropsonde.release_evidence import ReleaseEvidence, load_evidence, published_version
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
    on a refresh before the site is built); otherwise it is read on first use,
    as is the release evidence (after the caller refreshed it, if it does)."""

    def __init__(
        self,
        options: Options,
        puppet: PuppetSettings,
        forge: Optional[ForgeCache] = None,
        cache: Optional[CacheDir] = None,
    ) -> None:
        self.options = options
        self.puppet = puppet
        self.cachepath = cache.path if cache is not None else cache_path(options, puppet)
        self._cache = cache
        self._owns_cache = cache is None
        self._forge = forge
        self._evidence: Optional[ReleaseEvidence] = None
        self.store = ModuleStore()
        self._manifests: Dict[str, List[ManifestFile]] = {}
        self._manifest_cache: Optional[ManifestCache] = None
        #: why PuppetDB data is missing, for the preview (no host names: they are private)
        self.puppetdb_problem: Optional[str] = None

    @property
    def forge(self) -> ForgeCache:
        """The list of public modules (privacy rule 1), read once."""
        if self._forge is None:
            self._forge = load_forge_cache(self.cache)
        return self._forge

    @property
    def evidence(self) -> ReleaseEvidence:
        """What the Forge published, per release (privacy rule 3), read once."""
        if self._evidence is None:
            self._evidence = load_evidence(self.cache)
        return self._evidence

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

    @cached_property
    def publicness(self) -> Publicness:
        """The one judge of what is public (privacy rules 1 and 3), for this run.
        Built on first use, from the Forge list and the release evidence as they
        are then: a report's session refreshes both before anything is judged."""
        return Publicness(self.forge, self.evidence, self.manifest_files, self._autoload_file, self._autoload_listed,
                          lambda: self.modules)

    def publicity(self, module: Module) -> Verdict:
        """Privacy rule 1 for one module, with the reason (no release evidence needed)."""
        return module_verdict(self.forge, module)

    def is_public(self, module: Module) -> bool:
        return self.publicity(module).public

    @cached_property
    def _releases_in_use(self) -> List[Tuple[str, str]]:
        wanted = {(module.slug, version) for module in self.modules
                  if module.slug is not None and self.is_public(module)
                  for version in [published_version(module.version)] if version is not None}
        return sorted(wanted)

    def releases_in_use(self) -> List[Tuple[str, str]]:
        """(slug, version) of every public module installed whose version is a plain
        X.Y.Z: the releases whose evidence the site needs. Public information: the
        ``modules`` column reports the same slugs and versions. Found once per run
        (the modules and the Forge list do not change during it); a new list each call."""
        return list(self._releases_in_use)

    def is_published(self, slug: str, version: str) -> bool:
        """Whether the release evidence proves the Forge published ``slug`` at ``version``."""
        return self.evidence.release(slug, version) is not None

    def reported_version(self, module: Module) -> str:
        """The version a report may send for a public module: a release the Forge published, else the placeholder."""
        return self.publicness.version(module)

    def releases_without_evidence(self) -> List[str]:
        """``slug-version`` of the releases in use that have no evidence (not fetched,
        unavailable, or the kept evidence unusable): only their main class is reported."""
        evidence = self.evidence
        return [f"{slug}-{version}" for slug, version in self.releases_in_use()
                if evidence.problem or evidence.release(slug, version) is None]

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

    def defines_public_class(self, name: str) -> bool:
        """Whether an installed public module publicly defines class ``name`` (any
        case, as PuppetDB titles it); see :meth:`Publicness.class_verdict`."""
        return self.publicness.class_verdict(name).public

    def public_classes_of(self, module: Module) -> Set[str]:
        """The classes a module publicly defines (a new set each call)."""
        return {name for name, verdict in self.publicness.module_classes(module).items() if verdict.public}

    def private_manifests(self, module: Module) -> Dict[str, str]:
        """The manifests of a public module whose classes stay private, with why (``dev inventory``)."""
        return self.publicness.private_manifests(module)

    def _autoload_listed(self, module: Module, candidates: List[str]) -> List[str]:
        """Those of ``candidates`` the module's ``manifests`` has (from one listing per
        run: a deep name that leads nowhere costs set lookups, not file lookups)."""
        return self.manifest_cache.listed(module.manifests_dir, candidates)

    def _autoload_file(self, module: Module, relative: str) -> Optional[ManifestFile]:
        """One file of the module's ``manifests``, None when it has no such file."""
        manifests_dir = module.manifests_dir
        # only files the module's listing has get here (see _autoload_listed): -v names each
        log.info("reading manifest %s/%s", manifests_dir, relative)
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
        except MemoryError:
            log.warning("PuppetDB answers set aside: reading them ran out of memory; PuppetDB metrics are left empty")
            self.puppetdb_problem = "PuppetDB could not be queried (the warning on stderr says why)"
            return None
        log.info("PuppetDB %s answered: %d classes declared, %d (class, OS family) pairs",
                 self.puppetdb.answered_by, len(usage.classes), len(usage.platforms))
        return usage

    def close(self) -> None:
        """Persist the manifest parse cache, keeping only what installed modules hold."""
        if self._manifest_cache is not None:
            self._manifest_cache.warn_set_aside()
            self._manifest_cache.save(module.manifests_dir for module in self.store.modules.values())
        if self._owns_cache and self._cache is not None:
            self._cache.close()
            self._cache = None


def _warn_if_unreadable(found: ManifestFile) -> None:
    if found.error and found.error not in (SET_ASIDE_BY_RUN_BUDGET, SET_ASIDE_BY_RUN_OUTPUT):  # one warning (close)
        log.warning("manifest %s: %s", found.path, found.error)
