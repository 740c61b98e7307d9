"""Weekly aggregates: latest report per site, k-anonymity, outputs, the page in a real browser."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from datetime import date

import pytest

from dropsonde.collector.aggregate import aggregate, week_bounds
from dropsonde.collector.storage import open_store
from dropsonde.errors import DropsondeError
from tests.conftest import run_dropsonde

WEEK = "2026-W48"  # Monday 23 November 2026


def site(n: int) -> str:
    return hashlib.sha512(f"agg-site{n}".encode()).hexdigest()


def report(n: int, modules, when="2026-11-25T10:00:00.000000+00:00", **columns):
    return {"message_id": f"m{n}-{when}", "site_id": site(n), "product": "popularity-module", "version": "1.0.0",
            "timestamp": when, "ip": None,
            "modules": [{"name": s.split("-")[1], "slug": s, "version": v} for s, v in modules], **columns}


def columns():
    from dropsonde.collector.service import known_columns

    return list(known_columns())


def test_week_bounds():
    label, start, end = week_bounds("2026-w48")
    assert label == WEEK and start.isoformat() == "2026-11-23T00:00:00+00:00" and (end - start).days == 7
    assert week_bounds(None, today=date(2026, 11, 27))[0] == "2026-W47"  # the last complete week
    with pytest.raises(DropsondeError, match="--week"):
        week_bounds("last week")


def test_k_anonymity_latest_report_per_site_and_no_site_ids(tmp_path):
    k = 5
    store = open_store(str(tmp_path / "a.db"), columns())
    rows = []
    for n in range(k):  # k sites use apache 12, one of them upgraded mid-week (its latest report counts)
        rows.append(report(n, [("puppetlabs-apache", "11.0.0")], when="2026-11-23T10:00:00.000000+00:00",
                           environment_count=3))
        rows.append(report(n, [("puppetlabs-apache", "12.0.0")], environment_count=3))
    for n in range(k, 2 * k - 1):  # k-1 sites use a rare module
        rows.append(report(n, [("rare-module", "1.0.0"), ("puppetlabs-apache", "12.0.0")], environment_count=40))
    rows.append(report(99, [("puppetlabs-apache", "12.0.0")], when="2026-12-01T10:00:00.000000+00:00"))  # next week
    store.insert_many(rows)
    out = tmp_path / "out"
    result = run_dropsonde("collector", "aggregate", "--db", str(tmp_path / "a.db"), "--out", str(out),
                           "--week", WEEK, "--k", str(k))
    assert result.returncode == 0, result.stderr
    modules = json.loads((out / "modules.json").read_text())
    assert modules == [{"slug": "puppetlabs-apache", "sites": 2 * k - 1}]  # rare-module (k-1 sites) withheld
    versions = json.loads((out / "module_versions.json").read_text())
    assert versions == [{"slug": "puppetlabs-apache", "version": "12.0.0", "sites": 2 * k - 1}]
    assert json.loads((out / "sites.json").read_text()) == [{"sites": 2 * k - 1}]
    assert json.loads((out / "environment_counts.json").read_text()) == [{"environments": "2-5", "sites": k}]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_withheld"]["modules"] == 1 and summary["week"] == WEEK
    published = "".join(p.read_text() for p in out.iterdir())
    assert "agg-site" not in published and not re.search(r"[0-9a-f]{128}", published)
    assert "rare-module" not in published
    csv_lines = (out / "modules.csv").read_text().splitlines()
    assert csv_lines == ["slug,sites", f"puppetlabs-apache,{2 * k - 1}"]


def test_exactly_k_sites_is_published_and_k_minus_one_is_not():
    def reports(count):
        return [{"site_id": site(n), "modules": [{"name": "x", "slug": "a-x", "version": "1.0.0"}]} for n in range(count)]

    assert aggregate(reports(5), WEEK, 5).tables["modules"] == [{"slug": "a-x", "sites": 5}]
    below = aggregate(reports(4), WEEK, 5)
    assert below.tables["modules"] == [] and below.tables["sites"] == []


def test_example_data_loads_and_the_page_renders_in_chromium(tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("needs Debian's chromium package: run tests/run (it installs it)")
    example = tmp_path / "example.jsonl"
    from tests.conftest import EXAMPLE_SITE

    made = run_dropsonde("--confdir", str(EXAMPLE_SITE / "puppet"), "--cachepath", str(EXAMPLE_SITE / "cache"),
                         "dev", "example", "--size", "200", "--filename", str(example))
    assert made.returncode == 0, made.stderr
    db = tmp_path / "c.db"
    loaded = run_dropsonde("collector", "load", str(example), "--db", str(db))
    assert loaded.stdout.strip() == "200 rows loaded"
    week = date.today().isocalendar()
    out = tmp_path / "out"
    done = run_dropsonde("collector", "aggregate", "--db", str(db), "--out", str(out),
                         "--week", f"{week[0]}-W{week[1]:02d}", "--k", "5")
    assert done.returncode == 0, done.stderr
    assert "200 sites" in done.stdout
    page = out / "index.html"
    assert "http://" not in page.read_text() and "https://" not in page.read_text()  # nothing fetched: works offline
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=2000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    rendered = dict(re.findall(r'<figure class="chart" id="([\w-]+)" data-rendered="(\d+)"', dom))
    assert set(rendered) == {"top-modules", "adoption", "platforms"}
    modules = json.loads((out / "modules.json").read_text())
    assert int(rendered["top-modules"]) == min(20, len(modules)) > 0
    assert int(rendered["adoption"]) > 0 and int(rendered["platforms"]) > 0


def _modules(count, slug="a-x"):
    return [{"site_id": site(n), "modules": [{"name": "x", "slug": slug, "version": "1.0.0"}]} for n in range(count)]


def test_a_failure_part_way_leaves_the_previous_output_intact_and_no_partial_directory(tmp_path):
    from dropsonde.collector.aggregate import write_outputs
    from dropsonde.collector.render import render_page

    out = tmp_path / "www" / "telemetry"
    write_outputs(aggregate(_modules(5), "2026-W47", 5), out, render_page)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken_render(result):
        raise RuntimeError("the page could not be drawn")

    with pytest.raises(RuntimeError):
        write_outputs(aggregate(_modules(6, "b-y"), WEEK, 5), out, broken_render)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in out.parent.iterdir()] == ["telemetry"]  # no staging directory left behind


def test_a_second_publication_replaces_the_first_whole(tmp_path):
    from dropsonde.collector.aggregate import write_outputs
    from dropsonde.collector.render import render_page

    out = tmp_path / "telemetry"
    write_outputs(aggregate(_modules(5), "2026-W47", 5), out, render_page)
    (out / "stale.json").write_text("[]")  # a file the new week does not write disappears with the old directory
    write_outputs(aggregate(_modules(6, "b-y"), WEEK, 5), out, render_page)
    assert json.loads((out / "modules.json").read_text()) == [{"slug": "b-y", "sites": 6}]
    assert not (out / "stale.json").exists() and [p.name for p in tmp_path.iterdir()] == ["telemetry"]
    assert out.stat().st_mode & 0o777 == 0o755


def test_no_csv_cell_starts_a_spreadsheet_formula(tmp_path):
    from dropsonde.collector.aggregate import write_outputs
    from dropsonde.collector.render import render_page

    hostile = ["=HYPERLINK(\"http://x.example\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "plain"]
    reports = [{"site_id": site(n), "classes": [{"name": name, "count": 1} for name in hostile]} for n in range(5)]
    out = tmp_path / "out"
    write_outputs(aggregate(reports, WEEK, 5), out, render_page)
    import csv

    cells = [cell for line in csv.reader((out / "classes.csv").open()) for cell in line]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")], cells
    assert "'=HYPERLINK(\"http://x.example\")" in cells and "plain" in cells
    assert json.loads((out / "classes.json").read_text())[0]["name"] in hostile  # JSON keeps the value as it is
