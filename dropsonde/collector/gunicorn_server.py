"""`collector serve`: the collector's WSGI application on gunicorn with gevent
workers, its listening socket, and the hooks that start and stop each worker."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List

from dropsonde.collector.allowlist_files import load_allowlist
from dropsonde.collector.rate_limiter import RateLimiter
from dropsonde.collector.options import DEFAULT_CONNECTIONS, OptionError, ServeOptions
from dropsonde.collector.sql_dialect import redact_url
from dropsonde.collector.storage import connect_store, open_store
from dropsonde.errors import ExitStatus
from dropsonde.wire_columns import REPORT_COLUMNS

log = logging.getLogger(__name__)
LISTEN_BACKLOG = 1024  # connections waiting while every worker serves --connections
WORKER_TIMEOUT = 30  # seconds: a worker silent this long is replaced; a stopping one gets as long to finish


def parse_listen(listen: str) -> str:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise OptionError("listen", None, f"expected HOST:PORT, got {listen!r}")
    return listen


def bind(listen: str) -> socket.socket:
    """The listening socket, bound here so that a port in use is one clear
    error line (gunicorn would retry for five seconds and log each try); the
    master hands it to gunicorn as ``fd://``."""
    host, _, port = parse_listen(listen).rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, int(port)), family=family, backlog=LISTEN_BACKLOG)
    except OSError as exc:
        raise OptionError("listen", listen, f"cannot listen: {exc.strerror or exc}", ExitStatus.FAILURE) from None


def serve(listen: str, db: str, options: ServeOptions, forge_cache: Path, connections: int = DEFAULT_CONNECTIONS,
          workers: int = 1) -> None:
    """Serve until SIGTERM (graceful) or SIGINT, on gunicorn with gevent workers.

    gunicorn's master keeps ``workers`` processes (validation is CPU-bound
    Python: one process per core), restarts one that dies or stops answering
    its heartbeat (30 s), and on SIGHUP replaces them gracefully (re-reading
    ``forge_cache``). Its gevent worker serves each connection in a greenlet,
    so a slow client holds a greenlet, not a thread; reading a request's
    headers is bounded by ``options.read_timeout`` (gunicorn's keep-alive
    timeout wraps it) and its body by the application, and at most
    ``connections`` are served per worker (the rest wait in the backlog).
    """
    from gunicorn.app.base import BaseApplication

    allowlist = load_allowlist(forge_cache)  # a bad list stops the collector here, before anything is created
    when_ready = _defer_reloads_until_ready()
    listener = bind(listen)
    open_store(db, allowlist=allowlist)  # tables created (an older store migrated) once, before any worker exists
    scratch = tempfile.mkdtemp(prefix="dropsonde-collector-")
    limiter = RateLimiter(os.path.join(scratch, "rate.db"), options.rate_per_minute,
                          options.sites_per_source).create()
    master = os.getpid()

    def load_app() -> Any:
        """In each worker, after the fork: its own group-commit writer, which
        connects when the first report comes (a worker started while the
        database is down answers 503 until it is back, rather than fail to boot)."""
        from dropsonde.collector.app import CollectorApp

        store = connect_store(db)
        store.start_writer()
        # Read again here, so a SIGHUP after `dropsonde update` takes the new list; a list
        # that has become unreadable stops the workers (fail closed) rather than accept anything.
        return CollectorApp(store, REPORT_COLUMNS, options, load_allowlist(forge_cache), limiter)

    class Server(BaseApplication):  # type: ignore[misc] # gunicorn publishes no types
        def load_config(self) -> None:
            for key, value in _gunicorn_options(listener, options, connections, workers, when_ready).items():
                if key in self.cfg.settings:  # settings newer than the oldest gunicorn supported are skipped
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return load_app()

    log.warning("collector listening on %s with %d worker(s), storing in %s", listen, workers, redact_url(db))
    try:
        Server().run()
    finally:
        if os.getpid() == master:  # gunicorn's workers leave through here too
            shutil.rmtree(scratch, ignore_errors=True)


def _defer_reloads_until_ready() -> Callable[[Any], None]:
    """A SIGHUP (``systemctl reload``) that came once the socket was bound but
    before gunicorn installed its handlers -- while the store is opened, or an
    older one migrated -- killed the collector (the default action), and the
    unit restarted it. Until gunicorn is ready it is only noted; the returned
    ``when_ready`` hook sends it again then, so the reload still happens."""
    pending: List[int] = []
    signal.signal(signal.SIGHUP, lambda number, frame: pending.append(number))

    def when_ready(server: Any) -> None:
        if pending:
            os.kill(os.getpid(), signal.SIGHUP)

    return when_ready


def _gunicorn_options(listener: socket.socket, options: ServeOptions, connections: int, workers: int,
                      when_ready: Callable[[Any], None]) -> Dict[str, Any]:
    return {
        "bind": f"fd://{listener.fileno()}",
        "workers": workers,
        "worker_class": "gevent",
        "worker_connections": connections,
        "keepalive": options.read_timeout,  # bounds reading each request's line and headers
        "timeout": WORKER_TIMEOUT,
        "graceful_timeout": WORKER_TIMEOUT,
        "backlog": LISTEN_BACKLOG,
        "forwarded_allow_ips": "",  # X-Forwarded-For is the application's business (--trusted-proxy)
        "proc_name": "dropsonde-collector",
        "loglevel": "warning",
        "accesslog": None,
        "errorlog": "-",
        "when_ready": when_ready,
        "post_fork": _stop_on_signals_while_booting,
        "worker_exit": _close_store,
        "control_socket_disable": True,  # gunicorn >= 25: one per-user socket path, shared by every instance
    }


def _stop_on_signals_while_booting(server: Any, worker: Any) -> None:
    """gunicorn's post_fork hook. Until the worker installs its own handlers, a
    fresh worker still has the master's, which only queue the signal for the
    master's loop: a SIGTERM sent then was lost, and the worker kept serving
    until the master killed it after the graceful timeout. The default action
    (exit) is right for a worker that holds nothing yet."""
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(number, signal.SIG_DFL)


def _close_store(server: Any, worker: Any) -> None:
    """gunicorn's worker_exit hook: commit what the writer holds before the worker goes."""
    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "store"):
        app.store.close()
