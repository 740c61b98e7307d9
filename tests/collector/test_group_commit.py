"""The writer thread outlives its database: errors reach each waiting request
at once, and it reconnects (#17.13)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dropsonde.collector.group_commit import StoreUnavailable
from dropsonde.collector.storage import connect_store, open_store
from tests.support.collector_process import MODULE, CollectorProcess, envelope, post, site
from tests.support.puppetdb_server import free_port

COLUMNS = ["modules", "environment_count"]


def row(n: int) -> dict:
    return {"message_id": f"m{n}", "site_id": f"{n:0128x}", "product": "popularity-module", "version": "1.0.0",
            "timestamp": "2026-11-25T10:00:00.000000+00:00", "ip": None, "environment_count": n,
            "modules": [{"name": "x", "slug": "a-x", "version": "1.0.0"}]}


def test_a_database_unreachable_at_start_fails_each_report_at_once_and_the_writer_lives_on(own_postgres):
    """The writer died when its first connection failed: every report then waited 30 s."""
    nowhere = connect_store(f"postgresql://postgres@127.0.0.1:{free_port()}/reports", COLUMNS)
    nowhere.start_writer()
    for n in range(3):  # the same writer answers each of them: it did not die with the first
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            nowhere.insert(row(n), timeout=10)
        assert time.monotonic() - started < 5
    nowhere.close()


def test_the_writer_reconnects_after_a_restart_of_the_database(own_postgres):
    own_postgres.psql("CREATE DATABASE reports")
    url = own_postgres.url("reports")
    open_store(url, COLUMNS)
    store = connect_store(url, COLUMNS)
    store.start_writer()
    store.insert(row(1))
    own_postgres.stop()
    with pytest.raises(StoreUnavailable):
        store.insert(row(2), timeout=10)
    own_postgres.start_server()
    store.insert(row(3), timeout=10)  # a new connection, at once
    store.close()
    stored = {r["message_id"] for r in open_store(url, COLUMNS).query("SELECT message_id FROM reports", {})}
    assert stored == {"m1", "m3"}


def test_a_postgresql_restart_under_load_loses_no_acknowledged_report(own_postgres):
    """Clients keep sending while PostgreSQL restarts; each retries a 503 as
    `dropsonde submit` does. Every report answered 200 is in the store, and
    every report is answered 200 in the end: the writers reconnected."""
    own_postgres.psql("CREATE DATABASE reports")
    url = own_postgres.url("reports")
    reports, acknowledged, refused = 240, set(), []
    lock = threading.Lock()
    restart_at = threading.Event()

    def send(n: int) -> None:
        for _ in range(200):  # bounded: 200 tries, 0.05 s apart
            code, _ = post(collector, envelope(site(50_000 + n), MODULE), timeout=20)
            if code == 200:
                with lock:
                    acknowledged.add(site(50_000 + n))
                    if len(acknowledged) == reports // 3:
                        restart_at.set()
                return
            with lock:
                refused.append(code)
            time.sleep(0.05)  # a client's pause before it retries

    with CollectorProcess(url, "--rate", "100000", "--workers", "2") as collector:
        with ThreadPoolExecutor(max_workers=8) as pool:
            sent = pool.map(send, range(reports))
            assert restart_at.wait(60)
            own_postgres.stop()
            time.sleep(0.5)  # the database stays down while reports arrive
            own_postgres.start_server()
            list(sent)
    stored = {r["site_id"] for r in open_store(url).query("SELECT site_id FROM reports", {})}
    assert refused and set(refused) == {503}  # the restart was seen, as 503s only
    assert len(acknowledged) == reports  # the writers reconnected
    assert acknowledged <= stored
