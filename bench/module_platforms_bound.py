#!/usr/bin/env python3
"""How many (module, OS family) rows one site should count in: the trade-off
behind `rows per site` of queries/module_platforms.sql, without a database.

Sites are drawn as bench/aggregate.py generates them (5-45 modules of 2,000,
P(module m) ~ 1/m; 1-3 OS families, skewed; each module on each of the
site's families with probability 0.7); for each bound, each site counts its
first BOUND rows (modules by popularity, as the published ranking orders
them, then by nodes), and the counts get the discrete Gaussian's scale and
threshold that budget.PLAN's share gives that bound (OpenDP's calibration,
as the collector does; the noise itself is drawn here with random.gauss,
rounded). Printed per bound: rows published, how many of the true top 20,
and the median and 90th-percentile relative error against the true counts
(every row of every site).

Usage: bench/module_platforms_bound.py [--sites 1000 10000 100000] [--bounds 16 24 32 40 48 64]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dropsonde.collector.budget import plan_budget  # noqa: E402
from dropsonde.collector.noise import selection_mechanism  # noqa: E402

FAMILIES = ["RedHat", "Debian", "windows", "Suse", "Archlinux", "Gentoo", "Solaris", "Darwin"]
Row = Tuple[int, str, int]  # module (its popularity rank), family, nodes


def sites(count: int, rng: random.Random) -> List[List[Row]]:
    drawn = []
    for site in range(1, count + 1):
        modules = {math.floor(math.exp(rng.random() * math.log(2000))) for _ in range(5 + site % 41)}
        families = {FAMILIES[math.floor(8 * rng.random() ** 2)] for _ in range(1 + site % 3)}
        drawn.append([(m, f, 1 + math.floor(rng.random() ** 4 * 2000))
                      for m in sorted(modules) for f in sorted(families) if rng.random() < 0.7])
    return drawn


def bounded(rows: List[Row], bound: int) -> List[Tuple[int, str]]:
    """The site's first ``bound`` rows, in the query's order."""
    busiest: Dict[int, int] = {}
    for module, _, nodes in rows:
        busiest[module] = max(busiest.get(module, 0), nodes)
    ordered = sorted(rows, key=lambda r: (r[0], -busiest[r[0]], -r[2], r[1]))
    return [(module, family) for module, family, _ in ordered[:bound]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--bounds", type=int, nargs="+", default=[16, 24, 32, 40, 48, 64])
    options = parser.parse_args()
    budget = plan_budget(4.0, 1e-6)
    for count in options.sites:
        rng = random.Random(count)
        drawn = sites(count, rng)
        truth = Counter((module, family) for rows in drawn for module, family, _ in rows)
        top20 = sorted(truth, key=lambda key: -truth[key])[:20]
        for bound in options.bounds:
            mechanism = selection_mechanism("module_platforms", budget.share("module_platforms"), bound, 5)
            counted = Counter(key for rows in drawn for key in bounded(rows, bound))
            published = {key: noisy for key, value in counted.items()
                         if (noisy := value + round(rng.gauss(0, mechanism.scale))) >= mechanism.threshold}
            errors = sorted(abs(value - truth[key]) / truth[key] for key, value in published.items())
            median = statistics.median(errors) if errors else math.nan
            p90 = errors[math.ceil(0.9 * len(errors)) - 1] if errors else math.nan
            print(f"{count:,} sites, {bound} rows per site (noise SD {mechanism.scale:.1f}, threshold "
                  f"{mechanism.threshold}): {len(published):,} rows published of {len(truth):,}; true top 20 "
                  f"published: {sum(key in published for key in top20)}; relative error median {median:.1%}, "
                  f"p90 {p90:.1%}", flush=True)


if __name__ == "__main__":
    main()
