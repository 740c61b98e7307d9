"""Reading Puppet manifests: which classes and defined types a file defines,
and which classes each of them declares.

A hand-written tokenizer, because Puppet's grammar is context-sensitive in
the places that matter here (heredocs whose text starts on the next line,
``/`` that is a regex or a division depending on the previous token, ``${}``
interpolation that nests arbitrary code inside strings), and because the
available tree-sitter grammar gets a third of real manifests wrong. Only the
lexical structure and brace nesting are tracked: that is enough to find
definitions and declarations without building an AST, and it degrades
gracefully on invalid input (what was found is returned, nothing raises).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, NamedTuple, Optional, Set, Tuple

from dropsonde.cpu_budget import MANIFEST_CPU_SECONDS, OverBudget, cpu_budget

DECLARING_FUNCTIONS = frozenset({"include", "require", "contain"})
ATTRIBUTE_ARROWS = frozenset({"=>", "+>"})


class Token(NamedTuple):
    """One lexical token: its kind, its text (strings unquoted) and its offset."""

    kind: str
    value: str
    pos: int


@dataclass(slots=True)
class Definition:
    """A class or defined type found in a manifest. Slotted, and its names interned
    (``sys.intern``), because a run keeps one per definition of every distinct
    manifest: a ``__dict__`` each made 70 KB of ``class a{}`` weigh 2 MB.
    """

    kind: str  # "class" or "define"
    name: str
    line: int
    declares: Tuple[str, ...] = ()  # a tuple: most declare nothing, and share the empty one


@dataclass
class ManifestInfo:
    """What one manifest file defines and declares; ``error`` says why reading stopped short."""

    definitions: List[Definition] = field(default_factory=list)
    error: Optional[str] = None

    @property
    def classes(self) -> List[str]:
        """Names of the classes defined, in file order."""
        return [d.name for d in self.definitions if d.kind == "class"]


# After these token kinds a '/' is a division, otherwise it starts a regex
# (mirrors Puppet's Lexer2#regexp_acceptable?).
_OPERAND_KINDS = frozenset({"NAME", "CLASSREF", "NUMBER", "STRING", "VARIABLE", "HEREDOC", "REGEX"})
_CLOSING_OPS = frozenset({")", "]", "|>", "|>>"})

# The cost of lexing must stay linear in the input, whatever it holds (a
# manifest is untrusted input). So no pattern below nests a quantifier in
# another that can match the same text, none is asked to fail after
# consuming blanks or comments (which made the former single-regex lexer
# backtrack exponentially), and text whose end has to be searched for
# (comments, strings, regexes, heredocs) is delimited by code that never
# scans the same stretch twice (see _Scan).
# Blanks before a token are matched with it: one regex call per token in the
# usual case. A single \s* cannot backtrack more than once over its blanks,
# and the match fails (leaving comments and the rest to _Lexer._skip) only
# before a comment or a character no rule knows.
_TOKEN_RE = re.compile(
    r"""
    \s*(?!\#|/\*)
    (?:
    (?P<sq>')
  | (?P<dq>")
  | (?P<heredoc>@\()
  | (?P<var>\$(?:::)?\w+(?:::\w+)*)
  | (?P<name>(?:::)?[A-Za-z_]\w*(?:-\w+)*(?:::[A-Za-z_]\w*)*)
  | (?P<number>(?:0[xX][0-9A-Fa-f]+|\d+(?:\.\d+)?(?:[eE]-?\d+)?)\w*)
  | (?P<op>=>|\+>|->|~>|<-|<~|==|!=|=~|!~|<=|>=|<<\||\|>>|<\||\|>|\+=|-=|<<|>>|@@|[^\s\w])
    )
    """,
    re.VERBOSE,
)
_BLANKS_RE = re.compile(r"\s+")
_BLANKS_ON_LINE_RE = re.compile(r"[^\S\n]+")
_SQ_BODY_RE = re.compile(r"[^'\\]*(?:\\.[^'\\]*)*", re.DOTALL)
_SQ_ESCAPE_RE = re.compile(r"\\([\\'])")
_DQ_PLAIN_RE = re.compile(r'[^"\\$]+')
_DQ_VARIABLE_RE = re.compile(r"\$(?:::)?\w")
_REGEX_BODY_RE = re.compile(r"[^/\\\n]*(?:\\.[^/\\\n]*)*", re.DOTALL)
# Puppet's HeredocSupport::PATTERN_HEREDOC after the "@(": tag, :syntax, /escapes.
_HEREDOC_SPEC_RE = re.compile(r"([^:/\r\n)]+)(?::[ \t]*[a-z][a-zA-Z0-9_+]+[ \t]*)?(?:/[\w$]*[ \t]*)?\)")
_HEREDOC_TAG_RUN_RE = re.compile(r"[^:/\r\n)]*")


def _run_end(pattern: "re.Pattern[str]", text: str, pos: int) -> int:
    """Where the run of ``pattern`` at ``pos`` ends. The patterns passed here
    match wherever they are asked to (possibly nothing), so there is always one."""
    match = pattern.match(text, pos)
    return match.end() if match is not None else pos
_RUBY_STRIP = " \t\n\v\f\r\0"  # what Ruby's String#strip removes
# Deeper "${ "${ ... } " }" nesting than this is taken to run to the end of the
# text: no real manifest comes near, and it bounds the recursion.
_MAX_INTERPOLATION_DEPTH = 64


class _Scan:
    """What searches over one text found, shared by every lexer reading it.

    Each answer stays valid for later starting points up to where it was
    found, so thousands of unterminated ``/*``, regexes or heredoc tags cost
    one scan of the text instead of one each.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._found: Dict[str, Tuple[int, int]] = {}
        self.no_regex = (0, 0)  # a '/' in [start, end) cannot open a regex
        self.no_heredoc = (0, 0)  # an '@(' followed by text in [start, end) is no heredoc
        # Where the heredoc bodies of the current line end: shared by the lexer of an
        # interpolation and the one around it, as Puppet's lexing context is, so that
        # `"${@(END)}"` skips its body once the line ends, whichever lexer gets there.
        self.resume_after_line: Optional[int] = None

    def find(self, needle: str, pos: int) -> int:
        """``text.find(needle, pos)``, answered from an earlier search when it covers ``pos``."""
        known = self._found.get(needle)
        if known is not None and known[0] <= pos and (known[1] < 0 or pos <= known[1]):
            return known[1]
        found = self.text.find(needle, pos)
        self._found[needle] = (pos, found)
        return found


class _Lexer:
    """Turns Puppet source into tokens, skipping comments, heredoc bodies and
    string interpolations (none of which can define or declare a class)."""

    def __init__(self, text: str, scan: Optional[_Scan] = None, depth: int = 0) -> None:
        self.text = text
        self.scan = scan or _Scan(text)
        self.depth = depth  # of string interpolation
        self.pos = 0

    def tokens(self) -> Iterator[Token]:
        """Yield every significant token until end of input."""
        text, size = self.text, len(self.text)
        last_kind, last_value = "", ""
        scan = self.scan
        while True:
            resume = scan.resume_after_line
            heredoc_pending = resume is not None
            match = None if heredoc_pending else _TOKEN_RE.match(text, self.pos)
            if match is None:
                start = self._skip(self.pos, keep_newline=heredoc_pending)
                if resume is not None and (start >= size or text[start] == "\n"):
                    # never backwards, even if a string ran on into the heredoc body
                    self.pos, scan.resume_after_line = max(start, resume), None
                    continue
                if start >= size:
                    self.pos = size
                    return
                match = _TOKEN_RE.match(text, start)
                if match is None:  # a character no rule knows
                    self.pos = start + 1
                    continue
            token = None
            if match.lastgroup == "op" and match.group("op") == "/" and not (
                last_kind in _OPERAND_KINDS or (last_kind == "OP" and last_value in _CLOSING_OPS)
            ):
                token = self._regex(match.start("op"))
            if token is None:
                token = self._token(match)
            if token is not None:
                last_kind, last_value = token.kind, token.value
                yield token

    def _skip(self, pos: int, keep_newline: bool) -> int:
        """Offset of the next significant character: past blanks and comments, and
        not past a newline when ``keep_newline`` (a heredoc body may start there).

        An unterminated ``/*`` runs to the end of the text (Puppet rejects the file).
        """
        text, size = self.text, len(self.text)
        blanks = _BLANKS_ON_LINE_RE if keep_newline else _BLANKS_RE
        while pos < size:
            char = text[pos]
            if char == "#":
                newline = self.scan.find("\n", pos)
                pos = size if newline < 0 else newline
            elif char == "/" and text.startswith("/*", pos):
                close = self.scan.find("*/", pos + 2)
                pos = size if close < 0 else close + 2
            elif char.isspace() and not (keep_newline and char == "\n"):
                pos = _run_end(blanks, text, pos)
            else:
                break
        return pos

    def _token(self, match: "re.Match[str]") -> Optional[Token]:
        kind = match.lastgroup
        if kind is None:  # every alternative of _TOKEN_RE is a named group
            return None
        start = match.start(kind)
        value = match.group(kind)
        self.pos = match.end()
        if kind == "name":
            return Token("CLASSREF" if value.lstrip(":")[:1].isupper() else "NAME", value, start)
        if kind == "op":
            return Token("OP", value, start)
        if kind == "sq":
            return self._single_quoted(start)
        if kind == "dq":
            return self._double_quoted(start)
        if kind == "heredoc":
            return self._heredoc(start)
        if kind == "var":
            return Token("VARIABLE", value, start)
        return Token("NUMBER", value, start)

    def _regex(self, start: int) -> Optional[Token]:
        """A ``/regex/`` at ``start``, or None when the line holds no closing ``/``.

        A failed scan stops where every later ``/`` it passed would stop too
        (each was escaped), so that stretch is remembered as holding no regex.
        """
        low, high = self.scan.no_regex
        if low <= start < high:
            return None
        end = _run_end(_REGEX_BODY_RE, self.text, start + 1)
        if end < len(self.text) and self.text[end] == "/":
            self.pos = end + 1
            return Token("REGEX", self.text[start + 1:end], start)
        self.scan.no_regex = (start, end)
        return None

    def _single_quoted(self, start: int) -> Token:
        """A single-quoted string; unterminated, it runs to the end of the text."""
        text = self.text
        end = _run_end(_SQ_BODY_RE, text, start + 1)
        closed = end < len(text) and text[end] == "'"
        self.pos = end + 1 if closed else len(text)
        body = text[start + 1:end]
        return Token("STRING", _SQ_ESCAPE_RE.sub(r"\1", body) if "\\" in body else body, start)

    def _double_quoted(self, start: int) -> Token:
        """Scan a double-quoted string. Its value is the text when it holds no
        interpolation, else "" (a computed name cannot be matched)."""
        text, size, pos = self.text, len(self.text), start + 1
        chunks: List[str] = []
        interpolated = False
        while pos < size:
            plain = _DQ_PLAIN_RE.match(text, pos)
            if plain is not None:
                chunks.append(plain.group())
                pos = plain.end()
                continue
            char = text[pos]
            if char == '"':
                pos += 1
                break
            if char == "\\" and pos + 1 < size:
                chunks.append(text[pos + 1])
                pos += 2
            elif text.startswith("${", pos):
                interpolated = True
                pos = self._skip_interpolation(pos + 2)
            elif _DQ_VARIABLE_RE.match(text, pos):
                interpolated = True
                pos += 1
            else:
                chunks.append(char)
                pos += 1
        self.pos = pos
        return Token("STRING", "" if interpolated else "".join(chunks), start)

    def _skip_interpolation(self, pos: int) -> int:
        """Return the offset just past the ``}`` closing a ``${`` at ``pos``."""
        if self.depth >= _MAX_INTERPOLATION_DEPTH:
            return len(self.text)
        inner = _Lexer(self.text, self.scan, self.depth + 1)
        inner.pos = pos
        depth = 1
        for token in inner.tokens():
            if token.kind == "OP" and token.value == "{":
                depth += 1
            elif token.kind == "OP" and token.value == "}":
                depth -= 1
                if depth == 0:
                    return inner.pos
        return len(self.text)

    def _heredoc(self, start: int) -> Token:
        """Skip a heredoc: its text starts on the line after the ``@(TAG)`` (or after
        the previous heredoc of that line) and ends at a line ending in the tag,
        as Puppet's HeredocSupport reads it."""
        low, high = self.scan.no_heredoc
        if low <= self.pos < high:
            return Token("OP", "@(", start)
        spec = _HEREDOC_SPEC_RE.match(self.text, self.pos)
        if spec is None:
            # every '@(' up to where this tag's text stops fails the same way
            self.scan.no_heredoc = (self.pos, _run_end(_HEREDOC_TAG_RUN_RE, self.text, self.pos))
            return Token("OP", "@(", start)
        tag = spec.group(1).strip(_RUBY_STRIP)
        if len(tag) >= 2 and tag[0] == tag[-1] == '"':
            tag = tag[1:-1].strip(_RUBY_STRIP)
        if not tag:
            return Token("OP", "@(", start)
        self.pos = spec.end()
        body_start = self.scan.resume_after_line
        if body_start is None:
            newline = self.scan.find("\n", self.pos)
            body_start = len(self.text) if newline < 0 else newline + 1
        self.scan.resume_after_line = self._heredoc_end(tag, body_start)
        return Token("HEREDOC", "", start)

    def _heredoc_end(self, tag: str, pos: int) -> int:
        """Offset just past the first line from ``pos`` that ends in ``tag`` (then
        blanks and an optional CR), or the end of the text.

        Linear overall: the lines searched are the heredoc's body, which the
        lexers then skip (``resume_after_line`` is shared), and a heredoc with
        no end runs to the end of the text, where every lexer stops (Puppet
        rejects the file)."""
        text, size = self.text, len(self.text)
        while pos < size:
            newline = text.find("\n", pos)
            line_end = size if newline < 0 else newline
            line = text[pos:line_end]
            if line.endswith("\r"):
                line = line[:-1]
            if line.rstrip(" \t").endswith(tag):
                return min(line_end + 1, size)
            pos = line_end + 1
        return size


#: What one manifest's result may weigh: the characters of the names it defines
#: and declares (and 8 for each record). The largest real one (Debian's
#: oci::controller, 259 declared classes) is 6.7 KB, and no real manifest's is
#: larger than 0.84 times the file; past the smaller of this and
#: ``MANIFEST_OUTPUT_RATIO`` times the file's size (plus
#: ``MANIFEST_OUTPUT_SLACK``) the file is set aside. It bounds the memory and
#: the cache space manifests take, in each file (400,000 classes nested in one
#: with a 1,000-character name would take 400 MB) and in all (nested names
#: make 100 times more output than input, over as many small files as wanted).
MANIFEST_OUTPUT_BYTES = 64 * 1024
MANIFEST_OUTPUT_RATIO = 2
MANIFEST_OUTPUT_SLACK = 256
#: What all the distinct manifests of one run may weigh together, counted as
#: above, whether parsed or known from the cache: a budget per file alone let
#: the total grow with the number of files (1,000 files of 70 KB, each within
#: every per-file budget, took 2.9 GB). Debian's 1,710 distinct manifests weigh
#: 100 KB; the manifests past it are set aside (ManifestCache names them).
MANIFESTS_RUN_OUTPUT_BYTES = 4 * 1024 * 1024
#: What a record costs in that count besides its name's characters.
RECORD_COST = 8


def output_bytes(definitions: List[Definition]) -> int:
    """What ``definitions`` weigh in the output budgets: the characters of every
    name defined and declared, and RECORD_COST for each."""
    return sum(len(d.name) + RECORD_COST + sum(len(name) + RECORD_COST for name in d.declares) for d in definitions)


class _OverOutputBudget(Exception):
    """The manifest defines or declares more than MANIFEST_OUTPUT_BYTES of names."""


# A nested class is named after every class around it. Past this length a
# name is not recorded (nor anything nested in it): no real class comes near,
# and deep nesting would otherwise build names quadratic in the file's size.
_MAX_NAME_LENGTH = 1024


@dataclass
class _Frame:
    """One level of brace nesting: what opened it, and what it lies in (kept
    here, not looked up through the stack, so deep nesting costs nothing)."""

    owner: Optional[Definition] = None  # the innermost class or define around
    enclosing_class: str = ""  # the innermost class around, "" at top level
    overlong: bool = False  # inside a definition whose name was too long to record
    class_resource: bool = False  # the body of `class { 'title': ... }`
    expect_title: bool = False

    def child(self, **opened_by: bool) -> "_Frame":
        """A frame nested in this one, in the same definition."""
        return _Frame(self.owner, self.enclosing_class, self.overlong, **opened_by)


class _Reader:
    """Walks the token stream, keeping a stack of brace frames, and records
    definitions and declarations as it meets them."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = list(_Lexer(text).tokens())
        self.index = 0
        self.stack: List[_Frame] = [_Frame()]
        self.info = ManifestInfo()
        # what each definition declares, by id() of the Definition, in order (a dict as
        # an ordered set); given to the Definition as a tuple once the file is read
        self.declared: Dict[int, Tuple[Definition, Dict[str, None]]] = {}
        self.lines_before = 0  # newlines before line_pos: line numbers without rescanning
        self.line_pos = 0
        self.output = 0  # characters of the names recorded so far
        self.output_budget = min(MANIFEST_OUTPUT_BYTES, MANIFEST_OUTPUT_RATIO * len(text) + MANIFEST_OUTPUT_SLACK)

    def _record(self, name: str) -> None:
        """Count a name recorded against the output budget."""
        self.output += len(name) + RECORD_COST
        if self.output > self.output_budget:
            raise _OverOutputBudget()

    def read(self) -> ManifestInfo:
        while self.index < len(self.tokens):
            self._step()
        for definition, declared in self.declared.values():
            definition.declares = tuple(declared)
        return self.info

    def _peek(self, offset: int = 0) -> Optional[Token]:
        index = self.index + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def _line(self, pos: int) -> int:
        """Line number of offset ``pos``; offsets come in increasing order."""
        if pos < self.line_pos:
            self.lines_before, self.line_pos = 0, 0
        self.lines_before += self.text.count("\n", self.line_pos, pos)
        self.line_pos = pos
        return self.lines_before + 1

    def _declare(self, name: str) -> None:
        owner = self.stack[-1].owner
        name = name.lower().lstrip(":")
        if owner is None or not name:
            return
        seen = self.declared.setdefault(id(owner), (owner, {}))[1]
        if name not in seen:
            self._record(name)
            seen[sys.intern(name)] = None

    def _step(self) -> None:
        token = self.tokens[self.index]
        frame = self.stack[-1]
        if frame.expect_title:
            self._title_token(token, frame)
            return
        self.index += 1
        if token.kind == "OP":
            if token.value == "{":
                self.stack.append(frame.child())
            elif token.value == "}" and len(self.stack) > 1:
                self.stack.pop()
            elif token.value == ";" and frame.class_resource:
                frame.expect_title = True
            return
        if token.kind != "NAME":
            return
        following = self._peek()
        if following is not None and following.kind == "OP" and following.value in ATTRIBUTE_ARROWS:
            return  # an attribute named like a keyword: `require => ...`
        previous = self.tokens[self.index - 2] if self.index >= 2 else None
        if previous is not None and previous.kind == "OP" and previous.value == ".":
            return  # a method call: `$list.include(...)`
        if token.value in ("class", "define"):
            self._definition_or_resource(token)
        elif token.value in DECLARING_FUNCTIONS:
            self._declaring_call()

    def _definition_or_resource(self, keyword: Token) -> None:
        following = self._peek()
        if following is None:
            return
        frame = self.stack[-1]
        if keyword.value == "class" and following.kind == "OP" and following.value == "{":
            self.index += 1
            self.stack.append(frame.child(class_resource=True, expect_title=True))
            return
        if following.kind != "NAME":
            return
        self.index += 1
        name = following.value.lower().lstrip(":")
        overlong = frame.overlong or len(frame.enclosing_class) + 2 + len(name) > _MAX_NAME_LENGTH
        if frame.enclosing_class and not overlong:
            name = f"{frame.enclosing_class}::{name}"
        after = self._peek()
        if after is not None and after.kind == "OP" and after.value == "(":
            self._skip_balanced()
        after = self._peek()
        if after is not None and after.kind == "NAME" and after.value == "inherits":
            self.index += 2
        after = self._peek()
        if after is None or after.kind != "OP" or after.value != "{":
            return
        self.index += 1
        if overlong:
            self.stack.append(_Frame(overlong=True))
            return
        self._record(name)
        definition = Definition(kind=sys.intern(keyword.value), name=sys.intern(name), line=self._line(keyword.pos))
        self.info.definitions.append(definition)
        enclosing_class = name if keyword.value == "class" else frame.enclosing_class
        self.stack.append(_Frame(owner=definition, enclosing_class=enclosing_class))

    def _title_token(self, token: Token, frame: _Frame) -> None:
        """Inside `class { ... }` before the `:`: every literal is a declared class."""
        self.index += 1
        if token.kind in ("STRING", "NAME"):
            self._declare(token.value)
        elif token.kind == "OP" and token.value == ":":
            frame.expect_title = False
        elif token.kind == "OP" and token.value == "}":
            self.stack.pop()

    def _declaring_call(self) -> None:
        """`include a, 'b'`, `include(['a', 'b'])`, `contain $x` (dynamic: ignored)."""
        following = self._peek()
        if following is not None and following.kind == "OP" and following.value == "(":
            self._declare_bracketed()
            return
        while True:
            token = self._peek()
            if token is None:
                return
            if token.kind in ("STRING", "NAME"):
                self._declare(token.value)
                self.index += 1
            elif token.kind == "OP" and token.value == "[":
                self._declare_bracketed()
            elif token.kind == "VARIABLE":
                self.index += 1
            else:
                return
            separator = self._peek()
            if separator is None or separator.kind != "OP" or separator.value != ",":
                return
            self.index += 1

    def _declare_bracketed(self) -> None:
        """Every literal between the bracket at the current index and its match is
        a declared class (``include(['a', 'b'])``); continue after the match."""
        end = self._matching_close()
        for token in self.tokens[self.index + 1:end]:
            if token.kind in ("STRING", "NAME"):
                self._declare(token.value)
        self.index = end + 1

    def _matching_close(self) -> int:
        """Index of the bracket closing the one at the current index."""
        depth = 0
        for index in range(self.index, len(self.tokens)):
            token = self.tokens[index]
            if token.kind != "OP":
                continue
            if token.value in ("(", "[", "{"):
                depth += 1
            elif token.value in (")", "]", "}"):
                depth -= 1
                if depth == 0:
                    return index
        return len(self.tokens)

    def _skip_balanced(self) -> None:
        self.index = self._matching_close() + 1


def read_manifest_text(text: str) -> ManifestInfo:
    """Definitions and declarations in Puppet source text, within the budgets:
    MANIFEST_CPU_SECONDS of CPU time and MANIFEST_OUTPUT_BYTES of names. Over
    either, nothing is returned (the file's classes are not public) and
    ``error`` says which budget it broke."""
    try:
        with cpu_budget(MANIFEST_CPU_SECONDS):
            return _Reader(text).read()
    except OverBudget as exc:
        return ManifestInfo(error=f"set aside: reading it took {exc} (MANIFEST_CPU_SECONDS)")
    except _OverOutputBudget:
        return ManifestInfo(error=f"set aside: it defines and declares more class names than its budget "
                                  f"(MANIFEST_OUTPUT_BYTES: {MANIFEST_OUTPUT_BYTES // 1024} KiB, at most "
                                  f"{MANIFEST_OUTPUT_RATIO} times the file's size)")
    except MemoryError:  # the process's own limit (ulimit -v): this file, not the run
        return ManifestInfo(error="set aside: reading it ran out of memory")


def read_manifest_data(data: bytes) -> ManifestInfo:
    """Definitions and declarations in the bytes of a ``.pp`` file; never raises.

    Binary data gives an empty result with the reason in ``error``; text that
    is not UTF-8 is read with replacement characters (Puppet would reject it)
    and says so.
    """
    if b"\0" in data:
        return ManifestInfo(error="binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8")
        error = None
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        error = "not valid UTF-8"
    info = read_manifest_text(text)
    info.error = info.error or error
    return info
