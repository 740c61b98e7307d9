"""How many environments the site has (never their names)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Dict, List

from dropsonde.metrics.base import MetricPlugin
from dropsonde.wire_columns import metric_columns

if TYPE_CHECKING:
    from dropsonde.site import Site


class Environments(MetricPlugin):
    description = (
        "The number of Puppet environments on this server. "
        "Environment names are never reported."
    )

    def schema(self) -> List[Dict[str, Any]]:
        return metric_columns("environment_count")

    def run(self, site: Site) -> Dict[str, Any]:
        return {"environment_count": len(site.environments)}

    def example(self, rng: random.Random, public_modules: List[str]) -> Dict[str, Any]:
        return {"environment_count": rng.randint(1, 100)}
