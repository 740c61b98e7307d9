"""Per-module JSON and badges for module authors, and the page's capped charts (issue 17 item 6)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

from dropsonde.collector.aggregate import Parameters, publish_week
from dropsonde.collector.module_pages import about, badge
from dropsonde.collector.release_ledger import open_ledger
from dropsonde.collector.render import render_page
from dropsonde.collector.storage import open_store
from tests.support.collector_reports import NO_NOISE, WEEK, columns, report


def publish(tmp_path, rows):
    store = open_store(str(tmp_path / "a.db"), columns())
    store.insert_many(rows)
    out = tmp_path / "www"
    publish_week(store, WEEK, Parameters(NO_NOISE, 1e-6), b"k" * 32, open_ledger(store), out, render_page)
    return out


def test_every_published_module_has_a_json_document_and_a_badge(tmp_path):
    platforms = [{"name": "apache::vhost", "platform": "Debian", "count": 40},
                 {"name": "apache", "platform": "RedHat", "count": 3}]
    rows = [report(n, [("puppetlabs-apache", "12.0.0" if n % 2 else "11.0.0"), ("puppetlabs-stdlib", "9.0.0")],
                   class_platforms=platforms[: 1 + n % 2]) for n in range(12)]  # RedHat: 6 sites
    rows += [report(n, [("rare-module", "1.0.0")]) for n in range(12, 14)]  # 2 sites: not published
    out = publish(tmp_path, rows)
    assert sorted(p.name for p in (out / "modules").iterdir()) == ["puppetlabs-apache.json", "puppetlabs-stdlib.json"]
    assert sorted(p.name for p in (out / "badges").iterdir()) == ["puppetlabs-apache.svg", "puppetlabs-stdlib.svg"]
    apache = json.loads((out / "modules" / "puppetlabs-apache.json").read_text())
    assert apache["slug"] == "puppetlabs-apache" and apache["week"] == WEEK and apache["sites"] == 12
    assert sorted(apache["versions"], key=lambda v: v["version"]) == [{"version": "11.0.0", "sites": 6},
                                                                      {"version": "12.0.0", "sites": 6}]
    assert apache["platforms"] == [{"platform": "Debian", "sites": 12}, {"platform": "RedHat", "sites": 6}]
    stdlib = json.loads((out / "modules" / "puppetlabs-stdlib.json").read_text())
    assert stdlib["platforms"] == []  # none of its classes reported on any family
    assert apache["used_with"] == [{"slug": "puppetlabs-stdlib", "sites": 12}]
    assert apache["trend"] == [{"week": WEEK, "sites": 12}]
    assert apache["privacy"]["epsilon"] == NO_NOISE and apache["privacy"]["unit"] == "one site for one week"
    svg = (out / "badges" / "puppetlabs-apache.svg").read_text()
    ElementTree.fromstring(svg)  # well-formed, standalone
    assert "used by" in svg and "≈12 sites" in svg and "http://" not in svg.replace("http://www.w3.org/2000/svg", "")
    assert (out / "modules").stat().st_mode & 0o777 == 0o755
    assert (out / "badges" / "puppetlabs-apache.svg").stat().st_mode & 0o777 == 0o644


def test_summary_states_the_module_platforms_share_and_mechanism(tmp_path):
    """The new table spends its own share of the week's budget, stated in summary.json."""
    out = publish(tmp_path, [report(n, [("puppetlabs-apache", "12.0.0")], class_platforms=[
        {"name": "apache", "platform": "Debian", "count": 2}]) for n in range(6)])
    privacy = json.loads((out / "summary.json").read_text())["privacy"]
    share = privacy["plan"]["module_platforms"]
    assert share["rho"] > 0 and share["delta"] > 0
    assert abs(sum(s["rho"] for s in privacy["plan"].values()) - privacy["rho"]) < 1e-9
    assert privacy["mechanisms"]["module_platforms"]["rows_per_site"] == 40
    assert json.loads((out / "module_platforms.json").read_text()) == [
        {"slug": "puppetlabs-apache", "platform": "Debian", "sites": 6}]


def test_badges_round_to_two_significant_figures_and_escape_the_slug():
    assert [about(n) for n in (7, 99, 123, 1234, 15_678, 999_999, 2_345_678)] == \
        ["7", "99", "120", "1.2k", "16k", "1M", "2.3M"]
    assert "<script" not in badge("a-<script>", 5) and "&lt;script&gt;" in badge("a-<script>", 5)


def test_the_adoption_chart_has_at_most_eight_segments_per_module(tmp_path):
    """One client's invented versions drew 14,622 bars; the chart folds the rest into "other"."""
    rows = [report(n, [("puppetlabs-apache", f"1.0.{n % 30}")]) for n in range(300)]
    out = publish(tmp_path, rows)
    assert len(json.loads((out / "module_versions.json").read_text())) == 30
    page = (out / "index.html").read_text()
    adoption = page[page.index('id="adoption"'):page.index('id="platforms"')]
    assert adoption.count('class="bar mark"') == 8 and "other: " in adoption
