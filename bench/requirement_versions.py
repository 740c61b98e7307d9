#!/usr/bin/env python3
"""Which versions real dependency requirements name, and what the dependencies
column sends of them (privacy rule 2, review F15).

Reads every ``metadata.json`` of Debian's ``puppet-module-*`` packages
(/usr/share/puppet/modules, or the directory given) and prints, over their
dependencies on other modules: the distinct requirements and uses; the versions
they name, split into bare major boundaries (``X.0.0``, ``X.x``) and the rest;
and how many requirements :func:`dropsonde.privacy.published_requirement` sends
as written when the release evidence knows (a) nothing, (b) the release of each
dependency Debian itself packages (what a site with those modules installed
has proven), the rest being sent as ``(private)``.

Usage: bench/requirement_versions.py [MODULES_DIR]
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dropsonde.privacy import (  # noqa: E402
    _MAJOR_BOUNDARY_RE,
    PRIVATE,
    public_requirement,
    published_requirement,
    requirement_versions,
)


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/puppet/modules")
    installed = {}
    uses: Counter = Counter()
    for path in sorted(root.glob("*/metadata.json")):
        metadata = json.loads(path.read_text())
        installed[metadata["name"].replace("/", "-")] = metadata.get("version")
        for dependency in metadata.get("dependencies", []):
            uses[(dependency["name"].replace("/", "-"), dependency.get("version_requirement"))] += 1
    requirements = Counter({key: count for key, count in uses.items() if public_requirement(key[1]) != PRIVATE})
    named: Counter = Counter()
    for (_, requirement), count in requirements.items():
        for version in requirement_versions(public_requirement(requirement)):
            named[version] += count
    boundaries = {v for v in named if _MAJOR_BOUNDARY_RE.fullmatch(v)}
    print(f"modules: {len(installed)}; dependency requirements: {len(uses)} distinct (slug, requirement), "
          f"{sum(uses.values())} uses; shape accepted: {len(requirements)}")
    print(f"named versions: {len(named)} distinct, {sum(named.values())} uses; bare major boundaries: "
          f"{len(boundaries)} distinct, {sum(named[v] for v in boundaries)} uses")
    print("other named versions:", " ".join(sorted(set(named) - boundaries, key=lambda v: [int(p) if p.isdigit() else -1
                                                                                           for p in v.split(".")])))
    for label, published in (("no release evidence", lambda slug, version: False),
                             ("evidence of Debian's own releases",
                              lambda slug, version: installed.get(slug) == version)):
        sent = Counter({key: count for key, count in requirements.items()
                        if published_requirement(key[1], lambda v, s=key[0]: published(s, v)) != PRIVATE})
        print(f"sent as written with {label}: {len(sent)} of {len(requirements)} distinct, "
              f"{sum(sent.values())} of {sum(requirements.values())} uses")


if __name__ == "__main__":
    main()
