"""Which public component classes the site's own profiles build on: the
roles-and-profiles usage that download counts cannot show."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Dict, List, Set

from dropsonde.metrics.base import MetricPlugin
from dropsonde.wire_columns import metric_columns

if TYPE_CHECKING:
    from dropsonde.site import Site


class Profiles(MetricPlugin):
    description = (
        "Public classes declared (include, require, contain, class { 'x': }) inside private "
        "modules' classes, with the number of private classes declaring each. Only classes "
        "defined by a public module installed here are reported."
    )

    def schema(self) -> List[Dict[str, Any]]:
        return metric_columns("profile_classes")

    def run(self, site: Site) -> Dict[str, Any]:
        declarers: Dict[str, Set[str]] = {}
        for module in site.modules:
            if site.is_public(module):
                continue
            for definition in site.definitions(module):
                if definition.kind != "class":
                    continue
                for declared in definition.declares:
                    if site.defines_public_class(declared):
                        declarers.setdefault(declared, set()).add(definition.name)
        return {"profile_classes": [{"name": n, "count": len(c)} for n, c in sorted(declarers.items())]}

    def example(self, rng: random.Random, public_modules: List[str]) -> Dict[str, Any]:
        chosen = rng.sample(public_modules, min(len(public_modules), rng.randint(0, 10)))
        return {
            "profile_classes": [{"name": s.split("-", 1)[1], "count": rng.randint(1, 40)} for s in sorted(chosen)]
        }
