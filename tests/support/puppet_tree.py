"""A Puppet site built on disk: confdir, codedir, cache, modules as installed
from the Forge, and the Site and plugin output the CLI would make of them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from tests.support.cli import Result, run_dropsonde


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def make_module(
    root: Path,
    name: str,
    slug: Optional[str],
    version: str = "1.0.0",
    manifests: Optional[Dict[str, str]] = None,
    dependencies: Iterable[dict] = (),
) -> Path:
    """A module directory with metadata.json (unless ``slug`` is None) and manifests.
    Only its main class is public until the Forge's release vouches for its files:
    :meth:`PuppetTree.publish` records it as published."""
    module = root / name
    module.mkdir(parents=True, exist_ok=True)
    if slug is not None:
        metadata = {"name": slug, "version": version, "dependencies": list(dependencies)}
        write(module / "metadata.json", json.dumps(metadata))
    for relative, text in (manifests or {}).items():
        write(module / "manifests" / relative, text)
    return module


def forge_checksums(module: Path) -> None:
    """checksums.json as `puppet module build` writes it: every file, by relative path, MD5 of
    its bytes. What a site can regenerate over its own edits: never evidence of anything."""
    import hashlib

    sums = {
        path.relative_to(module).as_posix(): hashlib.md5(path.read_bytes()).hexdigest()
        for path in sorted(module.rglob("*"))
        if path.is_file() and path.relative_to(module).as_posix() != "checksums.json"
    }
    (module / "checksums.json").write_text(json.dumps(sums, indent=2))


class PuppetTree:
    """A confdir, codedir and cache directory under one temporary root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.confdir = root / "etc" / "puppet"
        self.codedir = root / "code"
        self.cachepath = root / "cache"
        self.confdir.mkdir(parents=True)
        (self.codedir / "environments").mkdir(parents=True)
        self.cachepath.mkdir()
        write(
            self.confdir / "puppet.conf",
            "[main]\ncertname = testserver.example.test\nbasemodulepath = $codedir/modules\nssldir = $confdir/ssl\n",
        )
        # Tests never reach the real Forge; those about refreshing pass --update and --forge-api.
        write(self.confdir.parent / "telemetry.yaml", ":update: false\n")

    @property
    def environments(self) -> Path:
        return self.codedir / "environments"

    def environment(self, name: str, modulepath: Optional[str] = None) -> Path:
        env = self.environments / name
        (env / "modules").mkdir(parents=True, exist_ok=True)
        if modulepath is not None:
            write(env / "environment.conf", f"modulepath = {modulepath}\n")
        return env

    def forge(self, slugs: List[str]) -> None:
        write(self.cachepath / "forge.json", json.dumps({"timestamp": "2026-11-01T00:00:00+00:00", "modules": slugs}))

    def publish(self, *modules: Path) -> None:
        """Record each module tree, as it is now, as the release the Forge published for its
        slug and version: the release evidence a report's refresh would fetch, straight into
        the cache (the fetching itself is tested against the loopback Forge)."""
        import hashlib

        from dropsonde.cache_dir import CacheDir
        from dropsonde.forge_releases import published_manifest
        from dropsonde.release_evidence import Release, autoloadable_path, load_evidence, save_evidence

        releases = []
        for module in modules:
            metadata = json.loads((module / "metadata.json").read_text())
            files = {path.relative_to(module / "manifests").as_posix(): path.read_bytes()
                     for path in sorted((module / "manifests").rglob("*.pp")) if path.is_file()}
            releases.append(Release(
                metadata["name"].replace("/", "-").lower(), metadata["version"], hashlib.sha256(b"").hexdigest(),
                "2026-11-01T00:00:00+00:00",
                {relative: published_manifest(data) for relative, data in files.items() if autoloadable_path(relative)}))
        with CacheDir.open(self.cachepath) as cache:
            save_evidence(cache, load_evidence(cache).merged(releases, {}))

    def args(self) -> List[str]:
        return ["--confdir", str(self.confdir), "--codedir", str(self.codedir), "--cachepath", str(self.cachepath)]

    def run(self, *args: str, env: Optional[Dict[str, str]] = None) -> Result:
        return run_dropsonde(*self.args(), *args, env=env)

    def report(self, *global_args: str) -> dict:
        """The JSON preview's snapshot values, by column."""
        result = self.run(*global_args, "preview", "--format", "json")
        assert result.returncode == 0, result.stderr
        snapshots = result.json()["self-service-analytics"]["snapshots"]
        return {column: snapshot["value"] for column, snapshot in snapshots.items()}


def site_for(tree: PuppetTree):
    """A Site over ``tree``, as the CLI would build it."""
    from dropsonde.config import Options
    from dropsonde.site import Site, puppet_settings

    options = Options(confdir=str(tree.confdir), codedir=str(tree.codedir), cachepath=str(tree.cachepath))
    return Site(options, puppet_settings(options))


def run_metric(plugin_class, tree: PuppetTree) -> dict:
    """One plugin's validated output over ``tree``."""
    from dropsonde.report import validate_plugin_data

    plugin = plugin_class()
    plugin.name = plugin_class.__name__.lower()
    return validate_plugin_data(plugin, plugin.run(site_for(tree)))


def backdate_last_submission(tree: PuppetTree, seconds: int) -> None:
    """Move the recorded submission ``seconds`` into the past, as that much time passing would."""
    path = tree.cachepath / "last-submission.json"
    record = json.loads(path.read_text())
    when = datetime.fromisoformat(record["submitted_at"]) - timedelta(seconds=seconds)
    record["submitted_at"] = when.isoformat(timespec="seconds")
    path.write_text(json.dumps(record))
