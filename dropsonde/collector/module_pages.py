"""Per-module files for module authors: ``modules/<slug>.json`` (sites,
versions, OS families, partners, trend, the week's budget) and an SVG
badge ``badges/<slug>.svg`` ("used by ≈N sites"), static files beside
``index.html`` that a module's README can link or embed.

Everything here is post-processing of the week's released tables (no
privacy cost): a module has files only if its row was published, and the
badge rounds the published count to two significant figures, because the
noise makes the last digits meaningless.
"""

from __future__ import annotations

import json
import math
import re
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List

from dropsonde.collector.output import write_file

if TYPE_CHECKING:
    from dropsonde.collector.aggregate import Publication

SLUG_FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")  # a Forge slug; anything else gets no file
PARTNERS = 10  # the modules most often used with this one, in the module's file


def about(count: int) -> str:
    """``count`` to two significant figures, as a person would say it: 1234 -> "1.2k"."""
    if count < 100:
        return str(count)
    digits = int(math.floor(math.log10(count))) - 1
    rounded = int(round(count, -digits))
    if rounded >= 1_000_000:
        return f"{rounded / 1_000_000:g}M"
    if rounded >= 1000:
        return f"{rounded / 1000:g}k"
    return str(rounded)


def badge(slug: str, sites: int) -> str:
    """A flat shields-style badge; the width follows the text (about 7 px a character)."""
    label, value = "used by", f"≈{about(sites)} sites"
    left, right = 6 * len(label) + 12, 7 * len(value) + 12
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + right}" height="20" role="img" '
            f'aria-label="{escape(slug)}: {label} {escape(value)}"><title>{escape(slug)}: {label} {escape(value)}'
            f'</title><rect width="{left}" height="20" fill="#555"/><rect x="{left}" width="{right}" height="20" '
            f'fill="#3b6ea5"/><g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
            f'<text x="6" y="14">{label}</text><text x="{left + 6}" y="14">{escape(value)}</text></g></svg>\n')


def write_module_files(directory: Path, publication: "Publication", tables: Dict[str, List[Dict[str, Any]]]) -> None:
    modules_dir, badges_dir = directory / "modules", directory / "badges"
    modules_dir.mkdir(mode=0o755)
    badges_dir.mkdir(mode=0o755)
    versions: Dict[str, List[Dict[str, Any]]] = {}
    for row in tables.get("module_versions", []):
        versions.setdefault(row["slug"], []).append({"version": row["version"], "sites": row["sites"]})
    platforms: Dict[str, List[Dict[str, Any]]] = {}
    for row in tables.get("module_platforms", []):
        platforms.setdefault(row["slug"], []).append({"platform": row["platform"], "sites": row["sites"]})
    partners: Dict[str, List[Dict[str, Any]]] = {}
    for row in tables.get("module_pairs", []):
        for one, other in ((row["slug_a"], row["slug_b"]), (row["slug_b"], row["slug_a"])):
            partners.setdefault(one, []).append({"slug": other, "sites": row["sites"]})
    trend: Dict[str, List[Dict[str, Any]]] = {}
    for row in publication.trends:
        trend.setdefault(row["slug"], []).append({"week": row["week"], "sites": row["sites"]})
    for row in tables.get("modules", []):
        slug = row["slug"]
        if not SLUG_FILE_RE.match(slug):
            continue
        document = {
            "slug": slug, "week": publication.week, "sites": row["sites"],
            "versions": sorted(versions.get(slug, []), key=lambda v: -v["sites"]),
            "platforms": sorted(platforms.get(slug, []), key=lambda p: (-p["sites"], p["platform"])),
            "used_with": sorted(partners.get(slug, []), key=lambda p: (-p["sites"], p["slug"]))[:PARTNERS],
            "trend": trend.get(slug, []),
            "privacy": {"epsilon": publication.epsilon, "delta": publication.delta, "unit": "one site for one week",
                        "note": "every number is noised; rows below the noisy threshold are not published"},
        }
        write_file(modules_dir, f"{slug}.json", json.dumps(document, indent=1, sort_keys=True) + "\n")
        write_file(badges_dir, f"{slug}.svg", badge(slug, row["sites"]))
    for folder in (modules_dir, badges_dir):
        folder.chmod(0o755)
