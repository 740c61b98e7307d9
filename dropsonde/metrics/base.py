"""The plugin contract every metric implements, built-in or third-party.

A plugin is a class registered under the ``dropsonde.metrics.v1`` entry-point
group (or in code, for the built-ins: see :mod:`dropsonde.plugins`); the entry
point's name is the plugin's name (what ``--disable`` takes).
It describes itself, declares its columns as a BigQuery schema, computes them
from the :class:`~dropsonde.site.Site`, and can make random example data for
``dev example``. Its output is validated against its schema before anything
is shown or sent, so a plugin cannot slip in an undeclared column.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Dict, List

if TYPE_CHECKING:
    from dropsonde.site import Site


class MetricPlugin:
    """Base class for metrics plugins. Override ``description``, ``schema``,
    ``run`` and ``example``; ``setup`` and ``cleanup`` are optional hooks."""

    #: the entry-point name, set by the loader
    name: str = ""
    #: a paragraph for humans: what the metric says and what it leaves out
    description: str = ""

    def schema(self) -> List[Dict[str, Any]]:
        """The plugin's columns as BigQuery JSON schema entries."""
        raise NotImplementedError

    def setup(self, site: "Site") -> None:
        """Prepare before ``run`` (open connections, warm caches)."""

    def run(self, site: "Site") -> Dict[str, Any]:
        """The value of every column, keyed by column name."""
        raise NotImplementedError

    def example(self, rng: random.Random, public_modules: List[str]) -> Dict[str, Any]:
        """Random values that satisfy the schema, for ``dev example``; module
        names drawn from ``public_modules`` (``author-name`` slugs)."""
        raise NotImplementedError

    def cleanup(self) -> None:
        """Release what ``setup`` acquired; runs even when ``run`` raised."""
