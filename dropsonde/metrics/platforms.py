"""Which public classes run on which OS families: what module authors need to
decide which platforms to support and test."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Dict, List

from dropsonde.metrics.base import MetricPlugin
from dropsonde.vocabulary import FACTER_OS_FAMILIES, OTHER_FAMILY
from dropsonde.wire_columns import metric_columns

if TYPE_CHECKING:
    from dropsonde.site import Site


class Platforms(MetricPlugin):
    description = (
        "For each public class, the number of nodes declaring it per OS family (Facter's "
        "os.family, or the legacy osfamily fact for agents without it), from PuppetDB. "
        "Families Facter does not produce are counted as 'other'."
    )

    def schema(self) -> List[Dict[str, Any]]:
        return metric_columns("class_platforms")

    def run(self, site: Site) -> Dict[str, Any]:
        usage = site.class_usage
        if usage is None:
            return {"class_platforms": []}
        rows = [
            {"name": name, "platform": family, "count": count}
            for (name, family), count in sorted(usage.platforms.items())
            if site.defines_public_class(name)
        ]
        return {"class_platforms": rows}

    def example(self, rng: random.Random, public_modules: List[str]) -> Dict[str, Any]:
        families = sorted(FACTER_OS_FAMILIES | {OTHER_FAMILY})
        chosen = rng.sample(public_modules, min(len(public_modules), rng.randint(0, 10)))
        return {
            "class_platforms": [
                {"name": slug.split("-", 1)[1], "platform": family, "count": rng.randint(1, 3000)}
                for slug in sorted(chosen)
                for family in sorted(rng.sample(families, rng.randint(1, 3)))
            ]
        }
