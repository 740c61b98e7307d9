"""The weekly aggregates, one SQL file each: the file name is the published
table's name, the query is what anyone can read, run on their own copy
(SQLite, PostgreSQL, a warehouse) and propose changes to.

Each file starts with comment lines; two of them are read here:

    -- keys: slug, version        the columns that name a row (not noised)
    -- noise: sites=1            every other column, with the most one site
                                 can change it (the query clips to that)

Parameters are ``:week`` (``YYYY-Www``), ``:k`` (rows need at least k
sites), and two lists of slugs, ``:pair_modules`` and ``:triple_modules``
(module_pairs, module_triples: the most used modules by their published,
noisy site counts), written ``IN (:name)`` and expanded to one parameter
per slug by ``expand_lists``. Every query has a ``sites`` column and orders
its rows by something that does not depend on the counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Dict, List, Tuple

from dropsonde.errors import DropsondeError

# The order the tables are computed and published in: modules first, as the
# page's version chart and trends are about the top modules.
ORDER = ("sites", "modules", "module_versions", "module_pairs", "module_triples", "classes", "platforms",
         "environment_counts", "modules_per_site", "dependencies", "profile_classes", "puppetfile_methods")


@dataclass(frozen=True)
class Query:
    name: str
    sql: str
    keys: Tuple[str, ...]
    sensitivity: Dict[str, int]  # measure column -> the most one site can add to it


def _header(name: str, text: str, field: str) -> str:
    match = re.search(rf"^-- {field}:(.*)$", text, re.MULTILINE)
    if match is None:
        raise DropsondeError(f"query {name}.sql: no '-- {field}:' line")
    return match.group(1).strip()


def parse_query(name: str, text: str) -> Query:
    """A query file's SQL (comments removed) and its declared keys and noise."""
    keys = tuple(k.strip() for k in _header(name, text, "keys").split(",") if k.strip())
    sensitivity = {}
    for item in _header(name, text, "noise").split():
        column, _, bound = item.partition("=")
        if not bound.isdigit() or int(bound) < 1:
            raise DropsondeError(f"query {name}.sql: noise {item!r}: expected column=positive integer")
        sensitivity[column] = int(bound)
    if "sites" not in sensitivity:
        raise DropsondeError(f"query {name}.sql: every query publishes a noised 'sites' column")
    sql = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--")).strip()
    return Query(name, sql, keys, sensitivity)


def expand_lists(sql: str, parameters: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """``IN (:name)`` for a list parameter as ``IN (:name_0, :name_1, ...)``:
    the one SQL form for a list that SQLite, PostgreSQL and BigQuery share.
    An empty list matches nothing (``IN (NULL)``)."""
    expanded = {k: v for k, v in parameters.items() if not isinstance(v, (list, tuple))}
    for name, values in parameters.items():
        if isinstance(values, (list, tuple)):
            marks = [f"{name}_{index}" for index in range(len(values))]
            expanded.update(zip(marks, values))
            sql = re.sub(rf":{name}\b", ", ".join(f":{mark}" for mark in marks) or "NULL", sql)
    return sql, expanded


def load_queries() -> List[Query]:
    """The weekly queries shipped with dropsonde, in publication order."""
    folder = resources.files(__name__)
    return [parse_query(name, folder.joinpath(f"{name}.sql").read_text(encoding="utf-8")) for name in ORDER]
