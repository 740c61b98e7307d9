"""Whether a module, a manifest or a class is public: privacy rules 1 and 3,
decided here and nowhere else, each verdict a value with its reason (what
``dev inventory`` shows, and what the metrics use).

Rule 1: a module is public when its slug is on the Forge (the Forge cache) and
its directory carries that Forge name.

Rule 3: a class is public when a public module defines it in its own
namespace, in a file Puppet's autoloader would load for it, and that file is
byte for byte (SHA-256) the file of the same path in the release the Forge
published for the module's slug and version (:mod:`dropsonde.release_evidence`).
Nothing the site can write is evidence. Without evidence (an unpublished
version, a release not fetched yet, the Forge unreachable) a public module's
only public class is its main class, defined in ``init.pp``: its name is the
module's, which the report sends anyway.

Every answer is computed from the Forge cache, the evidence and the files, and
kept for the run only so a file is not hashed twice: asking in another order
gives the same answers.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from dropsonde.forge_cache import ForgeCache
from dropsonde.privacy import PRIVATE, class_name, reportable_class
from dropsonde.puppet.environments import Module
from dropsonde.puppet.manifest_cache import ManifestFile
from dropsonde.release_evidence import Release, ReleaseEvidence, autoload_files, published_version, release_key
from dropsonde.tree_files import read_tree_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """Public or not, and why (for ``dev inventory``; never sent)."""

    public: bool
    reason: str


MAIN_CLASS = "the module's main class (its name is the module's, public anyway)"


def module_verdict(forge: ForgeCache, module: Module) -> Verdict:
    """Privacy rule 1: public only if its slug is on the Forge and its directory
    carries the Forge name (a renamed fork's directory name may be private).
    Needs no release evidence: it decides which releases' evidence to fetch."""
    if module.slug is None:
        return Verdict(False, module.problem or "no usable metadata.json")
    if not forge.is_public(module.slug):
        if forge.problem:
            return Verdict(False, f"{forge.problem}: nothing is public")
        return Verdict(False, f"{module.slug} is not in the Forge module cache")
    if module.slug.split("-", 1)[1] != module.name:
        return Verdict(False, f"directory name differs from the Forge name {module.slug}")
    return Verdict(True, f"{module.slug} is on the Forge")


class Publicness:
    """The verdicts for one run. ``manifest_files`` gives every manifest of a
    module, ``autoload_file`` one by its path under ``manifests`` (None when
    absent), ``autoload_listed`` those of some paths the module has: the site's
    parse cache, so each file is parsed once per content."""

    def __init__(self, forge: ForgeCache, evidence: ReleaseEvidence,
                 manifest_files: Callable[[Module], List[ManifestFile]],
                 autoload_file: Callable[[Module, str], Optional[ManifestFile]],
                 autoload_listed: Callable[[Module, List[str]], List[str]],
                 modules: Callable[[], List[Module]]) -> None:
        self.forge = forge
        self.evidence = evidence
        self._manifest_files = manifest_files
        self._autoload_file = autoload_file
        self._autoload_listed = autoload_listed
        self._modules = modules
        self._by_name: Optional[Dict[str, List[Module]]] = None
        self._files: Dict[Tuple[str, str], Verdict] = {}
        self._classes: Dict[str, Verdict] = {}
        self._module_classes: Dict[str, Dict[str, Verdict]] = {}
        # r10k keeps a copy of each module per environment: a content is read and hashed
        # once per run, whichever copy comes first. Matching by MD5 cannot make a private
        # class public: a class must also be one the release's own file defines.
        self._sha256_by_md5: Dict[str, str] = {}

    def module(self, module: Module) -> Verdict:
        """Privacy rule 1 (see :func:`module_verdict`)."""
        return module_verdict(self.forge, module)

    # the evidence

    def release(self, module: Module) -> Tuple[Optional[Release], str]:
        """The published release of the module's slug and version, or None and why there is none."""
        if module.slug is None:
            return None, "no slug"
        version = published_version(module.version)
        if version is None:
            return None, "its version is not a plain X.Y.Z, so it is no release the Forge published"
        key = release_key(module.slug, version)
        if self.evidence.problem:
            return None, f"no release evidence: {self.evidence.problem}"
        release = self.evidence.release(module.slug, version)
        if release is not None:
            return release, f"as published in {key}"
        gone = self.evidence.unavailable.get(key)
        if gone is not None:
            return None, f"no release evidence for {key}: {gone.reason}"
        return None, (f"no release evidence for {key} yet (fetched from the Forge by `dropsonde update` "
                      "or a report's Forge refresh)")

    def version(self, module: Module) -> str:
        """The module's version as a report may send it: only a release the Forge published
        (its evidence is known), else the placeholder. A version the site chose (a fork's
        bump, digits of its own) is the site's information, not the Forge's."""
        release = self.release(module)[0]
        return release.version if release is not None else PRIVATE

    def manifest(self, module: Module, found: ManifestFile) -> Verdict:
        """Whether one manifest of a public module is the published release's file of the same path."""
        key = (str(module.path), found.relative)
        verdict = self._files.get(key)
        if verdict is None:
            verdict = self._files[key] = self._manifest(module, found)
            if not verdict.public and self.release(module)[0] is not None:
                log.info("%s: classes in manifests/%s are private: %s", module.path, found.relative, verdict.reason)
        return verdict

    def _manifest(self, module: Module, found: ManifestFile) -> Verdict:
        release, why = self.release(module)
        if release is None:
            return Verdict(False, f"{why}: only the main class is reportable")
        published = release.manifests.get(found.relative)
        if published is None:
            return Verdict(False, f"not in the published release {release.key} (added by the site)")
        sha256 = self._sha256_by_md5.get(found.md5 or "")
        if sha256 is None:
            try:
                data = read_tree_file(found.path, "manifest", within=str(module.path))
            except OSError as exc:
                return Verdict(False, f"cannot be read ({exc.strerror or exc})")
            if found.md5 != hashlib.md5(data, usedforsecurity=False).hexdigest():
                return Verdict(False, "changed while it was read")
            sha256 = self._sha256_by_md5[found.md5] = hashlib.sha256(data).hexdigest()
        if sha256 != published.sha256:
            return Verdict(False, f"differs from the published release {release.key} (edited by the site)")
        return Verdict(True, why)

    # rule 3

    def defined_in(self, module: Module, found: ManifestFile, name: str) -> Verdict:
        """Whether class ``name``, defined in ``found`` of ``module``, is public."""
        if not self.module(module).public:
            return Verdict(False, "its module is not public")
        if not reportable_class(name) or class_name(name) != name:
            return Verdict(False, "not a reportable class name")
        if name.split("::", 1)[0] != module.name:
            return Verdict(False, f"outside the module's namespace {module.name}")
        if found.relative not in autoload_files(name):
            return Verdict(False, f"Puppet's autoloader would not load it from manifests/{found.relative}")
        if name == module.name:
            return Verdict(True, MAIN_CLASS)
        verdict = self.manifest(module, found)
        release = self.release(module)[0]
        if verdict.public and release is not None and name not in release.manifests[found.relative].classes:
            # the file is the release's, byte for byte: what it defines is what the release's
            # parse found, never a parse cached under the same MD5 (it would take a collision)
            return Verdict(False, f"not a class of manifests/{found.relative} as {release.key} publishes it")
        return verdict

    def module_classes(self, module: Module) -> Dict[str, Verdict]:
        """Every class the module's manifests define, with its verdict (a class
        defined twice is public when one of its definitions is)."""
        key = str(module.path)
        if key not in self._module_classes:
            verdicts: Dict[str, Verdict] = {}
            for found in self._manifest_files(module):
                for definition in found.definitions:
                    if definition.kind == "class" and not verdicts.get(definition.name, Verdict(False, "")).public:
                        verdicts[definition.name] = self.defined_in(module, found, definition.name)
            self._module_classes[key] = verdicts
        return dict(self._module_classes[key])

    def private_manifests(self, module: Module) -> Dict[str, str]:
        """The manifests of a public module whose classes are not reported because the
        file is not as published (``manifests/x.pp`` -> why); empty for a private module."""
        if not self.module(module).public:
            return {}
        return {f"manifests/{found.relative}": verdict.reason
                for found in self._manifest_files(module)
                if any(d.name != module.name for d in found.definitions)
                for verdict in [self.manifest(module, found)] if not verdict.public}

    def class_verdict(self, name: str) -> Verdict:
        """Whether some installed public module publicly defines class ``name`` (any
        case, as PuppetDB titles it), reading only the files Puppet's autoloader would:
        the cost grows with the classes asked about, not with every manifest installed."""
        verdict = self._classes.get(name)
        if verdict is None:
            verdict = self._classes[name] = self._class_verdict(name)
        return verdict

    def _class_verdict(self, name: str) -> Verdict:
        canonical = class_name(name)
        if canonical is None or not reportable_class(canonical):
            return Verdict(False, "not a reportable class name")
        if canonical != name:
            return self.class_verdict(canonical)
        why = "no public module installed here defines it"
        for module in self._public_modules_by_name().get(canonical.split("::", 1)[0], []):
            for relative in self._autoload_listed(module, list(autoload_files(canonical))):
                found = self._autoload_file(module, relative)
                if found is None or not any(d.kind == "class" and d.name == canonical for d in found.definitions):
                    continue
                verdict = self.defined_in(module, found, canonical)
                if verdict.public:
                    return verdict
                why = verdict.reason
        return Verdict(False, why)

    def _public_modules_by_name(self) -> Dict[str, List[Module]]:
        if self._by_name is None:
            by_name: Dict[str, List[Module]] = {}
            for module in self._modules():
                if self.module(module).public:
                    by_name.setdefault(module.name, []).append(module)
            self._by_name = by_name
        return self._by_name
