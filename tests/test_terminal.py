"""Text printed for people: control characters from outside (file names, a
server's answer, plugin output) are shown escaped, never interpreted."""

from __future__ import annotations

from dropsonde.terminal import printable, printable_lines
from tests.support.puppet_tree import make_module
from tests.support.loopback import LoopbackServer, QuietHandler

HOSTILE = "a\x1b]0;owned\x07b\x1b[2Jc\u202eevil\u2028d\r\nEND"


def test_printable_escapes_every_control_and_invisible_format_character():
    assert printable(HOSTILE) == "a\\e]0;owned\\x07b\\e[2Jc\\u202eevil\\u2028d\\r\\nEND"
    assert printable("caf\u00e9 \u2603 apache::mod") == "caf\u00e9 \u2603 apache::mod"
    assert printable_lines("one\x1b\ntwo\x9b") == "one\\e\ntwo\\x9b"


def test_a_hostile_file_name_in_a_warning_is_escaped(tree):
    tree.forge(["puppetlabs-apache"])
    module = make_module(tree.environment("production") / "modules", "acme", "acme-acme",
                         manifests={"init.pp": "class acme { }"})
    (module / "manifests" / "x\x1b[2J\ndropsonde: error: forged.pp").write_bytes(b"class \0 {}")
    result = tree.run("preview")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stderr
    assert not any(line.startswith("dropsonde: error:") for line in result.stderr.splitlines())
    assert "x\\e[2J\\ndropsonde: error: forged.pp: binary file" in result.stderr


class HostileAnswer(QuietHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send(500, HOSTILE.encode() + b"\ndropsonde: error: forged", "text/plain; charset=utf-8")


def test_verbose_shows_a_servers_body_escaped_and_indented(tree):
    with LoopbackServer(HostileAnswer) as server:
        result = tree.run("-v", "submit", "--endpoint", "http://127.0.0.1", "--port", str(server.port))
    assert result.returncode == 1
    assert "\x1b" not in result.stderr and "\u202e" not in result.stderr
    assert "  | a\\e]0;owned\\x07b\\e[2Jc\\u202eevil\\u2028d\\r" in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("dropsonde: error:")]
    assert len(errors) == 1 and "forged" not in errors[0]


class HostileMessage(QuietHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send(200, b'{"message": "thanks\\u001b[2J\\ndropsonde: error: forged", "newer": false}', "application/json")


def test_a_servers_message_is_printed_escaped(tree):
    with LoopbackServer(HostileMessage) as server:
        result = tree.run("submit", "--endpoint", "http://127.0.0.1", "--port", str(server.port))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "thanks\\e[2J\\ndropsonde: error: forged\n"  # one line (review L3)
