"""The weekly aggregates, one SQL file each: the file name is the published
table's name, the query is what anyone can read, run on their own copy
(SQLite, PostgreSQL, a warehouse) and propose changes to.

Each file starts with comment lines; these are read here:

    -- keys: slug, version        the columns that name a row
    -- rows per site: 40          the most rows one site counts in (the query
                                  keeps that many per site: ROW_NUMBER() per site)
    -- modules per site: 8        instead, for pairs and triples: the most
                                  modules one site counts with (C(8, 2) pairs)
    -- sums: nodes=100            a summed column, clipped by the query to that

Every query has a ``sites`` column (its count of sites per row) and no
``HAVING``: which rows are published is decided on the *noisy* counts
(``noise.py``), never on the true ones. Parameters are ``:week``
(``YYYY-Www``), ``:rows_per_site`` / ``:modules_per_site`` (the header's
bound), ``:unranked`` (a position after every ranked module) and three
public rankings of slugs, written ``WITH ranking (slug, position) AS
(:name)`` and expanded by ``expand_lists`` to a ``VALUES`` list:
``:module_ranking`` (the last published week's modules, by their published
counts), ``:pair_ranking`` and ``:triple_ranking`` (this week's published
modules, most used first). The SQL files are plain SQL that SQLite and
PostgreSQL both run, so anyone can run them on their own copy.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Dict, List, Optional, Tuple

from dropsonde.errors import Failure

# The order the tables are computed and published in: modules first, as the
# page's version chart and trends are about the top modules.
ORDER = ("sites", "modules", "module_versions", "module_platforms", "module_pairs", "module_triples", "classes",
         "platforms", "environment_counts", "modules_per_site", "dependencies", "profile_classes", "puppetfile_methods")


@dataclass(frozen=True)
class Query:
    name: str
    sql: str
    keys: Tuple[str, ...]
    rows_per_site: int  # the most rows (keys) one site adds 1 to
    sums: Dict[str, int]  # summed column -> the most one site adds to it in one row
    modules_per_site: int = 0  # pairs, triples: the modules a site counts with

    @property
    def columns(self) -> Tuple[str, ...]:
        return self.keys + ("sites",) + tuple(self.sums)


class Ranking(list):  # type: ignore[type-arg]
    """Slugs, most used first: expanded to ``VALUES (slug, position), ...``."""


def _header(name: str, text: str, field: str, default: Optional[str] = None) -> str:
    match = re.search(rf"^-- {field}:(.*)$", text, re.MULTILINE)
    if match is None:
        if default is not None:
            return default
        raise Failure(f"query {name}.sql: no '-- {field}:' line")
    return match.group(1).strip()


def _positive(name: str, field: str, value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise Failure(f"query {name}.sql: {field} {value!r}: expected a positive integer")
    return int(value)


def parse_query(name: str, text: str) -> Query:
    """A query file's SQL (comments removed) and its declared keys and bounds."""
    keys = tuple(k.strip() for k in _header(name, text, "keys").split(",") if k.strip())
    sums = {}
    for item in _header(name, text, "sums", "").split():
        column, _, bound = item.partition("=")
        sums[column] = _positive(name, "sums", bound)
    modules = _header(name, text, "modules per site", "")
    if modules:
        per_module = _positive(name, "modules per site", modules)
        rows = math.comb(per_module, len(keys))
    else:
        per_module, rows = 0, _positive(name, "rows per site", _header(name, text, "rows per site"))
    if re.search(r"\bHAVING\b", text, re.IGNORECASE):
        raise Failure(f"query {name}.sql: HAVING on a true count; rows are selected on noisy counts")
    sql = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--")).strip()
    return Query(name, sql, keys, rows, sums, per_module)


def expand_lists(sql: str, parameters: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """A ``Ranking`` parameter as ``VALUES (:name_0, 0), (:name_1, 1), ...``:
    the one SQL form of a small table that SQLite and PostgreSQL share. An
    empty ranking is a query of no rows."""
    expanded = {k: v for k, v in parameters.items() if not isinstance(v, Ranking)}
    for name, values in parameters.items():
        if isinstance(values, Ranking):
            marks = [f"{name}_{index}" for index in range(len(values))]
            expanded.update(zip(marks, values))
            rows = ", ".join(f"(:{mark}, {index})" for index, mark in enumerate(marks))
            sql = re.sub(rf":{name}\b", f"VALUES {rows}" if rows else "SELECT '', 0 WHERE 1 = 0", sql)
    return sql, expanded


def load_queries() -> List[Query]:
    """The weekly queries shipped with dropsonde, in publication order."""
    folder = resources.files(__name__)
    return [parse_query(name, folder.joinpath(f"{name}.sql").read_text(encoding="utf-8")) for name in ORDER]
