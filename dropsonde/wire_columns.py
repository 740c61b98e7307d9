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


# The most entries one report may hold in each list column (the collector's
# allowlist refuses a report over it; the probe sets such a column aside): far above what a
# real site sends (the example site's reports hold at most 15 entries per
# column; the 121 modules Debian packages define 1,744 classes and defines
# between them), far below what makes the store or the weekly job grow out of
# proportion to the number of reports (3,000 slugs per report once made six
# reports publish 4.1 million module pairs). A list over its cap is refused
# with a 400 naming the column and the rule, never cut short: a truncated
# report would be counted as if it were whole.
MAX_ROWS: Dict[str, int] = {
    "modules": 2000,  # distinct (slug, version) over every environment
    "unused_modules": 2000,
    "dependencies": 2000,
    "classes": 5000,
    "unused_classes": 5000,
    "profile_classes": 5000,
    "class_platforms": 20000,  # (class, OS family) pairs: classes x the few platforms a site runs
    "puppetfile_ruby_methods": 200,  # the probe's vocabulary holds 121 names, plus "(private)"
}
DEFAULT_MAX_ROWS = 1000  # a third-party plugin's list column


def max_rows(column: str) -> int:
    """The most rows a report's list ``column`` may hold, whatever the plugin emits."""
    return MAX_ROWS.get(column, DEFAULT_MAX_ROWS)


def metric_columns(*names: str) -> List[Dict[str, Any]]:
    """Copies of the named columns (a plugin's ``schema()``): a caller that
    changes what it got cannot change the declaration."""
    return [copy.deepcopy(REPORT_COLUMNS[name]) for name in names]
