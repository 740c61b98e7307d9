"""Which public Forge modules the site has installed, at which versions; and
(once PuppetDB is consulted) which of their classes are declared."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Dict, List

from dropsonde.metrics.base import MetricPlugin
from dropsonde.wire_columns import metric_columns

if TYPE_CHECKING:
    from dropsonde.site import Site


def _random_version(rng: random.Random, slug: str) -> str:
    """One of three releases per module (fixed by its slug), as real sites cluster on a few versions."""
    releases = random.Random(slug)
    major = releases.randint(1, 12)
    return rng.choice([f"{major}.{minor}.{releases.randint(0, 5)}" for minor in range(3)])


class Modules(MetricPlugin):
    description = (
        "The public Forge modules installed in any environment, with their versions, "
        "and how their classes are used: nodes declaring each public class, and the public "
        "modules and classes declared on no node (from PuppetDB). Private modules and classes "
        "are never reported."
    )

    def schema(self) -> List[Dict[str, Any]]:
        return metric_columns("modules", "classes", "unused_modules", "unused_classes")

    def run(self, site: Site) -> Dict[str, Any]:
        public = [module for module in site.modules if site.is_public(module)]
        rows = {(m.name, m.slug, site.reported_version(m)) for m in public}
        data: Dict[str, Any] = {
            "modules": [{"name": n, "slug": s, "version": v} for n, s, v in sorted(rows)],
            "classes": [],
            "unused_modules": [],
            "unused_classes": [],
        }
        usage = site.class_usage
        if usage is None:
            return data
        public_classes = site.public_classes
        declared = set(usage.classes)
        data["classes"] = [
            {"name": name, "count": count}
            for name, count in sorted(usage.classes.items())
            if site.defines_public_class(name)
        ]
        data["unused_classes"] = [{"name": name} for name in sorted(public_classes - declared)]
        unused = set()
        for module in public:
            classes = site.public_classes_of(module)
            if classes and not classes & declared:
                unused.add((module.name, module.slug, site.reported_version(module)))
        data["unused_modules"] = [{"name": n, "slug": s, "version": v} for n, s, v in sorted(unused)]
        return data

    def example(self, rng: random.Random, public_modules: List[str]) -> Dict[str, Any]:
        chosen = rng.sample(public_modules, min(len(public_modules), rng.randint(0, 30)))
        modules = [{"name": s.split("-", 1)[1], "slug": s, "version": _random_version(rng, s)} for s in sorted(chosen)]
        classes = [{"name": m["name"], "count": rng.randint(1, 5000)} for m in modules]
        unused = modules[: rng.randint(0, len(modules))]
        return {
            "modules": modules,
            "classes": classes,
            "unused_modules": unused,
            "unused_classes": [{"name": f"{m['name']}::params"} for m in unused],
        }
