"""A loopback stand-in for PuppetDB that answers the probe's class queries
with rows a test chooses: for the shapes a real PuppetDB never produces
(odd title case, huge or negative counts) but a hostile or broken one could."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, List, Optional

from tests.support.loopback import LoopbackServer, QuietHandler

DEBIAN_ONLY = [{"facts.os.family": "Debian", "count": 1}]


class ClassRowsHandler(QuietHandler):
    """``state`` is (the class rows ``[{"title": ..., "count": ...}]``, the family rows);
    by default every node is Debian. Counts the queries it answers."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("query", [""])[0]
        classes, families, asked = self.server.state
        asked.append(query)
        rows: List[Any]
        if query.startswith("inventory[facts.os.family"):
            rows = families
        elif query.startswith("resources[title"):
            rows = classes
        else:
            rows = []
        self.send(200, json.dumps(rows).encode(), "application/json")


def class_rows_server(rows: List[Any], families: Optional[List[Any]] = None) -> LoopbackServer:
    """``server.state[2]`` lists the queries asked."""
    return LoopbackServer(ClassRowsHandler, (rows, DEBIAN_ONLY if families is None else families, []))
