#!/usr/bin/env python3
"""Benchmark the codedir-only probe on a realistic tree and print figures.

Tree: N environments, each linking every module of Debian's puppet-module-*
packages (/usr/share/puppet/modules, 93 on Debian 12) plus 5 private modules
of its own with manifests that declare public classes. Measures
`dropsonde preview --format json` wall time and peak RSS, cold (no parse
cache) and warm, for 30 and 300 environments, and `dropsonde --help`.

Usage: bench/probe.py [--runs 3] [--sizes 30,300]   (needs the puppet-module-* packages: tests/run installs them)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

MODULES = Path("/usr/share/puppet/modules")


def build_tree(root: Path, environments: int, shared_private: bool = False) -> list:
    """The tree; with ``shared_private`` every environment links the same 5 private
    module directories instead of having its own (so distinct directories stay fixed)."""
    (root / "puppet").mkdir(parents=True)
    (root / "puppet" / "puppet.conf").write_text("[main]\nbasemodulepath = $codedir/modules\nssldir = $confdir/ssl\n")
    (root / "telemetry.yaml").write_text(":update: false\n")  # measure the probe, not a Forge refresh
    names = sorted(p.name for p in MODULES.iterdir() if p.name.replace("_", "").isalnum() and p.name.islower())
    slugs = []
    for name in names:
        try:
            slugs.append(json.loads((MODULES / name / "metadata.json").read_text())["name"].replace("/", "-"))
        except (OSError, ValueError, KeyError):
            pass
    (root / "cache").mkdir()
    (root / "cache" / "forge.json").write_text(json.dumps({"timestamp": "2026-11-27T00:00:00+00:00", "modules": slugs}))
    for index in range(environments):
        modules = root / "code" / "environments" / f"env{index:03d}" / "modules"
        modules.mkdir(parents=True)
        for name in names:
            os.symlink(MODULES / name, modules / name)
        for private in range(5):
            module = modules / f"private{private}"
            if shared_private and index > 0:
                os.symlink(root / "code" / "environments" / "env000" / "modules" / module.name, module)
                continue
            (module / "manifests").mkdir(parents=True)
            (module / "metadata.json").write_text(json.dumps({
                "name": f"site-private{private}", "version": "1.0.0",
                "dependencies": [{"name": "puppetlabs/stdlib", "version_requirement": ">= 4.0.0"}],
            }))
            (module / "manifests" / "init.pp").write_text(
                f"class private{private} {{\n  include apache, mysql::server\n  class {{ 'ntp': }}\n}}\n"
            )
    return ["--confdir", str(root / "puppet"), "--codedir", str(root / "code"), "--cachepath", str(root / "cache")]


def dropsonde_command() -> list:
    """The installed ``dropsonde`` (the venv's, when this runs in one: to measure
    another revision, run this script with the python of a venv it is installed in).

    An installed package has its bytecode compiled at install time; an editable
    checkout (with PYTHONDONTWRITEBYTECODE set) would recompile on every run, so
    this checkout's is compiled here.
    """
    script = Path(sys.executable).parent / "dropsonde"
    if not script.exists():
        script = Path(shutil.which("dropsonde") or "dropsonde")
    package = Path(__file__).resolve().parent.parent / "dropsonde"
    if package.is_dir():
        subprocess.run([str(script.parent / "python"), "-m", "compileall", "-q", str(package)], check=True)
    return [str(script)]


@dataclass
class Figures:
    """Medians of wall and CPU (user + system) seconds, and the largest peak RSS."""

    wall: float
    cpu: float
    rss_mib: float

    def __str__(self) -> str:
        return f"{self.wall:.2f} s (cpu {self.cpu:.2f} s)"


def measure(command: list) -> tuple:
    """Wall seconds, CPU seconds and peak RSS (MiB) of one run of ``command`` in a fresh process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        if status != 0:
            errors.seek(0)
            sys.exit(f"{' '.join(command)} failed: {errors.read().decode()}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


# The caches a cold run starts without: what is kept by content, the parse results of
# manifests and of Puppetfiles and the schema verdicts of the plugins' data.
PARSE_CACHES = ("manifests.json", "puppetfiles.json", "validated.json")


def run(command: list, runs: int, cold_cache: Optional[Path] = None) -> Figures:
    """Figures over ``runs`` runs; the parse caches in the directory ``cold_cache`` are
    deleted before each. CPU time is the steadier figure on a shared machine; wall
    time is what an admin waits."""
    samples = []
    for _ in range(runs):
        for name in PARSE_CACHES if cold_cache is not None else ():
            (cold_cache / name).unlink(missing_ok=True)
        samples.append(measure(command))
    wall, cpu, rss = zip(*samples)
    return Figures(statistics.median(wall), statistics.median(cpu), max(rss))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="30,300", help="numbers of environments, comma-separated")
    options = parser.parse_args()
    if not MODULES.is_dir():
        sys.exit("needs Debian's puppet-module-* packages under /usr/share/puppet/modules")
    command = dropsonde_command()
    help_run = run([*command, "--help"], options.runs)
    print(f"dropsonde --help: {help_run.wall:.3f} s (cpu {help_run.cpu:.3f} s), {help_run.rss_mib:.0f} MiB")
    module_count = len(list(MODULES.iterdir()))
    sizes = [int(size) for size in options.sizes.split(",")]
    for environments, shared in [(size, shared) for shared in (False, True) for size in sizes]:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            args = build_tree(root, environments, shared)
            cache = root / "cache"
            cold = run([*command, *args, "preview", "--format", "json"], options.runs, cold_cache=cache)
            warm = run([*command, *args, "preview", "--format", "json"], options.runs)
            directories = module_count + (5 if shared else environments * 5)
            print(
                f"{environments:4d} environments, private modules {'shared' if shared else 'per environment'}: "
                f"{directories} distinct module directories, {environments * (module_count + 5)} links: "
                f"cold {cold} / {cold.rss_mib:.0f} MiB, warm {warm} / {warm.rss_mib:.0f} MiB"
            )

if __name__ == "__main__":
    main()
