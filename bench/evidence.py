#!/usr/bin/env python3
"""Benchmark release evidence against the loopback Forge and print figures.

A site links every module of Debian's puppet-module-* packages into one
environment; the loopback Forge publishes each as its release. Printed: the
cold fetch (`dropsonde update`: requests, wall and CPU time, peak RSS, size of
forge-releases.json), a warm report (`preview` with --update: its evidence
requests, which must be 0), and how many of the public modules' classes are
reported.

With --upstream DIR (a directory of Debian's .orig tarballs, as
`apt-get source --download-only` leaves them; see --fetch-upstream), the Forge
serves the upstream tarballs instead of Debian's trees: a stand-in for the
Forge's real tarballs, so the figure says how many classes survive Debian's
patches, and which modules lose classes.

Usage: bench/evidence.py [--upstream DIR] [--fetch-upstream DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Dict, Optional, Tuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dropsonde.vocabulary import normalize_slug  # noqa: E402
from tests.support.forge_server import EPOCH, ForgeModule, ForgeRelease, ForgeServer  # noqa: E402
from tests.support.puppet_tree import PuppetTree  # noqa: E402

DEBIAN_MODULES = Path("/usr/share/puppet/modules")


def debian_modules() -> Dict[str, Tuple[str, str]]:
    """Directory name -> (slug, version) of every Debian module with a Forge-shaped name."""
    found = {}
    for module in sorted(DEBIAN_MODULES.iterdir()):
        metadata = module / "metadata.json"
        if re.fullmatch(r"[a-z][a-z0-9_]*", module.name) and metadata.is_file():
            data = json.loads(metadata.read_text())
            slug = normalize_slug(data.get("name", ""))
            if slug is not None and slug.split("-", 1)[1] == module.name:
                found[module.name] = (slug, data["version"])
    return found


def timed(tree: PuppetTree, server: ForgeServer, *args: str) -> Tuple[float, float, float, int, str]:
    """Wall s, CPU s (user + system), peak RSS MiB, evidence requests and stdout of one
    dropsonde process, with a Forge refresh from ``server``."""
    before = len(server.state.release_requests())
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([shutil.which("dropsonde"), *tree.args(), "--update", "--forge-api", server.url, *args],
                                stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if status != 0:
            sys.exit(err.read().decode())
        text = out.read().decode()
    return (wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
            len(server.state.release_requests()) - before, text)


def site(root: Path, modules: Dict[str, Tuple[str, str]]) -> PuppetTree:
    tree = PuppetTree(root)
    production = tree.environment("production")
    for name in modules:
        os.symlink(DEBIAN_MODULES / name, production / "modules" / name)
    return tree


def reported_classes(tree: PuppetTree) -> Dict[str, Tuple[int, int]]:
    """Module name -> (classes reported, classes defined in its namespace where the autoloader finds them)."""
    proc = subprocess.run([shutil.which("dropsonde"), *tree.args(), "--no-update", "dev", "inventory", "--format",
                           "json"], capture_output=True, text=True, check=True)
    counts = {}
    for module in json.loads(proc.stdout)["modules"]:
        if module["public"]:
            counts[module["name"]] = (len(module["public_classes"]), len(module["classes"]))
    return counts


# ---- upstream tarballs (Debian's .orig) ----

def fetch_upstream(into: Path) -> None:
    """Download the .orig tarballs of the installed puppet-module-* source packages with a
    private apt configuration (a deb-src line for the configured Debian mirror)."""
    into.mkdir(parents=True, exist_ok=True)
    state = into / ".apt"
    for sub in ("lists/partial", "cache/archives/partial"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    mirror = "http://deb.debian.org/debian"
    for line in Path("/etc/apt/sources.list.d/debian.sources").read_text().splitlines() \
            if Path("/etc/apt/sources.list.d/debian.sources").is_file() else []:
        if line.startswith("URIs:") and "security" not in line:
            mirror = line.split(":", 1)[1].strip()
            break
    (state / "src.list").write_text(f"deb-src {mirror} bookworm main\n")
    apt = ["apt-get", "-qq", "-o", f"Dir::Etc::SourceList={state / 'src.list'}", "-o", "Dir::Etc::SourceParts=/dev/null",
           "-o", f"Dir::State::Lists={state / 'lists'}", "-o", f"Dir::Cache={state / 'cache'}"]
    subprocess.run(apt + ["update"], check=True)
    sources = subprocess.run(["dpkg-query", "-W", "-f", "${source:Package}\n", "puppet-module-*"],
                             capture_output=True, text=True).stdout.split()
    for source in sorted(set(sources)):
        if any(into.glob(f"{source}_*.orig.tar.*")):
            continue
        # only the .orig tarball: `apt-get source` gives up on the whole package when
        # another of its files is missing from the mirror
        uris = subprocess.run(apt + ["source", "--print-uris", source], cwd=into, capture_output=True, text=True).stdout
        for uri, name, _, digest in re.findall(r"'(\S+)' (\S+\.orig\.tar\.\w+) (\d+) SHA256:(\w+)", uris):
            try:
                data = urllib.request.urlopen(uri, timeout=60).read()
            except OSError as exc:  # the mirror may lack it (HTTPError is an OSError)
                print(f"{name}: {exc}", file=sys.stderr)
                continue
            if hashlib.sha256(data).hexdigest() == digest:
                (into / name).write_bytes(data)


def source_package(name: str) -> Optional[str]:
    """The source package that installed Debian module ``name``."""
    owner = subprocess.run(["dpkg", "-S", str((DEBIAN_MODULES / name / "metadata.json").resolve())],
                           capture_output=True, text=True).stdout.split(":", 1)[0].strip()
    if not owner:
        return None
    return subprocess.run(["dpkg-query", "-W", "-f", "${source:Package}", owner],
                          capture_output=True, text=True).stdout.strip() or None


def upstream_release(upstream: Path, name: str, slug: str, version: str) -> Optional[ForgeRelease]:
    """The .orig tarball of module ``name`` repacked as the Forge packs a release
    (``<slug>-<version>/`` on top, gzip), or None when there is none."""
    source = source_package(name)
    origs = sorted(upstream.glob(f"{source}_*.orig.tar.*")) if source else []
    if not origs:
        return None
    with tarfile.open(origs[-1]) as archive:
        members = [m for m in archive.getmembers() if m.isreg()]
        tops = {m.name.split("/", 1)[0] for m in members}
        strip = len(tops) == 1 and all("/" in m.name for m in members)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as out:
            for member in members:
                relative = member.name.split("/", 1)[1] if strip else member.name
                data = archive.extractfile(member).read()
                info = tarfile.TarInfo(f"{slug}-{version}/{relative}")
                info.size = len(data)
                out.addfile(info, io.BytesIO(data))
    return ForgeRelease(slug, version, buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, help="a directory of Debian's .orig tarballs")
    parser.add_argument("--fetch-upstream", type=Path, help="download them into this directory first")
    options = parser.parse_args()
    if not shutil.which("dropsonde"):
        sys.exit("dropsonde is not on PATH (activate .venv)")
    if options.fetch_upstream:
        fetch_upstream(options.fetch_upstream)
        options.upstream = options.upstream or options.fetch_upstream
    modules = debian_modules()
    start = time.perf_counter()
    releases = [ForgeRelease.of(DEBIAN_MODULES / name, slug, version) for name, (slug, version) in modules.items()]
    print(f"{len(modules)} Debian modules with a Forge name; their tarballs built in {time.perf_counter() - start:.1f} s "
          f"({sum(len(r.tarball) for r in releases) / 2**20:.1f} MiB)")
    forge_modules = [ForgeModule(slug, EPOCH) for slug in sorted({slug for slug, _ in modules.values()})]
    with tempfile.TemporaryDirectory() as tmp, ForgeServer(forge_modules, releases) as server:
        tree = site(Path(tmp) / "site", modules)
        wall, cpu, rss, requests, _ = timed(tree, server, "update")
        size = (tree.cachepath / "forge-releases.json").stat().st_size
        print(f"cold `update`: {requests} evidence requests (record + tarball for {len(releases)} releases), "
              f"{wall:.2f} s wall, {cpu:.2f} s CPU, peak RSS {rss:.0f} MiB; forge-releases.json {size / 1024:.0f} KiB")
        for label in ("warm `preview` (1st)", "warm `preview` (2nd)"):
            wall, cpu, rss, requests, _ = timed(tree, server, "preview", "--format", "json")
            print(f"{label}: {requests} evidence requests, {wall:.2f} s wall, {cpu:.2f} s CPU, peak RSS {rss:.0f} MiB")
        debian = reported_classes(tree)
    reported, defined = sum(r for r, _ in debian.values()), sum(d for _, d in debian.values())
    print(f"Debian-built releases: {reported} classes reported of the {defined} the public modules define")
    if not options.upstream:
        return
    upstream_releases, missing = [], []
    for name, (slug, version) in modules.items():
        release = upstream_release(options.upstream, name, slug, version)
        (upstream_releases.append(release) if release else missing.append(name))
    with tempfile.TemporaryDirectory() as tmp, ForgeServer(forge_modules, upstream_releases) as server:
        tree = site(Path(tmp) / "site", modules)
        timed(tree, server, "update")
        upstream = reported_classes(tree)
    compared = [name for name in debian if name not in missing]
    before, kept = sum(debian[n][0] for n in compared), sum(upstream[n][0] for n in compared)
    print(f"upstream (.orig) tarballs for {len(compared)} modules (the mirror has none for {len(missing)}: "
          f"{', '.join(missing) or 'none'})")
    print(f"over those {len(compared)} modules: {kept} of their {before} classes survive Debian's patches "
          f"({before - kept} lost)")
    losers = sorted(((debian[n][0] - upstream[n][0], n) for n in compared if upstream[n][0] < debian[n][0]),
                    reverse=True)
    for lost, name in losers:
        print(f"  {name}: {lost} of {debian[name][0]} classes lost")


if __name__ == "__main__":
    main()
