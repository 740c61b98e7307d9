"""Stored reports for the weekly aggregate tests, as the collector stores them."""

from __future__ import annotations

import hashlib
from typing import Any, Dict, List

from dropsonde.collector.aggregate import Parameters, release_week
from dropsonde.collector.budget import plan_budget
from dropsonde.collector.queries import Ranking, load_queries

WEEK = "2026-W48"  # Monday 23 November 2026
NO_NOISE = 1e9  # an epsilon so large that the noise is (almost surely) 0: to check what the queries count


def site(n: int) -> str:
    return hashlib.sha512(f"agg-site{n}".encode()).hexdigest()


def report(n: int, modules=(), when: str = "2026-11-25T10:00:00.000000+00:00", **columns: Any) -> Dict[str, Any]:
    return {"message_id": f"m{n}-{when}", "site_id": site(n), "product": "popularity-module", "version": "1.0.0",
            "timestamp": when, "ip": None,
            "modules": [{"name": s.split("-")[1], "slug": s, "version": v} for s, v in modules], **columns}


def columns() -> List[str]:
    from dropsonde.wire_columns import REPORT_COLUMNS

    return list(REPORT_COLUMNS)


def tables(store, k: int = 5, week: str = WEEK, epsilon: float = NO_NOISE, delta: float = 1e-6,
           module_ranking=()) -> Dict[str, List[Dict[str, Any]]]:
    """Every table of a fresh release, as ``publish_week`` releases it."""
    released, _ = release_week(store, week, Parameters(epsilon, delta, k), plan_budget(epsilon, delta),
                               load_queries(), Ranking(module_ranking))
    return released
