"""The weekly page: a self-contained ``index.html`` with inline SVG charts (top
modules, version adoption of the top modules, platform share, the top
modules' sites over the last published weeks) that works offline — no CDN,
no script needed to draw. A few lines of script only record, as
``data-rendered`` on each chart, how many marks (bars, points) the browser
laid out, which is what the headless-browser test checks.
"""

from __future__ import annotations

from html import escape
from typing import Any, Dict, List, Sequence, Tuple

from dropsonde.collector.aggregate import PAGE_ROWS, Publication
from dropsonde.collector.budget import shared_source_guarantee

PALETTE = ["#3b6ea5", "#e07b39", "#5a9e4b", "#c8b23a", "#8e5ea2", "#d45087", "#2f9e9e", "#7a7a7a"]
TOP_MODULES = 20
ADOPTION_MODULES = 5
ADOPTION_VERSIONS = 8  # per module; the rest is one "other" segment (crafted versions cannot grow the chart)
PLATFORMS = 15
TREND_MODULES = 8


def _bar_chart(chart_id: str, title: str, rows: Sequence[Tuple[str, int]], unit: str) -> str:
    width, label_width, bar_height = 760, 260, 22
    height = max(1, len(rows)) * (bar_height + 6) + 10
    biggest = max((value for _, value in rows), default=1) or 1
    parts = [f'<figure class="chart" id="{chart_id}"><figcaption>{escape(title)}</figcaption>',
             f'<svg width="{width}" height="{height}" role="img" aria-label="{escape(title)}">']
    if not rows:
        parts.append('<text x="10" y="20">No row reached the publication threshold this week.</text>')
    for index, (label, value) in enumerate(rows):
        y = 5 + index * (bar_height + 6)
        length = max(2, int((width - label_width - 80) * value / biggest))
        parts.append(f'<text x="{label_width - 8}" y="{y + 16}" text-anchor="end">{escape(str(label))}</text>')
        parts.append(f'<rect class="bar mark" x="{label_width}" y="{y}" width="{length}" height="{bar_height}" '
                     f'fill="{PALETTE[0]}"><title>{escape(str(label))}: {value} {unit}</title></rect>')
        parts.append(f'<text x="{label_width + length + 6}" y="{y + 16}">{value}</text>')
    parts.append("</svg></figure>")
    return "".join(parts)


def _adoption_chart(result: Publication) -> str:
    top = [row["slug"] for row in result.top.get("modules", [])[:ADOPTION_MODULES]]
    versions: Dict[str, List[Tuple[str, int]]] = {
        slug: [(str(row["version"]), row["sites"]) for row in result.versions.get(slug, [])] for slug in top}
    width, label_width, bar_height = 760, 260, 22
    height = max(1, len(top)) * (bar_height + 6) + 10
    parts = ['<figure class="chart" id="adoption"><figcaption>Version adoption of the top modules '
             '(share of sites per version)</figcaption>',
             f'<svg width="{width}" height="{height}" role="img" aria-label="Version adoption">']
    if not top:
        parts.append('<text x="10" y="20">No row reached the publication threshold this week.</text>')
    for index, slug in enumerate(top):
        y = 5 + index * (bar_height + 6)
        parts.append(f'<text x="{label_width - 8}" y="{y + 16}" text-anchor="end">{escape(slug)}</text>')
        rows = sorted(versions[slug], key=lambda item: -item[1])
        if len(rows) > ADOPTION_VERSIONS:
            rows = rows[:ADOPTION_VERSIONS - 1] + [("other", sum(sites for _, sites in rows[ADOPTION_VERSIONS - 1:]))]
        total = sum(sites for _, sites in rows) or 1
        x = float(label_width)
        for number, (version, sites) in enumerate(rows):
            length = (width - label_width - 20) * sites / total
            parts.append(f'<rect class="bar mark" x="{x:.1f}" y="{y}" width="{max(length, 1):.1f}" height="{bar_height}" '
                         f'fill="{PALETTE[number % len(PALETTE)]}"><title>{escape(slug)} {escape(version)}: '
                         f'{sites} sites</title></rect>')
            if length > 48:  # label the segment when the version fits inside it
                parts.append(f'<text x="{x + 4:.1f}" y="{y + 16}" fill="#fff" style="fill:#fff">{escape(version)}</text>')
            x += length
    parts.append("</svg></figure>")
    return "".join(parts)


def _trend_chart(result: Publication) -> str:
    """Sites over the published weeks for this week's top modules: one line and
    one point per week each, drawn from trends.json's rows."""
    weeks = sorted({row["week"] for row in result.trends})
    top = [row["slug"] for row in result.top.get("modules", [])[:TREND_MODULES]]
    series: Dict[str, Dict[str, int]] = {slug: {} for slug in top}
    for row in result.trends:
        if row["slug"] in series:
            series[row["slug"]][row["week"]] = row["sites"]
    width, height, left, right, top_margin, bottom = 760, 300, 60, 200, 10, 40
    biggest = max((v for points in series.values() for v in points.values()), default=1) or 1
    step = (width - left - right) / max(1, len(weeks) - 1)
    parts = [f'<figure class="chart" id="trends"><figcaption>Sites per week, top {TREND_MODULES} modules '
             f'(last {len(weeks)} published weeks)</figcaption>',
             f'<svg width="{width}" height="{height}" role="img" aria-label="Sites per week">']
    if not top:
        parts.append('<text x="10" y="20">No row reached the publication threshold this week.</text>')
    for index, week in enumerate(weeks):
        parts.append(f'<text x="{left + index * step:.1f}" y="{height - bottom + 18}" text-anchor="middle">'
                     f'{escape(week[-3:])}</text>')
    for number, slug in enumerate(top):
        colour = PALETTE[number % len(PALETTE)]
        points = [(left + weeks.index(week) * step, top_margin + (height - top_margin - bottom) * (1 - sites / biggest),
                   week, sites) for week, sites in sorted(series[slug].items())]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y, week, sites in points:
            parts.append(f'<circle class="point mark" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}">'
                         f'<title>{escape(slug)} {escape(week)}: {sites} sites</title></circle>')
        parts.append(f'<text x="{width - right + 10}" y="{top_margin + 14 + number * 18}" fill="{colour}" '
                     f'style="fill:{colour}">{escape(slug)}</text>')
    parts.append("</svg></figure>")
    return "".join(parts)


def _table(name: str, rows: List[Dict[str, Any]], total: int) -> str:
    if not rows:
        return f"<h3>{escape(name)}</h3><p>No row reached the publication threshold.</p>"
    head = "".join(f"<th>{escape(str(c))}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row.values()) + "</tr>" for row in rows)
    more = (f"<p>The {len(rows)} rows with the most sites; all {total} are in {escape(name)}.csv</p>"
            if total > len(rows) else "")
    return (f'<h3>{escape(name)} (<a href="{escape(name)}.json">json</a>, <a href="{escape(name)}.csv">csv</a>)</h3>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}")


MEASURE_SCRIPT = """
document.querySelectorAll('figure.chart').forEach(function (figure) {
  var drawn = 0;
  figure.querySelectorAll('.mark').forEach(function (bar) {
    var box = bar.getBBox();
    if (box.width > 0 && box.height > 0) { drawn += 1; }
  });
  figure.setAttribute('data-rendered', String(drawn));
});
"""


def _privacy(result: Publication) -> str:
    """The week's guarantee in plain words, and what it cost."""
    shared = shared_source_guarantee(result.epsilon, result.delta)
    again = (f" This week was released {len(result.spent)} times (forced), so the total above is the sum of "
             "those releases." if len(result.spent) > 1 else "")
    return (f"<p><strong>Privacy.</strong> Every table on this page and in the files is differentially private "
            f"for each site and week: adding or removing any one site's report changes the chance of anything "
            f"published here by at most a factor e<sup>&epsilon;</sup> with &epsilon; = {result.epsilon:g}, "
            f"except with probability &delta; = {result.delta:g}, however many other sites (real or invented) "
            f"reported. For a site behind an address shared by more sites than the collector counts per address "
            f"(a NAT, a proxy), whose report can keep one other site of that address out, it is the guarantee "
            f"of a group of two sites: &epsilon; = {shared['epsilon']:g}, &delta; = {shared['delta']:.2g}. "
            f"That is one budget for the whole week, shared by all tables (the split is in "
            f"summary.json). Every count carries random noise (OpenDP's discrete Gaussian mechanism); a row is "
            f"shown only if its <em>noisy</em> count passes a threshold, so rows used by few sites are absent; "
            f"each site counts in a bounded number of rows per table. Counts are therefore approximate: the "
            f"noise's standard deviation per table is in summary.json.{again}</p>")


def render_page(result: Publication) -> str:
    count = result.sites if result.sites is not None else "too few to publish"
    top = [(row["slug"], row["sites"]) for row in result.top.get("modules", [])[:TOP_MODULES]]
    platforms = [(row["platform"], row["sites"]) for row in result.top.get("platforms", [])[:PLATFORMS]]
    tables = "".join(_table(name, rows, result.rows.get(name, 0)) for name, rows in sorted(result.top.items()))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Puppet module usage, week {escape(result.week)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
figure {{ margin: 1.5em 0; }} figcaption {{ font-weight: bold; margin-bottom: .5em; }}
svg text {{ font-size: 13px; fill: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }} td, th {{ border: 1px solid #ccc; padding: 2px 8px; }}
</style></head>
<body>
<h1>Puppet module usage, week {escape(result.week)}</h1>
<p>Sites reporting: about {escape(str(count))}. No site is listed individually. Tables are sorted by name
in the files, by sites here (top {PAGE_ROWS}). Each published module also has
<code>modules/&lt;slug&gt;.json</code> and a badge <code>badges/&lt;slug&gt;.svg</code>.</p>
{_privacy(result)}
{_bar_chart("top-modules", f"Top {TOP_MODULES} modules by number of sites", top, "sites")}
{_adoption_chart(result)}
{_bar_chart("platforms", "Platform share (sites with nodes of each OS family)", platforms, "sites")}
{_trend_chart(result)}
<h2>All tables</h2>
{tables}
<script>{MEASURE_SCRIPT}</script>
</body></html>
"""
