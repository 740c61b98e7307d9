"""How `dropsonde collector serve` is run: its defaults and its server."""

from __future__ import annotations

from dropsonde.errors import ExitStatus
from tests.support.cli import assert_clean_error, run_dropsonde
from tests.support.collector_process import write_forge_cache

PUPPET_PORTS = {"8140", "8142", "8143", "8170", "8080", "8081", "4433"}


def test_the_default_port_is_none_of_puppets():
    result = run_dropsonde("collector", "serve", "--help")
    assert result.returncode == 0
    default = result.stdout.split("[default: 127.0.0.1:", 1)[1][:4]
    assert default.isdigit() and default not in PUPPET_PORTS


def test_a_port_in_use_is_one_error_line(tmp_path):
    import socket

    forge = write_forge_cache(tmp_path, ["puppetlabs-ntp"])
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_dropsonde("collector", "serve", "--db", str(tmp_path / "r.db"), "--forge-cache", str(forge),
                               "--listen", f"127.0.0.1:{port}")
    assert_clean_error(result, ExitStatus.FAILURE, f"--listen 127.0.0.1:{port}: cannot listen: Address already in use")
    assert result.stderr.startswith("dropsonde: error:") and "[ERROR]" not in result.stderr


def test_sighup_replaces_the_workers_gracefully_with_the_refreshed_forge_list(tmp_path):
    import json
    import os
    import signal
    import time

    from tests.support.collector_process import CollectorProcess, envelope, post, site

    forge = write_forge_cache(tmp_path, ["puppetlabs-ntp"])
    nginx = [{"name": "nginx", "slug": "puppet-nginx", "version": "6.0.0"}]
    with CollectorProcess(str(tmp_path / "r.db"), "--forge-cache", str(forge), "--workers", "2",
                          "--rate", "100000") as collector:
        assert post(collector, envelope(site(1), nginx))[0] == 400
        write_forge_cache(tmp_path, ["puppetlabs-ntp", "puppet-nginx"])
        os.kill(collector.process.pid, signal.SIGHUP)
        deadline, codes = time.monotonic() + 30, []
        while time.monotonic() < deadline and codes[-2:] != [200, 200]:
            codes.append(post(collector, envelope(site(len(codes) + 2), nginx))[0])
            time.sleep(0.05)  # polling the new workers' arrival, bounded by the deadline
        assert collector.process.poll() is None  # the master stayed up throughout
    assert set(codes) <= {200, 400} and codes[-2:] == [200, 200], codes


def test_a_reload_while_the_store_opens_is_kept_for_later_not_the_end_of_the_collector(tmp_path):
    """The socket is bound before the store is opened (or an older one migrated), gunicorn's
    handlers are installed after: a SIGHUP in between (`systemctl reload` right after a start)
    killed the collector. Here the store is held locked, so the SIGHUP surely comes in between."""
    import os
    import signal
    import sqlite3
    import time

    from tests.support.collector_process import MODULE, CollectorProcess, envelope, post, site

    db = str(tmp_path / "r.db")
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # the collector's open waits on it (busy timeout 30 s)
    collector = CollectorProcess(db, "--rate", "100000").start()  # returns once the socket accepts
    try:
        os.kill(collector.process.pid, signal.SIGHUP)
        lock.execute("COMMIT")
        lock.close()
        deadline, codes = time.monotonic() + 30, []
        while time.monotonic() < deadline and codes[-1:] != [200] and collector.process.poll() is None:
            codes.append(post(collector, envelope(site(1), MODULE))[0])
        assert collector.process.poll() is None and codes[-1:] == [200], codes
    finally:
        collector.stop()
