"""What the collector accepts: every value of a report must be one the probe
could have sent, judged against the collector's own Forge list and the
release evidence beside it (what each published release of a listed module
is, and which classes it publishes: ``dropsonde.release_evidence``).

The schema check (jsonschema) proves a report has the right shape; it does
not stop a client from publishing text of its choosing through a string
field ("Visit http://phish.example ...") or from storing counts that break
the weekly job (negative, or 4,300 digits). So every string field has a
rule naming what it may hold — a slug on the list, a class some published
release of that module defines, a version the Forge published for that
module, a version range, a Ruby method name, an OS family — and every
integer is a count in 0..10^9. Shapes alone let one address publish 78,903
invented rows (any class under a listed namespace, any X.Y.Z version). A field without a rule
is refused: an allowlist, as Go's telemetry server keeps one.

The shapes are the probe's own (``dropsonde.privacy``, ``dropsonde.vocabulary``),
so what the probe sends and what the collector takes cannot drift apart.
Pure functions: no I/O, no server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, Iterable, Iterator, Mapping, Optional, Set, Tuple

from dropsonde.privacy import PRIVATE, class_name, public_requirement, public_version, reportable_class
from dropsonde.vocabulary import FACTER_OS_FAMILIES, OTHER_FAMILY, RUBY_CORE_METHODS
from dropsonde.wire_columns import DEFAULT_MAX_ROWS, MAX_ROWS

MAX_COUNT = 10**9
# The longest class name accepted. The 1,744 classes and defines of the 121
# modules Debian packages (/usr/share/puppet/modules) are at most 65
# characters long (mcollective::server::config::connector::activemq::hosts_iteration);
# 100 leaves a margin and keeps what a crafted name can spell short.
MAX_CLASS_NAME = 100
PLATFORMS = FACTER_OS_FAMILIES | {OTHER_FAMILY}

# The most entries one report may hold in each list column, declared with the
# columns (the probe sets a longer column aside before sending it).
MAX_ENTRIES: Dict[str, int] = MAX_ROWS
DEFAULT_MAX_ENTRIES = DEFAULT_MAX_ROWS


@dataclass(frozen=True)
class Violation:
    """Why a report is refused: the column, the rule broken, and the value (shortened)."""

    column: str
    rule: str
    value: str

    def message(self) -> str:
        return f"column {self.column}: {self.value} is not {self.rule}"


@dataclass(frozen=True)
class Rule:
    """A predicate on one field's value (given its record, for rules that
    relate two fields) and the words that name it in a refusal."""

    words: str
    accepts: Callable[["Allowlist", Any, Dict[str, Any]], bool]


def _is_count(_: "Allowlist", value: Any, __: Dict[str, Any]) -> bool:
    # bool is an int to Python and 1.0 an integer to JSON Schema: neither is a count.
    return type(value) is int and 0 <= value <= MAX_COUNT


def _is_listed_slug(allowlist: "Allowlist", value: Any, _: Dict[str, Any]) -> bool:
    return isinstance(value, str) and value in allowlist.slugs


def _is_module_name(allowlist: "Allowlist", value: Any, record: Dict[str, Any]) -> bool:
    # An unlisted slug is refused by the slug's own rule, which names the real problem.
    slug = record.get("slug")
    return not _is_listed_slug(allowlist, slug, record) or value == str(slug).split("-", 1)[1]


def _is_class_name(allowlist: "Allowlist", value: Any, _: Dict[str, Any]) -> bool:
    canonical = class_name(value)
    return (canonical is not None and len(value) <= MAX_CLASS_NAME and reportable_class(value)
            and canonical in allowlist.classes.get(canonical.split("::", 1)[0], ()))


def _is_released_version(allowlist: "Allowlist", value: Any, record: Dict[str, Any]) -> bool:
    # An unlisted slug is refused by the slug's own rule, which names the real problem.
    slug = record.get("slug")
    if not _is_listed_slug(allowlist, slug, record) or value == PRIVATE:
        return True
    return (isinstance(value, str) and public_version(value) == value
            and value in allowlist.versions.get(str(slug), frozenset()))


def _is_requirement(_: "Allowlist", value: Any, __: Dict[str, Any]) -> bool:
    return isinstance(value, str) and public_requirement(value) == value


def _is_ruby_method(_: "Allowlist", value: Any, __: Dict[str, Any]) -> bool:
    return value == PRIVATE or value in RUBY_CORE_METHODS


def _is_platform(_: "Allowlist", value: Any, __: Dict[str, Any]) -> bool:
    return value in PLATFORMS


COUNT = Rule(f"an integer in 0..{MAX_COUNT}", _is_count)
SLUG = Rule("a module slug on the collector's Forge list", _is_listed_slug)
MODULE_NAME = Rule("the name part of the slug beside it", _is_module_name)
CLASS_NAME = Rule(f"a class defined by a published release of a listed module (name or name::..., "
                  f"[a-z][a-z0-9_]* segments, at most {MAX_CLASS_NAME} characters; the collector's release evidence)",
                  _is_class_name)
VERSION = Rule(f"an X.Y.Z version the Forge published for that module (the collector's release evidence) "
               f"or {PRIVATE}", _is_released_version)
REQUIREMENT = Rule(f"a version range or {PRIVATE}", _is_requirement)
RUBY_METHOD = Rule(f"a Ruby core or standard library method name or {PRIVATE}", _is_ruby_method)
PLATFORM = Rule("an OS family as Facter names it, or 'other'", _is_platform)

# The rule of every string field of the built-in metrics, by (column, field).
STRING_RULES: Dict[Tuple[str, str], Rule] = {
    ("modules", "name"): MODULE_NAME,
    ("modules", "slug"): SLUG,
    ("modules", "version"): VERSION,
    ("unused_modules", "name"): MODULE_NAME,
    ("unused_modules", "slug"): SLUG,
    ("unused_modules", "version"): VERSION,
    ("dependencies", "name"): SLUG,
    ("dependencies", "version_requirement"): REQUIREMENT,
    ("classes", "name"): CLASS_NAME,
    ("unused_classes", "name"): CLASS_NAME,
    ("class_platforms", "name"): CLASS_NAME,
    ("class_platforms", "platform"): PLATFORM,
    ("profile_classes", "name"): CLASS_NAME,
    ("puppetfile_ruby_methods", "name"): RUBY_METHOD,
}
NO_RULE = Rule("accepted by the collector (no allowlist rule for this field)", lambda *_: False)


class Allowlist:
    """The collector's Forge list and its releases, and the rules that follow.
    ``releases``: for each slug, its published versions and the classes each
    publishes (only the listed slugs' count)."""

    def __init__(self, slugs: Iterable[str], releases: Mapping[str, Mapping[str, Iterable[str]]]) -> None:
        self.slugs: FrozenSet[str] = frozenset(slugs)
        self.versions: Dict[str, FrozenSet[str]] = {
            slug: frozenset(versions) for slug, versions in releases.items() if slug in self.slugs}
        classes: Dict[str, Set[str]] = {}
        for slug, versions in releases.items():
            if slug in self.slugs:
                namespace = classes.setdefault(slug.split("-", 1)[1], set())
                for published in versions.values():
                    namespace.update(published)
        #: by namespace (a module's name): every class a published release of a listed module of that name defines
        self.classes: Dict[str, FrozenSet[str]] = {name: frozenset(names) for name, names in classes.items()}

    def violation(self, columns: Dict[str, Dict[str, Any]], values: Dict[str, Any]) -> Optional[Violation]:
        """The first value of ``values`` (schema-valid snapshot values by
        column) that no rule accepts, or None when the report may be stored."""
        for name, value in values.items():
            too_long = list_cap_violation(name, value)
            if too_long is not None:
                return too_long
            for rule, field_value, record in _fields(columns[name], name, value):
                if not rule.accepts(self, field_value, record):
                    return Violation(name, rule.words, _shorten(field_value))
        return None


def list_cap_violation(column: str, value: Any) -> Optional[Violation]:
    """A list over ``column``'s cap, judged with one ``len()``: cheap enough to
    run before anything walks the list's items (the schema check, the rules)."""
    if isinstance(value, list) and len(value) > max_entries(column):
        return Violation(column, f"at most {max_entries(column)} entries per report", f"a list of {len(value)} entries")
    return None


def max_entries(column: str) -> int:
    """The most entries a report's ``column`` list may hold."""
    return MAX_ENTRIES.get(column, DEFAULT_MAX_ENTRIES)


def _fields(column: Dict[str, Any], name: str, value: Any) -> Iterator[Tuple[Rule, Any, Dict[str, Any]]]:
    """Each scalar of a column's value with the rule that judges it and its
    record; a record nested in a record has no rule (no built-in metric has one)."""
    items = value if str(column.get("mode", "NULLABLE")).upper() == "REPEATED" else [value]
    for item in items:
        if item is None:
            continue
        if not column.get("fields"):
            yield _rule(name, column), item, {}
            continue
        for field in column["fields"]:
            if field["name"] in item:
                rule = NO_RULE if field.get("fields") else _rule(name, field)
                yield rule, item[field["name"]], item


def _rule(column: str, field: Dict[str, Any]) -> Rule:
    """Integers are counts wherever they are; strings need a rule of their own."""
    if str(field.get("type", "")).upper() in ("INTEGER", "INT64"):
        return COUNT
    return STRING_RULES.get((column, field["name"]), NO_RULE)


def _shorten(value: Any) -> str:
    """The refused value as the refusal shows it: bounded, so the answer never
    echoes a large or hostile value back in full."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
