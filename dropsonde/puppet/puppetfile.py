"""Method calls in a Puppetfile, with Ruby's own meaning of a "command".

The Ruby client counts Ripper's ``:command`` nodes: calls without a receiver
whose arguments are not in parentheses (``mod 'x'``, ``require 'y'``). We
parse with tree-sitter-ruby, which needs two things Ruby does for itself:
local variables (``x -1`` is arithmetic when ``x`` is a local, not a call)
and a few syntax errors tree-sitter accepts (a stray ``end``, an unterminated
heredoc, ``mod 'a', mod 'b'``, a pattern whose trailing comma Ruby continues
onto the next line). A file Ruby would reject is reported as unparsable
rather than half-counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Dict, List, Optional, Set, Tuple

from dropsonde.cpu_budget import PUPPETFILE_CPU_SECONDS, Budget, OverBudget, cpu_budget

RUBY_KEYWORDS = frozenset(
    """alias and begin break case class def defined? do else elsif end ensure false for if in
    module next nil not or redo rescue retry return self super then true undef unless until
    when while yield __FILE__ __LINE__ __ENCODING__ BEGIN END""".split()
)
# Nodes that start a new local-variable scope in Ruby.
_SCOPE_NODES = frozenset({"method", "singleton_method", "class", "module", "singleton_class"})
_PARAMETER_NODES = frozenset(
    {
        "method_parameters",
        "block_parameters",
        "lambda_parameters",
        "optional_parameter",
        "keyword_parameter",
        "splat_parameter",
        "hash_splat_parameter",
        "block_parameter",
        "destructured_parameter",
    }
)


class PuppetfileSyntaxError(ValueError):
    """Ruby would refuse to parse this Puppetfile."""


@dataclass
class PuppetfileCalls:
    """The command-style method calls of one Puppetfile, and the methods it defines."""

    commands: List[str] = field(default_factory=list)
    defined_methods: Set[str] = field(default_factory=set)


def _too_costly() -> PuppetfileSyntaxError:
    return PuppetfileSyntaxError(
        f"set aside: reading it took more than {PUPPETFILE_CPU_SECONDS:g} s of CPU time (PUPPETFILE_CPU_SECONDS)")


def _parse(source: bytes, budget: Budget) -> Any:
    """tree-sitter's tree of ``source``, or PuppetfileSyntaxError once ``budget`` is
    spent: tree-sitter's C code does not see the budget's signal, so it gets the
    time left as its own limit. It checks a progress callback only when it reads
    through a callback; its releases for Python 3.9 (0.23) have ``timeout_micros``
    instead. A cancelled or interrupted parse is reset: tree-sitter would
    otherwise resume it on the next call, whatever that call's source."""
    parser = _parser()
    remaining = budget.remaining()
    if remaining <= 0:
        raise _too_costly()
    try:
        if hasattr(parser, "timeout_micros"):
            parser.timeout_micros = max(1, int(remaining * 1_000_000))
            tree = parser.parse(source)
        else:
            tree = parser.parse(lambda offset, _point: source[offset:offset + 65536],
                                progress_callback=lambda *_progress: budget.remaining() <= 0)
    except ValueError:  # "Parsing failed": cancelled by the callback or the timeout
        tree = None
    except BaseException:  # the budget's own OverBudget, raised in the read callback
        parser.reset()
        raise
    if tree is None:
        parser.reset()
        raise _too_costly()
    return tree


@lru_cache(maxsize=1)
def _parser() -> Any:
    import tree_sitter_ruby
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_ruby.language()))


def _text(node: Any, source: bytes) -> str:
    """The node's text, sliced from ``source``: tree-sitter's ``node.text`` costs
    time proportional to the whole file (48,000 names of a 250 KB file: 2 s)."""
    text = source[node.start_byte:node.end_byte]
    return text.decode("utf-8", errors="replace")


def _opens_with_paren(node: Any, source: bytes) -> bool:
    """Whether ``node`` starts with "(", read from ``source`` at its first byte: its
    text would copy the rest of the file at every level of ``mod mod mod ...``."""
    return source[node.start_byte:node.start_byte + 1] == b"("


def _is_command(node: Any, source: bytes) -> bool:
    """A receiver-less call whose arguments are not parenthesised."""
    if node.type != "call" or node.child_by_field_name("receiver") is not None:
        return False
    arguments = node.child_by_field_name("arguments")
    return arguments is not None and arguments.type == "argument_list" and not _opens_with_paren(arguments, source)


def _check_syntax(node: Any, parent: Optional[str], source: bytes) -> None:
    """Raise PuppetfileSyntaxError for errors tree-sitter lets through. ``parent`` is
    the type of the node's parent, passed down by the walk: tree-sitter finds
    ``node.parent`` by descending from the root, so asking it at every level of
    ``mod mod mod ...`` took quadratic time (30 KB of them: over 2 s)."""
    if node.type == "identifier" and _text(node, source) in RUBY_KEYWORDS:
        raise PuppetfileSyntaxError(f"unexpected keyword '{_text(node, source)}' at line {node.start_point[0] + 1}")
    if node.type == "heredoc_body":
        ends = [child for child in node.children if child.type == "heredoc_end"]
        if not ends or not _text(ends[-1], source).strip():
            raise PuppetfileSyntaxError(f"unterminated heredoc at line {node.start_point[0] + 1}")
    if node.type in ("test_pattern", "match_pattern") and parent in (
        "array", "argument_list", "element_reference", "pair"
    ):
        # Ruby allows `x in pat` / `x => pat` only where a statement could stand
        raise PuppetfileSyntaxError(f"a pattern match used as a value at line {node.start_point[0] + 1}")
    if parent in ("array", "pair") and _is_command(node, source):
        raise PuppetfileSyntaxError(
            f"a call without parentheses inside [...] or {{...}} (line {node.start_point[0] + 1})"
        )
    if node.type == "array":
        kinds = [child.type for child in node.named_children if child.type != "comment"]
        if "pair" in kinds and any(kind not in ("pair", "hash_splat_argument") for kind in kinds[kinds.index("pair"):]):
            raise PuppetfileSyntaxError(f"an element after a `key => value` in [...] (line {node.start_point[0] + 1})")
    if node.type == "argument_list" and not _opens_with_paren(node, source) and node.named_child_count > 1:
        for child in node.named_children:
            if _is_command(child, source):
                raise PuppetfileSyntaxError(
                    f"a call without parentheses cannot be one of several arguments (line {child.start_point[0] + 1})"
                )


class _Scopes:
    """Ruby's local variables as the walk meets them, at a constant cost per
    operation: one set per ``def``/``class``/``module`` (which see nothing from
    outside), and an undo log so that a block's own variables are forgotten
    when it ends (a copy of the set per block was quadratic: 20,000 locals and
    8,000 blocks took 30 s)."""

    def __init__(self) -> None:
        self._names: List[Set[str]] = [set()]
        self._added: List[List[str]] = [[]]  # per scope, in order, the names bound in it

    def bind(self, name: str) -> None:
        names = self._names[-1]
        if name not in names:
            names.add(name)
            self._added[-1].append(name)

    def __contains__(self, name: str) -> bool:
        return name in self._names[-1]

    def open_block(self) -> int:
        """Where the current scope's undo log stands, to pass to :meth:`close_block`."""
        return len(self._added[-1])

    def close_block(self, mark: int) -> None:
        names, added = self._names[-1], self._added[-1]
        while len(added) > mark:
            names.discard(added.pop())

    def open_scope(self) -> None:
        self._names.append(set())
        self._added.append([])

    def close_scope(self) -> None:
        self._names.pop()
        self._added.pop()


# Entries of the walk's stack besides nodes: the end of a block or of a scope.
_CLOSE_BLOCK, _CLOSE_SCOPE = "close block", "close scope"


class _Walker:
    """Source-order walk that tracks which names are local variables.

    Iterative, with an explicit stack: a hostile Puppetfile nests thousands
    of levels deep, past Python's recursion limit.
    """

    def __init__(self, source: bytes) -> None:
        self.source = source  # what the tree was parsed from
        self.result = PuppetfileCalls()
        self.scopes = _Scopes()
        self._names: Dict[str, str] = {}  # one string per distinct name: a million calls cost 8 MB, not 50

    def walk(self, root: Any) -> None:
        """Visit ``root`` and its descendants in source order (a node before its
        children); a block's or scope's end is an entry of the stack too."""
        pending: List[Tuple[Any, Any]] = [(root, None)]
        while pending:
            node, parent = pending.pop()
            if node is _CLOSE_BLOCK:
                self.scopes.close_block(parent)
                continue
            if node is _CLOSE_SCOPE:
                self.scopes.close_scope()
                continue
            kind = node.type
            if kind in _SCOPE_NODES:
                self.scopes.open_scope()
                pending.append((_CLOSE_SCOPE, None))
            elif kind in ("block", "do_block", "lambda"):
                pending.append((_CLOSE_BLOCK, self.scopes.open_block()))
            self._visit(node, parent)
            pending.extend((child, kind) for child in reversed(node.children))

    def _visit(self, node: Any, parent: Optional[str]) -> None:
        """Check and record one node, binding the local variables it introduces."""
        _check_syntax(node, parent, self.source)
        kind = node.type
        if kind in ("method", "singleton_method"):
            name = node.child_by_field_name("name")
            if name is not None:
                self.result.defined_methods.add(_text(name, self.source))
        if kind in _PARAMETER_NODES:
            self._bind_parameters(node)
        if kind in ("assignment", "operator_assignment"):
            # Ruby binds the name when it sees the assignment, before the right side.
            self._bind_targets(node.child_by_field_name("left"))
        if kind == "call" and _is_command(node, self.source):
            method = node.child_by_field_name("method")
            name = _text(method, self.source) if method is not None else ""
            if name and name not in self.scopes:
                self.result.commands.append(self._names.setdefault(name, name))

    def _bind_targets(self, node: Optional[Any]) -> None:
        """Bind the names assigned to, however deeply ``(a, (b, *c))`` nests them."""
        pending = [node] if node is not None else []
        while pending:
            target = pending.pop()
            if target.type == "identifier":
                self.scopes.bind(_text(target, self.source))
            elif target.type in ("left_assignment_list", "destructured_left_assignment", "rest_assignment"):
                pending.extend(target.named_children)

    def _bind_parameters(self, node: Any) -> None:
        """Bind the names a parameter list declares directly; a nested one (``def
        m((a, b))``) binds its own when the walk reaches it, so that nesting costs
        nothing more."""
        for child in node.named_children:
            if child.type == "identifier":
                self.scopes.bind(_text(child, self.source))
            elif child.type in _PARAMETER_NODES:
                name = child.child_by_field_name("name")
                if name is not None:
                    self.scopes.bind(_text(name, self.source))


def _first_error_offset(node: Any) -> int:
    """Byte offset of the first syntax error under ``node`` (which has one)."""
    while not (node.type == "ERROR" or node.is_missing):
        child = next((child for child in node.children if child.has_error), None)
        if child is None:
            break
        node = child
    start: int = node.start_byte
    return start


def _is_trailing_comma(node: Any, source: bytes) -> bool:
    """The rest pattern tree-sitter makes of a pattern's trailing comma (``x => a,``)."""
    return bool(node.type == "splat_parameter" and node.child_count == 0 and source[node.start_byte:node.end_byte] == b",")


def _next_code(source: bytes, pos: int) -> int:
    """Offset of the first byte at or after ``pos`` that is neither blank, line break nor comment."""
    end, size = pos, len(source)
    while end < size:
        char = source[end:end + 1]
        if char in (b" ", b"\t", b"\r", b"\n", b"\f", b"\v"):
            end += 1
        elif char == b"#":
            newline = source.find(b"\n", end)
            end = size if newline < 0 else newline
        elif source.startswith(b"\\\n", end):
            end += 2
        else:
            break
    return end


# After a pattern's trailing comma Ruby wants another pattern, which a
# modifier keyword cannot start (`x => a, if c`); tree-sitter takes the comma
# as the end of the pattern and the keyword as a modifier of it.
_MODIFIER_RE = re.compile(rb"(?:if|unless|while|until|rescue)\b")

# How many times a pattern may be continued onto a next line before the file
# is refused: Ruby has no limit, but no Puppetfile uses pattern matching, and
# each continuation costs a parse of the whole file.
_MAX_CONTINUATIONS = 8


def _parse_as_ruby(source: bytes, budget: Budget) -> Any:
    """Parse ``source`` with tree-sitter, then undo where tree-sitter ends a
    statement that Ruby continues: after a pattern's trailing comma Ruby reads
    on past the newline (``#mod 'x',`` commented out leaves ``:git => 'url',``
    then ``:branch => 'main'``: one pattern to Ruby, which it rejects; two
    valid statements to tree-sitter). The line breaks there are blanked out
    and the source parsed again, so the tree is the one Ruby would build."""
    tree = _parse(source, budget)
    for _attempt in range(_MAX_CONTINUATIONS):
        gaps = []
        pending = [tree.root_node]
        while pending:
            node = pending.pop()
            if _is_trailing_comma(node, source):
                start, end = node.end_byte, _next_code(source, node.end_byte)
                if end >= len(source):
                    continue  # `x => a,` ends the file: valid
                if b"\n" in source[start:end]:
                    gaps.append((start, end))
                elif _MODIFIER_RE.match(source, end):
                    line = source.count(b"\n", 0, end) + 1
                    raise PuppetfileSyntaxError(f"a pattern's trailing comma before a modifier (line {line})")
            else:
                pending.extend(node.children)
        if not gaps:
            return source, tree
        joined = bytearray(source)
        for start, end in gaps:
            joined[start:end] = b" " * (end - start)
        source = bytes(joined)
        tree = _parse(source, budget)
    raise PuppetfileSyntaxError(f"a pattern continued over more than {_MAX_CONTINUATIONS} lines")


def read_puppetfile_source(source: bytes) -> PuppetfileCalls:
    """Command calls in Puppetfile source; PuppetfileSyntaxError if Ruby would reject
    it, or if reading it takes more than PUPPETFILE_CPU_SECONDS (set aside)."""
    try:
        with cpu_budget(PUPPETFILE_CPU_SECONDS) as budget:
            return _read_puppetfile(source, budget)
    except OverBudget:
        raise _too_costly() from None


#: Brackets ``( [ {`` (and ``#{``) open at once, counted on the bytes before
#: tree-sitter sees them (in strings and comments too, so an over-estimate).
#: Real Puppetfiles nest a few levels; tree-sitter's memory grows with nesting
#: (4 MiB of ``(``: 1.2 GB, and a segmentation fault under a memory limit).
MAX_NESTING = 128
_BRACKETS_RE = re.compile(rb"[\[\](){}]")


def _deepest_nesting(source: bytes, limit: int) -> int:
    """How deep ``( [ {`` nest in ``source``, counting no further than ``limit`` + 1."""
    depth = deepest = 0
    for bracket in _BRACKETS_RE.finditer(source):
        if bracket.group() in b"([{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif depth:
            depth -= 1
    return deepest


def _read_puppetfile(source: bytes, budget: Budget) -> PuppetfileCalls:
    if b"\0" in source:
        raise PuppetfileSyntaxError("binary file (contains NUL bytes)")
    try:
        source.decode("utf-8")
    except UnicodeDecodeError:
        raise PuppetfileSyntaxError("not valid UTF-8") from None
    if _deepest_nesting(source, MAX_NESTING) > MAX_NESTING:
        raise PuppetfileSyntaxError(f"set aside: brackets nested more than {MAX_NESTING} deep (MAX_NESTING)")
    original = source
    source, tree = _parse_as_ruby(source, budget)
    if tree.root_node.has_error:
        line = original.count(b"\n", 0, _first_error_offset(tree.root_node)) + 1
        raise PuppetfileSyntaxError(f"syntax error near line {line}")
    walker = _Walker(source)
    walker.walk(tree.root_node)
    return walker.result
