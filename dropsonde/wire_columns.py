"""The report's metric columns as they travel, declared once for both sides.

The built-in metrics compute these columns (each plugin's ``schema()`` names
its own from here) and the collector accepts and stores exactly these: a
collector's database no longer depends on which plugins happen to be
installed on the collector host, and the collector reads the report format
without loading the probe's plugin loader or any Puppet reader. A
third-party plugin's columns are the probe's business (``dev schema`` shows
them); a collector refuses a column it does not declare here.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Tuple

from dropsonde.schema import field, repeated_record

_MODULE_FIELDS = (
    field("name", "STRING", "The module name"),
    field("slug", "STRING", "The Forge slug (author-name)"),
    field("version", "STRING", "The installed version"),
)

#: every metric column a report may carry, in ``dev schema`` order
METRIC_COLUMNS: Tuple[Dict[str, Any], ...] = (
    repeated_record(
        "dependencies",
        "Public modules that private modules depend on",
        field("name", "STRING", "The module slug (author-name)"),
        field("version_requirement", "STRING", "The version range the private module asks for"),
    ),
    field("environment_count", "INTEGER", "The number of directory environments", mode="NULLABLE"),
    repeated_record("modules", "Public modules installed in any environment", *_MODULE_FIELDS),
    repeated_record(
        "classes",
        "Public classes declared on nodes, with the number of nodes",
        field("name", "STRING", "The class name"),
        field("count", "INTEGER", "Nodes declaring it"),
    ),
    repeated_record(
        "unused_modules", "Installed public modules none of whose classes is declared on any node", *_MODULE_FIELDS
    ),
    repeated_record(
        "unused_classes",
        "Classes of installed public modules declared on no node",
        field("name", "STRING", "The class name"),
    ),
    repeated_record(
        "class_platforms",
        "Nodes declaring each public class, per OS family",
        field("name", "STRING", "The class name"),
        field("platform", "STRING", "The OS family"),
        field("count", "INTEGER", "Nodes"),
    ),
    repeated_record(
        "profile_classes",
        "Public classes declared by private classes",
        field("name", "STRING", "The public class name"),
        field("count", "INTEGER", "Number of private classes declaring it"),
    ),
    repeated_record(
        "puppetfile_ruby_methods",
        "Ruby methods called in Puppetfiles, with how often",
        field("name", "STRING", "The method name"),
        field("count", "INTEGER", "Calls over all Puppetfiles"),
    ),
)

#: the metric columns by name, as the collector validates and stores them
REPORT_COLUMNS: Dict[str, Dict[str, Any]] = {column["name"]: column for column in METRIC_COLUMNS}


def metric_columns(*names: str) -> List[Dict[str, Any]]:
    """Copies of the named columns (a plugin's ``schema()``): a caller that
    changes what it got cannot change the declaration."""
    return [copy.deepcopy(REPORT_COLUMNS[name]) for name in names]
