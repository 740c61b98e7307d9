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
