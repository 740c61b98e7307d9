"""telemetry.yaml in GLI's format, and its precedence."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dropsonde.config import credential_name, merge_options, read_config_file
from dropsonde.errors import BadInput
from dropsonde.memory_budget import MiB, memory_budget
from tests.support.puppet_tree import write
from tests.support.time_limits import cpu_limit
from tests.support.fuzzing import FUZZ, read_fuzzed_file, source_bytes


def test_symbol_and_plain_keys_lists_and_commands(tmp_path):
    path = write(
        tmp_path / "telemetry.yaml",
        """---
:update: false
ttl: 3
:disable: puppetfiles, profiles
:enable:
  - modules
:seed: pepper
:v: true
:version: false
commands:
  :preview:
    :format: json
  :dev:
    :commands:
      :example:
        :size: 5
""",
    )
    settings = read_config_file(path)
    assert settings["update"] is False and settings["ttl"] == 3 and settings["verbose"] is True
    assert settings["disable"] == ["puppetfiles", "profiles"] and settings["enable"] == ["modules"]
    assert settings["commands"] == {"preview": {"format": "json"}, "dev example": {"size": 5}}


def test_command_line_beats_file_beats_defaults(tmp_path):
    path = write(tmp_path / "telemetry.yaml", ":ttl: 3\n:seed: fromfile\n:commands:\n  :preview:\n    :format: json\n")
    options = merge_options({"ttl": 9, "seed": None}, read_config_file(path), path)
    assert options.ttl == 9 and options.seed == "fromfile" and options.update is True
    assert options.command_option("preview", "format", None, "human") == "json"
    assert options.command_option("preview", "format", "human", "human") == "human"
    assert options.command_option("list", "format", None, "human") == "human"


def test_missing_and_empty_files_are_empty_configs(tmp_path):
    assert read_config_file(tmp_path / "absent.yaml") == {}
    assert read_config_file(write(tmp_path / "empty.yaml", "")) == {}


@pytest.mark.parametrize(
    "content, needle",
    [
        (":ttl: seven\n", "key 'ttl'"),
        (":ttl: -1\n", "key 'ttl'"),
        (":update: maybe\n", "key 'update'"),
        (":colour: blue\n", "key 'colour': unknown setting"),
        (":disable: [1, 2]\n", "key 'disable'"),
        ("commands:\n  :preview:\n    :format: xml\n", "key 'commands.preview.format'"),
        ("commands:\n  :frobnicate: {}\n", "key 'commands.frobnicate': unknown command"),
        ("commands:\n  :preview:\n    :colour: x\n", "key 'commands.preview.colour': unknown option"),
        ("- just\n- a list\n", "expected a mapping"),
        (":ttl: [unclosed\n", "telemetry.yaml:"),
        ("a: b\n  c: d\n", "telemetry.yaml:"),
    ],
)
def test_bad_files_name_file_and_key(tmp_path, content, needle):
    path = write(tmp_path / "telemetry.yaml", content)
    with pytest.raises(BadInput) as error:
        read_config_file(path)
    assert str(path) in str(error.value)
    assert needle in str(error.value)


YAML_VOCABULARY = [
    "? [[a]]\n: 1\n", "? {a: 1}\n", "? [", 
    "---\n", ":update: ", "update: ", "verbose: ", "true", "false", "ttl: ", "7", "disable: ", "a, b", "- x\n",
    "commands:\n", "  preview:\n", "    :format: ", "json", "dev:\n", "  commands:\n", "&a ", "*a", "!!python/object ",
    "!!binary ", "{", "}", "[", "]", ": ", "\n", "  ", "\t", "#", "'", '"', "? ", "|\n", ">\n", "%YAML 1.2\n", "0x",
]
# a billion laughs: each level refers to the one before it ten times
BILLION_LAUGHS = "disable:\n  - &a0 [x]\n" + "".join(
    f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 30)
)


LONG_KEY = "k" * 10_000  # YAML allows it as an explicit key ("? key"); a plain key stops at 1024


@FUZZ
@given(source_bytes(YAML_VOCABULARY, run_size=3_000) | st.just(BILLION_LAUGHS.encode()))
@example(f"? :{LONG_KEY}\n: 1\n".encode())  # once found at random: the unknown key was printed in full
@example(f"commands:\n  :preview:\n    ? :{LONG_KEY}\n    : 1\n".encode())
@example(b"? [[a]]\n: 1\n")  # the outside review: a key that is a list (unhashable) was a TypeError
@example(b"commands:\n  ? {a: 1}\n  : 1\n")
def test_fuzzed_telemetry_yaml_is_read_or_named_in_a_clear_error(tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / "telemetry.yaml"
    settings = read_fuzzed_file(path, data, lambda: read_config_file(path), longest=len(str(path)) + 400)
    assert settings is None or isinstance(settings, dict)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("9" * 5000 + "\n", "YAML value not accepted"),
        ("ttl: 0x" + "f" * 5000 + "\n", "key 'ttl': expected a whole number"),
        ("[" * 1000 + "\n", "YAML nested too deeply"),
        (BILLION_LAUGHS, r"an alias \(\*a0\) is not accepted"),
        ("? [[a]]\n: 1\n", "YAML value not accepted"),  # the outside review: 12 bytes, internal error
        ("? {a: [b]}\n: 1\n", "YAML syntax error: found unhashable key"),
    ],
)
def test_hostile_telemetry_yaml_is_a_short_clear_error(tmp_path, text, needle):
    path = write(tmp_path / "telemetry.yaml", text)
    with cpu_limit(2.0), pytest.raises(BadInput, match=needle) as error:
        read_config_file(path)
    assert len(str(error.value)) < len(str(path)) + 200


@pytest.mark.parametrize(
    "content, shown",
    [
        (f"? :{LONG_KEY}\n: 1\n", "key '" + "k" * 60 + "…': unknown setting"),
        (f"commands:\n  ? :{LONG_KEY}\n  : 1\n", "key 'commands." + "k" * 51 + "…': unknown command"),
        (f"commands:\n  :preview:\n    ? :{LONG_KEY}\n    : 1\n", "key '" + "commands.preview." + "k" * 43 + "…': unknown option"),
        ('"' + "\\e" * 100 + '": 1\n', "key '" + "\\e" * 30 + "…': unknown setting"),  # YAML's escape for ESC
    ],
)
def test_a_long_key_is_shown_cut_short_and_escaped(tmp_path, content, shown):
    path = write(tmp_path / "telemetry.yaml", content)
    with pytest.raises(BadInput) as error:
        read_config_file(path)
    assert shown in str(error.value) and len(str(error.value)) < len(str(path)) + 300



def test_the_services_credential_stands_for_telemetry_yaml(tmp_path):
    """As the systemd service, telemetry.yaml arrives as a credential (systemd read it as
    root: the puppetlabs-dropsonde module writes it root:root 0660, unreadable to puppet).
    The copy is what counts; an empty document (the unit's SetCredential= fallback) is an absent file."""
    assert credential_name(Path("/etc/puppetlabs/telemetry.yaml")) == "etc-puppetlabs-telemetry.yaml"
    assert credential_name(Path("/etc/telemetry.yaml")) == "etc-telemetry.yaml"
    assert credential_name(Path("/srv/my-puppet/telemetry.yaml")) == "srv-my\\x2dpuppet-telemetry.yaml"
    unreadable = tmp_path / "etc" / "telemetry.yaml"
    write(unreadable, ":seed: on disk\n")
    credentials = tmp_path / "credentials"
    copy = write(credentials / credential_name(unreadable), "---\n:seed: banana pancakes\n:disable:\n- modules\n")
    as_service = {"CREDENTIALS_DIRECTORY": str(credentials)}
    assert read_config_file(unreadable, as_service) == {"seed": "banana pancakes", "disable": ["modules"]}
    assert read_config_file(unreadable, {}) == {"seed": "on disk"}
    copy.write_text("---")
    assert read_config_file(unreadable, as_service) == {}
    copy.write_text(":sneed: typo\n")
    with pytest.raises(BadInput, match="telemetry.yaml: key 'sneed': unknown setting"):
        read_config_file(unreadable, as_service)


# The outside review (F8): aliases are references, so ruamel reads a small file that
# names one large string thousands of times within the budgets; what came after the
# parse (str() of a tuple key, re-splitting each alias of a `disable` list) then built
# it thousands of times outside them (18 GB asked, "internal error: MemoryError").
# Scaled down: 2,000 aliases of 100 KB, 200 MB once expanded.
ALIAS_FLOODS = [
    ("? [&s " + "x" * 100_000 + ", " + "*s, " * 2_000 + "*s]\n: 1\n", ":1: "),
    ("disable: [&s '" + "a," * 50_000 + "', " + "*s, " * 2_000 + "*s]\n", ":1: "),
    ("commands:\n  ? [&s " + "x" * 100_000 + ", " + "*s, " * 2_000 + "*s]\n  : 1\n", ":2: "),
    (":seed: &s banana\n:siteid: *s\n", ":2: "),
]


@pytest.mark.parametrize("text, line", ALIAS_FLOODS)
def test_an_alias_is_refused_before_anything_expands_it(tmp_path, text, line):
    """GLI's telemetry.yaml never holds an alias, and only refusing them bounds what
    the file expands to by its own size: everything after the parse is then linear."""
    path = write(tmp_path / "telemetry.yaml", text)
    with cpu_limit(2.0), memory_budget(64 * MiB), pytest.raises(BadInput) as error:
        read_config_file(path)
    assert f"{path}{line}" in str(error.value) and "alias" in str(error.value)
    assert len(str(error.value)) < len(str(path)) + 200


@pytest.mark.parametrize(
    "text, needle",
    [
        ("? [a, b]\n: 1\n", "key ('a', 'b'): expected a name"),
        ("? 7\n: 1\n", "key 7: expected a name"),
        ("commands:\n  ? [preview]\n  : {}\n", "key ('preview',): expected a name"),
        ("commands:\n  :preview:\n    ? [format]\n    : json\n", "key ('format',): expected a name"),
    ],
)
def test_a_key_that_is_not_a_name_is_refused(tmp_path, text, needle):
    path = write(tmp_path / "telemetry.yaml", text)
    with pytest.raises(BadInput) as error:
        read_config_file(path)
    assert str(path) in str(error.value) and needle in str(error.value)
