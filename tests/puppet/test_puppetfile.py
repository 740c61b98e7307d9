"""Puppetfile method calls with Ripper's meaning of "command"."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from dropsonde.puppet.puppetfile import PuppetfileSyntaxError, read_puppetfile_source

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
    sources = [PUPPETFILE, b"mod 'a'\nend\n", b"mod 'a', mod 'b'\n", b"x = 1\nx -1\nputs x\n", b"y -1\n"]
    for source in sources:
        ruby = subprocess.run(["ruby", "-e", script], input=source, capture_output=True, check=True).stdout.decode()
        expected = ruby.split()
        try:
            got = read_puppetfile_source(source).commands
        except PuppetfileSyntaxError:
            got = ["INVALID"]
        assert got == expected, source
