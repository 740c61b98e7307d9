"""Which public modules the site's private modules depend on: what the Forge
cannot see from download counts alone."""

from __future__ import annotations

import functools
import random
from typing import TYPE_CHECKING, Any, Dict, List

from dropsonde.metrics.base import MetricPlugin
from dropsonde.privacy import published_requirement
from dropsonde.wire_columns import metric_columns

if TYPE_CHECKING:
    from dropsonde.site import Site


class Dependencies(MetricPlugin):
    description = (
        "Public Forge modules that private modules depend on (from their metadata.json), "
        "one row per distinct dependency and version requirement. Private module names are never reported."
    )

    def schema(self) -> List[Dict[str, Any]]:
        return metric_columns("dependencies")

    def run(self, site: Site) -> Dict[str, Any]:
        # Sets: the same metadata.json copied into every branch and module
        # directory (r10k) is one dependency, not entries x directories rows,
        # and its requirements are judged once, not once per copy (a 244 KB
        # metadata.json in 2,000 directories took 30 s: outside re-check V1).
        named = {
            (dependency.slug, dependency.version_requirement)
            for module in site.modules
            if not site.is_public(module)
            for dependency in module.dependencies
        }
        rows = {
            (slug, published_requirement(requirement, functools.partial(site.is_published, slug)))
            for slug, requirement in named
            if site.forge.is_public(slug)
        }
        return {"dependencies": [{"name": n, "version_requirement": v} for n, v in sorted(rows)]}

    def example(self, rng: random.Random, public_modules: List[str]) -> Dict[str, Any]:
        chosen = rng.sample(public_modules, min(len(public_modules), rng.randint(0, 10)))
        return {
            "dependencies": [
                {"name": slug, "version_requirement": f">= {rng.randint(0, 5)}.0.0 < {rng.randint(6, 12)}.0.0"}
                for slug in sorted(chosen)
            ]
        }
