"""Puppetfile method calls with Ripper's meaning of "command"."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given

from dropsonde.puppet.puppetfile import PuppetfileCalls, PuppetfileSyntaxError, read_puppetfile_source
from tests.cpu_limit import cpu_limit
from tests.fuzzing import EXAMPLE_CPU_LIMIT, FUZZ, source_bytes

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


@pytest.mark.parametrize(
    "source",
    [
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
        b"(" * 3000 + b"1" + b")" * 3000 + b"\nmod 'a'\n",
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
    ],
)
def test_hostile_puppetfiles_are_read_or_refused_in_bounded_time(source):
    with cpu_limit(1.0):
        try:
            calls = read_puppetfile_source(source)
        except PuppetfileSyntaxError:
            return
    assert calls.commands == ["mod"]
