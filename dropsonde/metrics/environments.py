"""How many environments the site has (never their names)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Dict, List

from dropsonde.metrics.base import MetricPlugin
from dropsonde.schema import field

if TYPE_CHECKING:
    from dropsonde.site import Site


class Environments(MetricPlugin):
    description = (
        "The number of Puppet environments on this server. "
        "Environment names are never reported."
    )

    def schema(self) -> List[Dict[str, Any]]:
        return [field("environment_count", "INTEGER", "The number of directory environments", mode="NULLABLE")]

    def run(self, site: Site) -> Dict[str, Any]:
        return {"environment_count": len(site.environments)}

    def example(self, rng: random.Random, public_modules: List[str]) -> Dict[str, Any]:
        return {"environment_count": rng.randint(1, 100)}
