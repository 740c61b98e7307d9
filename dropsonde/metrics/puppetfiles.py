"""Which Ruby methods sites call in their Puppetfiles beyond the Puppetfile DSL,
so r10k and Code Manager maintainers know what they must keep working."""

from __future__ import annotations

import logging
import os
import random
from collections import Counter
from typing import TYPE_CHECKING, Any, Dict, List

from dropsonde.cpu_budget import RunBudget
from dropsonde.metrics.base import MetricPlugin
from dropsonde.privacy import PRIVATE
from dropsonde.tree_files import read_tree_file
from dropsonde.vocabulary import RUBY_CORE_METHODS
from dropsonde.wire_columns import metric_columns

if TYPE_CHECKING:
    from dropsonde.site import Site

# Set-aside files named in the one warning; the count says how many more.
MAX_NAMED = 5
PUPPETFILE_DSL = frozenset({"mod", "forge", "moduledir"})

log = logging.getLogger(__name__)


class Puppetfiles(MetricPlugin):
    description = (
        "Ruby method calls in each environment's Puppetfile other than the Puppetfile DSL "
        "(mod, forge, moduledir), counted over all environments. Only Ruby's own methods are "
        "named; methods the site defines are counted as (private)."
    )

    def schema(self) -> List[Dict[str, Any]]:
        return metric_columns("puppetfile_ruby_methods")

    def run(self, site: Site) -> Dict[str, Any]:
        from dropsonde.puppet.puppetfile_cache import PuppetfileCache

        counts: Counter[str] = Counter()
        # r10k deploys one copy of the control repository's Puppetfile per environment:
        # each content is parsed once, and kept by content across runs
        results = PuppetfileCache(site.cache)
        for environment in site.environments:
            path = environment.puppetfile
            try:
                source = read_tree_file(path, "Puppetfile", within=os.path.realpath(environment.path))
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("skipping Puppetfile %s: %s", path, exc.strerror or exc)
                continue
            log.info("reading Puppetfile %s", path)
            result = results.result(source)
            if result is None:
                results.budget.set_aside.append(str(path))
                continue
            if result.error is not None:
                log.warning("skipping Puppetfile %s: %s", path, result.error)
                continue
            for name, count in result.counts.items():
                if name in PUPPETFILE_DSL:
                    continue
                public = name in RUBY_CORE_METHODS and name not in result.defined_methods
                counts[name if public else PRIVATE] += count
        results.save()
        _warn_set_aside(results.budget)
        log.info("Puppetfiles: %d distinct contents parsed, the others known from the cache", results.parsed)
        return {"puppetfile_ruby_methods": [{"name": n, "count": c} for n, c in sorted(counts.items())]}

    def example(self, rng: random.Random, public_modules: List[str]) -> Dict[str, Any]:
        names = rng.sample(["require", "puts", "warn", "raise", "load", PRIVATE], rng.randint(0, 4))
        return {"puppetfile_ruby_methods": [{"name": n, "count": rng.randint(1, 50)} for n in sorted(names)]}


def _warn_set_aside(budget: RunBudget) -> None:
    """One warning for every Puppetfile the run-wide budget left unread (there may be hundreds)."""
    paths = budget.set_aside
    if paths:
        shown = ", ".join(paths[:MAX_NAMED]) + (f" and {len(paths) - MAX_NAMED} more" if len(paths) > MAX_NAMED else "")
        log.warning("%d Puppetfiles set aside, not read: this run's parsing of Puppetfiles took more than %g s "
                    "of CPU time (PUPPETFILES_RUN_CPU_SECONDS): %s", len(paths), budget.seconds, shown)
