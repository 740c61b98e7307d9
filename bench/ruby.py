#!/usr/bin/env python3
"""Side by side with Puppet's Ruby dropsonde client on the same trees, and print figures.

Runs this checkout's `dropsonde preview --format json` and the Ruby client's,
interleaved (ours cold, Ruby, ours warm, Ruby, per round; with ``--before``,
an older revision's beside ours, each with its own cache directory) on the same trees
with the same plugins: the Ruby client's plugins that need no PuppetDB
(dependencies, environments, modules, puppetfiles; its `platforms` reports
nothing without PuppetDB and our `profiles` has no Ruby counterpart, so both
stay off). Both sides run offline from the same Forge cache (`forge.json`, the
same file format) and the same `telemetry.yaml` (``:update: false``).

Trees: bench/r10k.py's (N environments, each a full copy of a control
repository) and bench/probe.py's codedir tree (N environments × every module of
Debian's puppet-module-* packages). For each, medians of ``--runs`` rounds of
CPU (user + system of the child) and wall seconds, the largest peak RSS, and
ours / Ruby ratios. Cold for us = parse caches deleted (probe.PARSE_CACHES);
the Ruby client keeps no cache, so every Ruby run is the same and its runs
are pooled. The public modules each side reports are printed: the clients
walk the same modules, but ours withholds a few the Ruby client reports (a
slug with no author, a directory named unlike its metadata.json).

The Ruby client is not built or fetched here: give its command with
``--ruby-dropsonde`` (README.md, "Side by side with the Ruby client", says how
it was obtained). It is
run with PUPPET_CONFDIR, PUPPET_CODEDIR, PUPPET_VARDIR and PUPPET_LOGDIR set to
the tree (the environment variables its `Puppet.initialize_settings` reads).

Usage: bench/ruby.py --ruby-dropsonde /path/to/dropsonde [--runs 7] [--trees r10k:40,codedir:30]
                     [--before /other/venv/bin/dropsonde]   (an older revision, interleaved too;
                     compile its bytecode first when PYTHONDONTWRITEBYTECODE is set)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import probe
import r10k

# The Ruby client's plugins that need no PuppetDB, enabled on both sides.
PLUGINS = "dependencies,environments,modules,puppetfiles"

TREES: Dict[str, Callable[[Path, int], list]] = {
    "r10k": lambda root, size: r10k.build_tree(root, size, edits=2),
    "codedir": lambda root, size: probe.build_tree(root, size),
}


@dataclass
class Side:
    """One client's command line and environment on one tree."""

    command: list
    env: dict
    cache: Optional[Path]  # ours: the cache directory a cold run empties of parse caches

    def run(self) -> tuple:
        """(wall, cpu, rss MiB) of one run, the command failing the benchmark if it fails."""
        return measure(self.command, self.env)

    def report(self) -> dict:
        """The JSON report of one run."""
        out = subprocess.run(self.command, env=self.env, check=True, capture_output=True)
        return json.loads(out.stdout)


def measure(command: list, env: dict) -> tuple:
    """probe.measure with an environment of its own."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return probe.measure(command)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def our_side(root: Path, args: list, command: list, label: str) -> Side:
    """A dropsonde revision's command on the tree, with a cache directory of its own
    (a copy of the tree's, so of its Forge list): revisions never share parse caches."""
    options = dict(zip(args[::2], args[1::2]))
    cache = root / f"cache-{label}"
    shutil.copytree(options["--cachepath"], cache)
    options["--cachepath"] = str(cache)
    global_args = [part for option in options.items() for part in option]
    return Side([*command, *global_args, "--enable", PLUGINS, "preview", "--format", "json"], dict(os.environ), cache)


def ruby_side(root: Path, args: list, ruby: list) -> Side:
    """The Ruby client's command on the tree: Puppet's directories from the environment."""
    options = dict(zip(args[::2], args[1::2]))
    env = dict(os.environ, PUPPET_CONFDIR=options["--confdir"], PUPPET_CODEDIR=options["--codedir"],
               PUPPET_VARDIR=str(root / "ruby-vardir"), PUPPET_LOGDIR=str(root / "ruby-logdir"))
    return Side([*ruby, "--cachepath", options["--cachepath"], "--enable", PLUGINS, "preview", "--format", "json"],
                env, None)


def module_slugs(report: dict) -> set:
    """The public module slugs a report names (both clients' reports have this shape)."""
    return {row["slug"] for row in report["self-service-analytics"]["snapshots"]["modules"]["value"]}


def median(samples: List[tuple]) -> tuple:
    """Median wall, median CPU, largest RSS."""
    wall, cpu, rss = zip(*samples)
    return statistics.median(wall), statistics.median(cpu), max(rss)


def compare(kind: str, size: int, ruby: list, ours: Dict[str, list], runs: int) -> None:
    """Build one tree, see what each side reports on it, then time them interleaved:
    per round, each of our revisions cold then the Ruby client, then each warm then
    the Ruby client."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        args = TREES[kind](root, size)
        theirs = ruby_side(root, args, ruby)
        revisions = {label: our_side(root, args, command, label) for label, command in ours.items()}
        their_slugs = module_slugs(theirs.report())
        slugs = {label: module_slugs(side.report()) for label, side in revisions.items()}
        if not their_slugs or not all(slugs.values()):
            sys.exit(f"{kind} {size}: a client reported no module: the tree or a command is wrong")
        samples: Dict[str, List[tuple]] = {"ruby": []}
        for _ in range(runs):
            for state in ("cold", "warm"):
                for label, side in revisions.items():
                    if state == "cold":
                        for name in probe.PARSE_CACHES:
                            (side.cache / name).unlink(missing_ok=True)
                    samples.setdefault(f"{label} {state}", []).append(side.run())
                samples["ruby"].append(theirs.run())
        them = median(samples.pop("ruby"))
        print(f"{kind} tree, {size} environments, medians of {runs} rounds")
        for label, found in slugs.items():
            print(f"  public modules reported: {len(found & their_slugs)} by {label} and Ruby, "
                  f"{label} only {sorted(found - their_slugs)}, Ruby only {sorted(their_slugs - found)}")
        print(f"  Ruby client (no cache: cold = warm): wall {them[0]:.2f} s, cpu {them[1]:.2f} s, "
              f"peak RSS {them[2]:.0f} MiB")
        for label, runs_of in samples.items():
            wall, cpu, rss = median(runs_of)
            print(f"  {label}: wall {wall:.2f} s, cpu {cpu:.2f} s, peak RSS {rss:.0f} MiB; "
                  f"faster than Ruby: cpu {them[1] / cpu:.1f}x, wall {them[0] / wall:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ruby-dropsonde", required=True, help="command running the Ruby client")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--trees", default="r10k:40,codedir:30", help="KIND:ENVIRONMENTS, comma-separated")
    parser.add_argument("--before", metavar="CMD", help="an older dropsonde's command, measured interleaved too")
    options = parser.parse_args()
    if not probe.MODULES.is_dir():
        sys.exit("needs Debian's puppet-module-* packages under /usr/share/puppet/modules")
    ruby = shlex.split(options.ruby_dropsonde)
    ours = {"ours": probe.dropsonde_command()}
    if options.before:
        ours = {"before": shlex.split(options.before), "after": ours["ours"]}
    for tree in options.trees.split(","):
        kind, _, size = tree.partition(":")
        if kind not in TREES:
            sys.exit(f"unknown tree {kind!r}: one of {', '.join(TREES)}")
        compare(kind, int(size), ruby, ours, options.runs)


if __name__ == "__main__":
    main()
