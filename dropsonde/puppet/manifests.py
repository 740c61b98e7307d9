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
from dataclasses import dataclass, field
from typing import Iterator, List, NamedTuple, Optional

DECLARING_FUNCTIONS = frozenset({"include", "require", "contain"})
ATTRIBUTE_ARROWS = frozenset({"=>", "+>"})

# After these token kinds a '/' is a division, otherwise it starts a regex
# (mirrors Puppet's Lexer2#regexp_acceptable?).
_OPERAND_KINDS = frozenset({"NAME", "CLASSREF", "NUMBER", "STRING", "VARIABLE", "HEREDOC", "REGEX"})
_CLOSING_OPS = frozenset({")", "]", "|>", "|>>"})

_TOKEN_BODY = r"""
    (?P<sq>'(?:[^'\\]|\\.)*(?:'|\Z))
  | (?P<dq>")
  | (?P<heredoc>@\()
  | (?P<var>\$(?:::)?\w+(?:::\w+)*)
  | (?P<name>(?:::)?[A-Za-z_][\w]*(?:-\w+)*(?:::[A-Za-z_]\w*)*)
  | (?P<number>(?:0[xX][0-9A-Fa-f]+|\d+(?:\.\d+)?(?:[eE]-?\d+)?)\w*)
  | (?P<op>=>|\+>|->|~>|<-|<~|==|!=|=~|!~|<=|>=|<<\||\|>>|<\||\|>|\+=|-=|<<|>>|@@|[^\s\w])
"""
# Blanks and comments are skipped by the same match as the token after them
# (one regex call per token); the "on line" form stops at a newline, where a
# pending heredoc body has to be skipped.
_SKIP = r"(?:\s+|\#[^\n]*|/\*.*?(?:\*/|\Z))*"
_SKIP_ON_LINE_RE = re.compile(r"(?:[ \t\r\f\v]+|\#[^\n]*|/\*[^\n]*?\*/)*")
_REGEX = r"(?P<regex>/(?:[^/\\\n]|\\.)*/)|"
_TOKEN_RE = re.compile(_SKIP + "(?:" + _TOKEN_BODY + ")", re.VERBOSE | re.DOTALL)
_TOKEN_OR_REGEX_RE = re.compile(_SKIP + "(?:" + _REGEX + _TOKEN_BODY + ")", re.VERBOSE | re.DOTALL)
_TRAILING_SKIP_RE = re.compile(_SKIP + r"\Z", re.DOTALL)
_HEREDOC_TAG_RE = re.compile(r'\s*("?)([^"\r\n:/)]+?)\1\s*(?::\s*[\w+]+\s*)?(?:/\s*[\w$]*\s*)?\)')
_SQ_ESCAPE_RE = re.compile(r"\\([\\'])")


class Token(NamedTuple):
    """One lexical token: its kind, its text (strings unquoted) and its offset."""

    kind: str
    value: str
    pos: int


@dataclass
class Definition:
    """A class or defined type found in a manifest."""

    kind: str  # "class" or "define"
    name: str
    line: int
    declares: List[str] = field(default_factory=list)


@dataclass
class ManifestInfo:
    """What one manifest file defines and declares; ``error`` says why reading stopped short."""

    definitions: List[Definition] = field(default_factory=list)
    error: Optional[str] = None

    @property
    def classes(self) -> List[str]:
        """Names of the classes defined, in file order."""
        return [d.name for d in self.definitions if d.kind == "class"]


class _Lexer:
    """Turns Puppet source into tokens, skipping comments, heredoc bodies and
    string interpolations (none of which can define or declare a class)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.resume_after_line: Optional[int] = None  # where heredoc bodies on this line end
        self.last_kind = ""
        self.last_value = ""

    def tokens(self) -> Iterator[Token]:
        """Yield every significant token until end of input."""
        text, size = self.text, len(self.text)
        last_kind, last_value = "", ""
        while self.pos < size:
            if self.resume_after_line is not None:
                start = _SKIP_ON_LINE_RE.match(text, self.pos).end()
                if start >= size or text[start] == "\n":
                    self.pos, self.resume_after_line = self.resume_after_line, None
                    continue
                self.pos = start
            regex_acceptable = not (
                last_kind in _OPERAND_KINDS or (last_kind == "OP" and last_value in _CLOSING_OPS)
            )
            match = (_TOKEN_OR_REGEX_RE if regex_acceptable else _TOKEN_RE).match(text, self.pos)
            if match is None:
                skipped = _TRAILING_SKIP_RE.match(text, self.pos)
                # only blanks and comments left, or a character no rule knows
                self.pos = size if skipped else self.pos + 1
                continue
            token = self._token(match)
            if token is not None:
                last_kind, last_value = token.kind, token.value
                yield token

    def _token(self, match: "re.Match[str]") -> Optional[Token]:
        kind = match.lastgroup
        start = match.start(kind)
        value = match.group(kind)
        self.pos = match.end()
        if kind == "name":
            return Token("CLASSREF" if value.lstrip(":")[:1].isupper() else "NAME", value, start)
        if kind == "op":
            return Token("OP", value, start)
        if kind == "sq":
            body = value[1:-1] if len(value) > 1 and value.endswith("'") else value[1:]
            return Token("STRING", _SQ_ESCAPE_RE.sub(r"\1", body) if "\\" in body else body, start)
        if kind == "dq":
            return self._double_quoted(start)
        if kind == "heredoc":
            return self._heredoc(start)
        if kind == "var":
            return Token("VARIABLE", value, start)
        if kind == "regex":
            return Token("REGEX", value[1:-1], start)
        return Token("NUMBER", value, start)

    def _double_quoted(self, start: int) -> Token:
        """Scan a double-quoted string. Its value is the text when it holds no
        interpolation, else "" (a computed name cannot be matched)."""
        text, pos = self.text, start + 1
        chunks: List[str] = []
        interpolated = False
        while pos < len(text):
            char = text[pos]
            if char == "\\" and pos + 1 < len(text):
                chunks.append(text[pos + 1])
                pos += 2
            elif char == '"':
                pos += 1
                break
            elif char == "$" and text.startswith("${", pos):
                interpolated = True
                pos = self._skip_interpolation(pos + 2)
            elif char == "$" and re.match(r"\$(?:::)?\w", text[pos:pos + 4]):
                interpolated = True
                pos += 1
            else:
                chunks.append(char)
                pos += 1
        self.pos = pos
        return Token("STRING", "" if interpolated else "".join(chunks), start)

    def _skip_interpolation(self, pos: int) -> int:
        """Return the offset just past the ``}`` closing a ``${`` at ``pos``."""
        inner = _Lexer(self.text)
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
        the previous heredoc of that line) and ends at the ``|- TAG`` line."""
        match = _HEREDOC_TAG_RE.match(self.text, self.pos)
        if match is None:
            return Token("OP", "@(", start)
        self.pos = match.end()
        tag = match.group(2).strip()
        body_start = self.resume_after_line
        if body_start is None:
            newline = self.text.find("\n", self.pos)
            body_start = len(self.text) if newline < 0 else newline + 1
        end_re = re.compile(r"^[ \t]*(?:\|[ \t]*)?(?:-[ \t]*)?" + re.escape(tag) + r"[ \t]*\r?$", re.MULTILINE)
        end = end_re.search(self.text, body_start)
        if end is None:
            self.resume_after_line = len(self.text)
        else:
            after = self.text.find("\n", end.end())
            self.resume_after_line = len(self.text) if after < 0 else after + 1
        return Token("HEREDOC", "", start)


@dataclass
class _Frame:
    """One level of brace nesting and what opened it."""

    definition: Optional[Definition] = None
    class_resource: bool = False  # the body of `class { 'title': ... }`
    expect_title: bool = False


class _Reader:
    """Walks the token stream, keeping a stack of brace frames, and records
    definitions and declarations as it meets them."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = list(_Lexer(text).tokens())
        self.index = 0
        self.stack: List[_Frame] = [_Frame()]
        self.info = ManifestInfo()

    def read(self) -> ManifestInfo:
        while self.index < len(self.tokens):
            self._step()
        return self.info

    def _peek(self, offset: int = 0) -> Optional[Token]:
        index = self.index + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def _owner(self) -> Optional[Definition]:
        for frame in reversed(self.stack):
            if frame.definition is not None:
                return frame.definition
        return None

    def _enclosing_class(self) -> Optional[str]:
        for frame in reversed(self.stack):
            if frame.definition is not None and frame.definition.kind == "class":
                return frame.definition.name
        return None

    def _declare(self, name: str) -> None:
        owner = self._owner()
        name = name.lower().lstrip(":")
        if owner is not None and name and name not in owner.declares:
            owner.declares.append(name)

    def _step(self) -> None:
        token = self.tokens[self.index]
        frame = self.stack[-1]
        if frame.expect_title:
            self._title_token(token, frame)
            return
        self.index += 1
        if token.kind == "OP":
            if token.value == "{":
                self.stack.append(_Frame())
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
        if keyword.value == "class" and following.kind == "OP" and following.value == "{":
            self.index += 1
            self.stack.append(_Frame(class_resource=True, expect_title=True))
            return
        if following.kind != "NAME":
            return
        self.index += 1
        name = following.value.lower().lstrip(":")
        outer = self._enclosing_class()
        if outer:
            name = f"{outer}::{name}"
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
        line = self.text.count("\n", 0, keyword.pos) + 1
        definition = Definition(kind=keyword.value, name=name, line=line)
        self.info.definitions.append(definition)
        self.stack.append(_Frame(definition=definition))

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
    """Definitions and declarations in Puppet source text."""
    return _Reader(text).read()


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
    info.error = error
    return info
