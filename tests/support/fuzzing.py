"""Hypothesis strategies and settings shared by the fuzz tests of every reader
of an untrusted file (manifests, Puppetfiles, metadata.json, puppet.conf,
environment.conf, puppetdb.conf, telemetry.yaml, Puppet Server's conf.d).

Inputs are built from each format's own vocabulary, so that they reach deep
into its grammar, mixed with random text and with the shapes that break
parsers: NUL and invalid UTF-8, unterminated constructs, deep nesting and
long runs of one pattern (which is what makes a parser backtrack or recurse).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from dropsonde.cpu_budget import ANSWER_CPU_SECONDS, CONFIG_CPU_SECONDS, MANIFEST_CPU_SECONDS, PUPPETFILE_CPU_SECONDS
from dropsonde.errors import BadInput
from tests.support.time_limits import cpu_limit

T = TypeVar("T")

# Each fuzz test stays within a few seconds: the suite runs on small CI machines.
FUZZ = settings(
    max_examples=120,
    deadline=None,  # wall time flakes on a loaded machine: EXAMPLE_CPU_LIMIT bounds each example instead
    database=None,  # no .hypothesis/ directory left in the tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
# Hard limit on the CPU time of one example (tests.support.time_limits.cpu_limit): it stops a hang
# as it happens, and unlike a wall-clock deadline it does not fail on a busy machine.
# Above the largest of the probe's own budgets (dropsonde.cpu_budget), so that the property each
# reader's test checks is "finishes within its budget, or sets the input aside".
EXAMPLE_CPU_LIMIT = max(MANIFEST_CPU_SECONDS, PUPPETFILE_CPU_SECONDS, CONFIG_CPU_SECONDS, ANSWER_CPU_SECONDS) + 1.0

HAZARDS = [
    "\x00",
    "\n" * 40,
    " " * 100,
    "\t",
    "\r\n",
    "\r",
    "\ufeff",
    "\u00e9",
    "\u2028",
    "\x85",
    "\\",
    '"',
    "'",
    "{" * 50,
    "[" * 50,
    "(" * 50,
    "}",
    "]",
    ")",
    "9" * 5000,
]


def source_text(vocabulary: Sequence[str], run_size: int = 60_000) -> st.SearchStrategy[str]:
    """Text made of the format's vocabulary, hazards and random characters,
    with a middle part that repeats one short pattern up to ``run_size`` characters."""
    piece = st.one_of(st.sampled_from(list(vocabulary)), st.sampled_from(HAZARDS), st.text(max_size=6))
    body = st.lists(piece, max_size=40).map("".join)
    pattern = st.lists(piece, min_size=1, max_size=4).map("".join).filter(bool)
    run = st.tuples(pattern, st.integers(1, run_size)).map(lambda t: t[0] * max(1, min(t[1], run_size // len(t[0]))))
    return st.tuples(body, st.one_of(st.just(""), run), body).map("".join)


def source_bytes(vocabulary: Sequence[str], run_size: int = 60_000) -> st.SearchStrategy[bytes]:
    """Like source_text, encoded, sometimes with invalid UTF-8 mixed in, or random bytes."""
    text = source_text(vocabulary, run_size)
    return st.one_of(
        text.map(lambda s: s.encode("utf-8")),
        st.tuples(text, st.binary(min_size=1, max_size=6), text).map(
            lambda t: t[0].encode("utf-8") + t[1] + t[2].encode("utf-8")
        ),
        st.binary(max_size=300),
    )


def ini_text(sections: Sequence[str], keys: Sequence[str], value_pieces: Sequence[str]) -> st.SearchStrategy[str]:
    """Lines of an INI-like file (puppet.conf, environment.conf, puppetdb.conf):
    section headers, comments and ``key = value`` lines whose values are made
    of the format's own pieces, so that the value checks are reached."""
    value = st.lists(st.sampled_from(list(value_pieces)) | st.sampled_from(HAZARDS) | st.text(max_size=4), max_size=5)
    line = st.one_of(
        st.sampled_from(list(sections)).map(lambda section: f"[{section}]"),
        st.tuples(st.sampled_from(list(keys)), st.sampled_from([" = ", "=", " =", ": "]), value.map("".join)).map("".join),
        st.sampled_from(["", "# comment", "; comment", "  "]),
    )
    return st.lists(line, max_size=15).map("\n".join)


def read_fuzzed_file(
    path: Path, data: bytes, read: Callable[[], T], names: Sequence[str] = (), longest: int | None = None
) -> T | None:
    """Write ``data`` to ``path`` and run ``read`` on it under EXAMPLE_CPU_LIMIT.

    The contract of every reader of an untrusted file, checked here once: it
    returns (the result, for the caller's own checks), or it raises a
    BadInput (exit 2) that names the file (``path``, or one of ``names``), and at
    most ``longest`` characters long; the clear error gives None. Any other
    exception, or a hang, fails the test.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    with cpu_limit(EXAMPLE_CPU_LIMIT):
        try:
            return read()
        except BadInput as exc:
            message = str(exc)
    assert any(name in message for name in names or [str(path)]), message
    assert longest is None or len(message) <= longest, f"{len(message)} characters: {message[:200]}"
    return None
