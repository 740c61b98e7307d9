"""Puppetfile method calls with Ripper's meaning of "command"."""

from __future__ import annotations

import json
import select
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dropsonde.puppet.puppetfile import PuppetfileCalls, PuppetfileSyntaxError, read_puppetfile_source
from tests.support.time_limits import cpu_limit
from tests.support.fuzzing import EXAMPLE_CPU_LIMIT, FUZZ, source_bytes

PUPPETFILE = b"""
forge 'https://forge.puppet.com'
moduledir 'thirdparty'
require 'json'
def secret_helper(name)
  "git@git.example.test:#{name}.git"
end
x = 1
x -1
mod 'puppetlabs-apache', '12.0.0'
mod 'private', git: secret_helper('private'), branch: 'main'
puts("parenthesised: not a command")
secret_helper 'counted'
ENV.fetch 'HOME'
if ENV['DEBUG']
  warn 'debug'
end
%w[a b].each do |item| puts item end
lambda { |y| y -1 }
"""


def test_commands_in_source_order_with_locals_respected():
    calls = read_puppetfile_source(PUPPETFILE)
    assert calls.commands == ["forge", "moduledir", "require", "mod", "mod", "secret_helper", "warn", "puts"]
    assert calls.defined_methods == {"secret_helper"}


# `#mod 'apache',` commented out leaves its options standing alone: tree-sitter
# reads two pattern matches, Ruby one pattern continued past the trailing comma,
# which it rejects (r10k would fail on this Puppetfile).
COMMENTED_OUT_MOD = b"""mod 'puppetlabs-stdlib', '9.0.0'
#mod 'apache',
  :git => 'https://git.example.test/apache.git',
  :branch => 'master'
"""


def test_a_pattern_continued_past_its_trailing_comma_is_read_as_ruby_does():
    assert read_puppetfile_source(b"x => a,\n  b\nmod 'c'\n").commands == ["mod"]
    with pytest.raises(PuppetfileSyntaxError, match="line 4"):
        read_puppetfile_source(COMMENTED_OUT_MOD)


@pytest.mark.parametrize(
    "source",
    [
        COMMENTED_OUT_MOD,
        b"mod 'a'\nend\n",
        b"x = <<~EOS\nnever closed\n",
        b"mod 'a', mod 'b'\n",
        b"mod(\n",
        b"mod 'a',\n",
        b"def broken(\n",
        b"\x00binary",
        b"mod '\xff'\n",
    ],
)
def test_invalid_ruby_is_rejected(source):
    with pytest.raises(PuppetfileSyntaxError):
        read_puppetfile_source(source)


def test_agrees_with_ripper_on_these_sources():
    """Ruby's own Ripper as ground truth, where Ruby is installed (tests/run installs it)."""
    if shutil.which("ruby") is None:
        pytest.fail("needs ruby: run tests/run (it installs Debian's puppet, which brings it)")
    script = (
        "require 'ripper'; s = Ripper.sexp(STDIN.read); "
        "if s.nil? then puts 'INVALID' else t = s.flatten; "
        "t.each_with_index { |a, i| puts t[i + 2] if a == :command } end"
    )
    sources = [
        PUPPETFILE,
        b"mod 'a'\nend\n",
        b"mod 'a', mod 'b'\n",
        b"x = 1\nx -1\nputs x\n",
        b"y -1\n",
        COMMENTED_OUT_MOD,
        b":git => 'https://git.example.test/a.git'\nmod 'b'\n",
        b"x => a,\n  b\nmod 'c'\n",
        b"x => a, # a comment\n\n  b\nmod 'c'\n",
        b"x => a,\n  mod 'c'\n",
        b"x => a,\n",
        b"x => a,\nif true\nmod 'c'\n",
        b"x => a, ;\nmod 'c'\n",
        b"[1,\n x in a,\n 2]\nmod 'c'\n",
        b"foo x in a\n",
        b"[1,\n h 'z'\n]\n",
        b"{a: h 'z'}\n",
        b"[1, x => a, 2]\nmod 'c'\n",
        b"[1, x => a]\nmod 'c'\n",
        b"(" * 120 + b"1" + b")" * 120 + b"\nmod 'a'\n",  # deeper than MAX_NESTING is set aside, not parsed
    ]
    for source in sources:
        ruby = subprocess.run(["ruby", "-e", script], input=source, capture_output=True, check=True).stdout.decode()
        expected = ruby.split()
        try:
            got = read_puppetfile_source(source).commands
        except PuppetfileSyntaxError:
            got = ["INVALID"]
        assert got == expected, source


RUBY_VOCABULARY = [
    "mod ", "'puppetlabs-apache'", ", ", "'1.0.0'", ":git => ", "git: ", "'https://git.example.test/x.git'",
    ":branch => 'main'", "forge ", "moduledir ", "#", "#mod 'x',", "\n", "  ", "def ", "end", "do ", " |x| ", "{",
    "}", "(", ")", "[", "]", "<<~EOS\n", "<<-EOS", "\nEOS\n", "=begin\n", "\n=end\n", '"#{', "x = 1", "x -1",
    " => ", " in ", "if ", "unless ", "%w[", "?a", ":sym", "__END__\n", "\\\n", ";",
    # the shapes that found the last hangs: many locals then blocks, parameters nested deep
    "a1=1\n", "a2 = a1\n", "x do\nend\n", "def m(", "((", "))", "|(a, (b, c))|",
]


@FUZZ
@given(source_bytes(RUBY_VOCABULARY, run_size=30_000))
def test_fuzzed_puppetfiles_are_read_or_refused_in_bounded_time(source):
    with cpu_limit(EXAMPLE_CPU_LIMIT):
        try:
            calls = read_puppetfile_source(source)
        except PuppetfileSyntaxError as exc:
            assert str(exc)
            return
    assert isinstance(calls, PuppetfileCalls)


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(b"mod 'a'\n" + b"\n" * 10_000, id="10000-trailing-blank-lines"),
        pytest.param(b"mod 'a', '" + b"x" * 100_000, id="100KB-unterminated-string"),
        pytest.param(b"x = <<~EOS\n" + b"line\n" * 20_000, id="unterminated-heredoc"),
        pytest.param(b"mod 'a'\n=begin\n" + b"x" * 200_000, id="200KB-unterminated-comment"),
        pytest.param(b"[" * 5_000 + b"]" * 5_000 + b"\nmod 'a'\n", id="5000-nested-arrays"),
        pytest.param(b"x do\n" * 3_000 + b"mod 'a'\n" + b"end\n" * 3_000, id="3000-nested-blocks"),
        pytest.param(b"{a: " * 3_000 + b"1" + b"}" * 3_000 + b"\nmod 'a'\n", id="3000-nested-hashes"),
        pytest.param(b"{" * 20_000, id="20000-open-braces"),
        # the reviewer's: every block copied every local variable (quadratic), and parameters
        # nested 3,000 deep (valid Ruby) were bound by recursion (RecursionError)
        pytest.param(b"".join(b"a%d=1\n" % i for i in range(20_000)) + b"x do\nend\n" * 8_000 + b"mod 'a'\n",
                     id="20000-locals-then-8000-blocks"),
        pytest.param(b"def m(" + b"(" * 3_000 + b"a" + b")" * 3_000 + b")\nend\nmod 'a'\n",
                     id="3000-nested-destructured-parameters"),
        pytest.param(b"(" * 3_000 + b"a" + b")" * 3_000 + b", b = 1, 2\nmod 'a'\n", id="3000-nested-assignment-targets"),
    ],
)
def test_hostile_puppetfiles_are_read_or_refused_in_bounded_time(source):
    with cpu_limit(1.0):
        try:
            calls = read_puppetfile_source(source)
        except PuppetfileSyntaxError:
            return
    assert calls.commands == ["mod"]


@pytest.mark.parametrize("source", [b"(" * 262_000, b"[" * 262_000, b"{a: " * 60_000, b'"#{' * 80_000,
                                    b"mod 'a', " + b"[" * 129 + b"]" * 129])
def test_brackets_nested_deeper_than_any_real_puppetfile_are_set_aside_before_parsing(source):
    """The outside review: 4 MiB of "(" took tree-sitter 1.2 GB, and it crashed under a memory limit."""
    with cpu_limit(0.5), pytest.raises(PuppetfileSyntaxError, match="brackets nested more than 128 deep"):
        read_puppetfile_source(source)


def test_brackets_nested_as_deep_as_allowed_are_parsed():
    calls = read_puppetfile_source(b"mod 'a', " + b"[" * 128 + b"]" * 128 + b"\nputs 'x'\n")
    assert calls.commands == ["mod", "puts"]


def test_commands_nested_7500_deep_are_read_in_linear_time():
    """Found by the fuzz test: ``mod mod mod ...`` (30 KB) took 2.1 s of CPU, since
    each level asked tree-sitter for its parent, which it finds from the root."""
    with cpu_limit(0.5):
        calls = read_puppetfile_source(b"mod " * 7_500 + b"'a'")
    assert calls.commands == ["mod"] * 7_500


def test_a_puppetfile_tree_sitter_is_slow_on_is_refused_within_its_cpu_budget():
    """Found by the fuzz test: tree-sitter's Ruby grammar is far slower than linear on
    stray ``=end`` lines (6 KB: 3.3 s of CPU, 36 KB: over two minutes). Parsing one
    Puppetfile has a CPU budget; past it the file is refused like an unreadable one."""
    from dropsonde.cpu_budget import PUPPETFILE_CPU_SECONDS

    with cpu_limit(PUPPETFILE_CPU_SECONDS + 1.0), pytest.raises(PuppetfileSyntaxError, match="more than .* of CPU"):
        read_puppetfile_source(b"mod =begin\n\n" + b"=end\n\n" * 6_000)
    # the cancelled parse is not resumed by the next file's
    assert read_puppetfile_source(b"mod 'puppetlabs-apache'\n").commands == ["mod"]


# One Ruby process answers every example: Ripper's verdict on each source, one JSON line each.
RIPPER_LOOP = """
require 'ripper'; require 'json'; STDOUT.sync = true
STDIN.each_line do |line|
  s = Ripper.sexp(JSON.parse(line))
  if s.nil? then puts JSON.generate(['INVALID']) else
    t = s.flatten; out = []
    t.each_with_index { |a, i| out << t[i + 2] if a == :command }
    puts JSON.generate(out)
  end
end
"""
PUPPETFILE_LINES = [
    "mod 'puppetlabs-apache'", "mod 'a', '1.0.0'", ":git => 'https://git.example.test/a.git'", ":branch => 'main'",
    "git: 'u'", ",", "#mod 'apache',", "# comment", "x => a", "x => a,", "b", "x in a,", "require 'json'",
    "forge 'https://forge.puppet.com'", "puts 'x'", "y = 1", "y -1", "def h(n) n end", "h 'z'", "[1,", "2]",
    "{a: 1,", "b: 2}", "end", "if true", "(", ")", "x => a, if true", "moduledir 'm'",
]


@pytest.fixture(scope="module")
def ripper():
    if shutil.which("ruby") is None:
        pytest.fail("needs ruby: run tests/run (it installs Debian's puppet, which brings it)")
    process = subprocess.Popen(["ruby", "-e", RIPPER_LOOP], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(source: str) -> list:
        process.stdin.write(json.dumps(source) + "\n")
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "Ruby did not answer within 30 s"
        return json.loads(process.stdout.readline())

    yield ask
    process.stdin.close()
    process.wait(timeout=30)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.tuples(st.sampled_from(["", " ", "  "]), st.sampled_from(PUPPETFILE_LINES)), min_size=1, max_size=6))
def test_agrees_with_ripper_on_generated_puppetfiles(ripper, lines):
    source = "\n".join(indent + line for indent, line in lines) + "\n"
    try:
        got = read_puppetfile_source(source.encode()).commands
    except PuppetfileSyntaxError:
        got = ["INVALID"]
    assert got == ripper(source)
