"""`collector load` puts rows into the store only as serve would: the same
--forge-cache, the same allowlist and list caps (#17.8: load bypassed them)."""

from __future__ import annotations

import json

import pytest

from dropsonde.errors import ExitStatus
from tests.support.cli import assert_clean_error, run_dropsonde
from tests.support.collector_process import MODULE, rows, write_forge_cache

INVENTED_CLASS = {"classes": [{"name": "ntp::buy_cheap_pills", "count": 3}]}
INVENTED_VERSION = {"modules": [{"name": "ntp", "slug": "puppetlabs-ntp", "version": "77.7.7"}]}
OVER_CAP = {"modules": [{"name": "ntp", "slug": "puppetlabs-ntp", "version": f"1.0.{n}"} for n in range(2001)]}


def table_row(n: int, **columns) -> dict:
    """A row as `dev example` writes it (the table layout)."""
    return {"message_id": f"00000000-0000-4000-8000-{n:012d}", "site_id": f"{n:0128x}",
            "product": "popularity-module", "version": "1.0.0", "timestamp": "2026-11-27T12:00:00+00:00",
            "ip": None, "modules": MODULE, "classes": [{"name": "ntp::config", "count": 2}], **columns}


def load(tmp_path, *lines: dict, forge=True):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    cache = ["--forge-cache", str(write_forge_cache(tmp_path / "forge", ["puppetlabs-ntp"]))] if forge else []
    return path, run_dropsonde("collector", "load", str(path), "--db", str(tmp_path / "r.db"), *cache)


def test_rows_the_allowlist_accepts_are_loaded(tmp_path):
    _, result = load(tmp_path, table_row(1), table_row(2))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2 rows loaded"
    assert rows(str(tmp_path / "r.db"), "SELECT COUNT(*) FROM site_weeks") == [(2,)]


@pytest.mark.parametrize("bad, column, needle", [
    (INVENTED_CLASS, "classes", "'ntp::buy_cheap_pills' is not a class defined by a published release"),
    (INVENTED_VERSION, "modules", "'77.7.7' is not an X.Y.Z version the Forge published"),
    (OVER_CAP, "modules", "is not at most 2000 entries per report"),
])
def test_a_row_the_allowlist_refuses_is_named_and_nothing_is_loaded(tmp_path, bad, column, needle):
    path, result = load(tmp_path, table_row(1), table_row(2, **bad), table_row(3))
    assert_clean_error(result, ExitStatus.USAGE, f"{path}:2: column {column}: ", needle)
    stored = rows(str(tmp_path / "r.db"), "SELECT (SELECT COUNT(*) FROM reports), (SELECT COUNT(*) FROM site_weeks), "
                                          "(SELECT COUNT(*) FROM site_week_classes), "
                                          "(SELECT COUNT(*) FROM site_week_modules)")
    assert stored == [(0, 0, 0, 0)]  # neither the refused row nor the rows around it: no partial load


def test_load_needs_the_forge_cache_as_serve_does(tmp_path):
    path, loaded = load(tmp_path, table_row(1), forge=False)
    served = run_dropsonde("collector", "serve", "--db", str(tmp_path / "r.db"), "--listen", "127.0.0.1:1")
    assert loaded.returncode == served.returncode == ExitStatus.USAGE
    assert "Missing option '--forge-cache'" in loaded.stderr and "Missing option '--forge-cache'" in served.stderr
    missing = tmp_path / "nowhere" / "forge.json"
    for command in (["load", str(path)], ["serve", "--listen", "127.0.0.1:1"]):
        result = run_dropsonde("collector", *command, "--db", str(tmp_path / "r.db"), "--forge-cache", str(missing))
        assert_clean_error(result, ExitStatus.USAGE, f"{missing}: cannot read")
    assert not (tmp_path / "r.db").exists()
