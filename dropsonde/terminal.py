"""Text bound for a terminal or a log: control characters made visible.

File names, plugin descriptions, PuppetDB and Forge answers and a server's
error body all come from outside. Printed raw, an escape sequence in one of
them can rewrite the screen, hide a line, or fake a ``dropsonde: error:``
line (a newline in a file name). Everything the probe prints for people goes
through :func:`printable`, and log records through :class:`PrintableFormatter`.
"""

from __future__ import annotations

import logging
import re
import sys

# C0 and C1 controls, DEL, and the invisible format characters that reorder or
# hide text (bidirectional overrides and isolates, zero-width characters, the
# line and paragraph separators, the byte-order mark).
_UNPRINTABLE_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]"
)
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}


def _escape(match: "re.Match[str]") -> str:
    char = match.group()
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``text`` as one line safe to print: every control or invisible format
    character (newline included) shown as a backslash escape. Multi-line
    output is escaped line by line by its caller."""
    return _UNPRINTABLE_RE.sub(_escape, str(text))


def shortened(text: object, limit: int = 60) -> str:
    """``text`` made :func:`printable` and cut to ``limit`` characters plus "…": a
    name taken from an untrusted file (a 10,000-character YAML key) is shown so
    that it can be recognised, without drowning the error line that names it."""
    shown = printable(text)
    return shown if len(shown) <= limit else shown[:limit] + "…"


def printable_lines(text: str) -> str:
    """Multi-line ``text`` with each line made :func:`printable` (newlines kept)."""
    return "\n".join(printable(line) for line in text.split("\n"))


class PrintableFormatter(logging.Formatter):
    """Formats log records with the message made :func:`printable`, so a
    warning naming a hostile file name stays one honest line."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's naming
        record.message = printable(record.message)
        return super().formatMessage(record)


def notice(message: str) -> None:
    """A line for the journal or cron mail: what a run did, without --verbose."""
    print(f"dropsonde: {printable(message)}", file=sys.stderr)
