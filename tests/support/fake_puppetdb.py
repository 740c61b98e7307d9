"""A loopback stand-in for PuppetDB that answers the probe's class queries
with rows a test chooses: for the shapes a real PuppetDB never produces
(odd title case, huge or negative counts) but a hostile or broken one could."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, List

from tests.support.loopback import LoopbackServer, QuietHandler


class ClassRowsHandler(QuietHandler):
    """``state`` is the class rows ``[{"title": ..., "count": ...}]``; every node is Debian."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("query", [""])[0]
        rows: List[Any]
        if query.startswith("inventory[facts.os.family"):
            rows = [{"facts.os.family": "Debian", "count": 1}]
        elif query.startswith("resources[title"):
            rows = self.server.state
        else:
            rows = []
        self.send(200, json.dumps(rows).encode(), "application/json")


def class_rows_server(rows: List[Any]) -> LoopbackServer:
    return LoopbackServer(ClassRowsHandler, rows)
