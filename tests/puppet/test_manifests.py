"""The manifest reader: definitions, nesting and declarations, on tricky syntax,
and agreement with Puppet's own ClassInformationService on real modules."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given

from dropsonde.cpu_budget import MANIFEST_CPU_SECONDS
from dropsonde.puppet.manifests import ManifestInfo, read_manifest_data, read_manifest_text
from tests.support.time_limits import cpu_limit
from tests.support.fuzzing import EXAMPLE_CPU_LIMIT, FUZZ, source_bytes, source_text

DEBIAN_MODULES = Path("/usr/share/puppet/modules")
HERE = Path(__file__).parent


def classes(text: str):
    return read_manifest_text(text).classes


def declares(text: str, name: str):
    for definition in read_manifest_text(text).definitions:
        if definition.name == name:
            return list(definition.declares)
    raise AssertionError(f"{name} not defined")


def test_nested_classes_are_qualified_by_the_outer_class():
    text = "class outer { class inner { } define thing() { } }\nclass other::one inherits outer { }"
    info = read_manifest_text(text)
    assert [(d.kind, d.name) for d in info.definitions] == [
        ("class", "outer"),
        ("class", "outer::inner"),
        ("define", "outer::thing"),
        ("class", "other::one"),
    ]


def test_parameters_with_braces_and_defaults_do_not_confuse_the_body():
    text = "class a (Hash $h = { 'k' => { 'class' => 1 } }, $b = [1, 2]) { include x }\nclass b { }"
    assert classes(text) == ["a", "b"]
    assert declares(text, "a") == ["x"]


def test_comments_strings_and_heredocs_hide_keywords():
    text = """
    # class commented_out { }
    /* class block_comment { } */
    class real {
      $s = 'class in_single { }'
      $d = "class in_double ${'{'} }"
      $h = @("END"/L)
        class in_heredoc { }
        include in_heredoc_too
        | END
      include after_heredoc
    }
    """
    assert classes(text) == ["real"]
    assert declares(text, "real") == ["after_heredoc"]


def test_two_heredocs_on_one_line_and_code_after_the_tag():
    text = "class a { $x = [@(ONE), @(TWO)]\nclass fake_one {}\nONE\nclass fake_two {}\nTWO\ninclude b }\nclass c {}"
    assert classes(text) == ["a", "c"]
    assert declares(text, "a") == ["b"]


def test_regex_versus_division():
    text = "class a { if $x =~ /}{class nope {/ { include b }\n $y = 4 / 2\n $z = 8 / 4 }\nclass c { }"
    assert classes(text) == ["a", "c"]
    assert declares(text, "a") == ["b"]


def test_interpolation_with_nested_strings_and_braces():
    text = 'class a { $m = "x${ {"k" => "}"}["k"] }y" include b }'
    assert classes(text) == ["a"]
    assert declares(text, "a") == ["b"]


def test_escaped_quotes_and_backslashes():
    text = r"""class a { $p = 'C:\\' $q = 'it\'s' $r = "say \"hi\" \\" include b } class c { }"""
    assert classes(text) == ["a", "c"]
    assert declares(text, "a") == ["b"]


def test_every_declaration_form_and_the_non_declarations():
    text = """
    class profile::web {
      include apache, '::apache::mod::ssl'
      include(['concat', "stdlib"])
      require ntp
      contain firewall::pre
      class { 'mysql::server': root_password => 'x' }
      class { ['postgresql::server', 'postgresql::client']: }
      include $dynamic
      include "interpolated::${name}"
      file { '/x': require => Class['not_declared'] }
      Class['also_not'] -> Class['neither']
      $list.include('method_call_not_declared')
    }
    """
    assert declares(text, "profile::web") == [
        "apache",
        "apache::mod::ssl",
        "concat",
        "stdlib",
        "ntp",
        "firewall::pre",
        "mysql::server",
        "postgresql::server",
        "postgresql::client",
    ]


def test_class_used_as_an_attribute_name_is_not_a_definition():
    text = "class a { notify { 'x': class => 'y' } $h = { class => 1 } }"
    assert classes(text) == ["a"]


def test_unterminated_input_returns_what_was_found(tmp_path):
    assert classes("class a { } class b { $s = 'never closed") == ["a", "b"]
    assert classes("class a { $h = @(END)\n never ends") == ["a"]


def test_binary_and_non_utf8_files(tmp_path):
    binary = tmp_path / "binary.pp"
    binary.write_bytes(b"class a {}\0\x01\x02")
    info = read_manifest_data(binary.read_bytes())
    assert info.classes == [] and "binary" in info.error
    latin1 = tmp_path / "latin1.pp"
    latin1.write_bytes("class caf\u00e9_ok { }\nclass b { $s = 'caf\u00e9' }".encode("latin-1"))
    info = read_manifest_data(latin1.read_bytes())
    assert "b" in info.classes and info.error == "not valid UTF-8"


def test_agrees_with_puppets_class_information_service_on_debian_modules():
    """Every manifest of Debian's puppet-module-* packages: the same classes as Puppet finds."""
    if not DEBIAN_MODULES.is_dir() or shutil.which("ruby") is None:
        pytest.fail("needs Debian's puppet and puppet-module-* packages: run tests/run (it installs them)")
    manifests = sorted(
        os.path.join(root, name)
        for root, _dirs, files in os.walk(DEBIAN_MODULES, followlinks=True)  # the modules are symlinks
        for name in files
        if name.endswith(".pp")
    )
    assert len(manifests) > 1500
    truth_run = subprocess.run(
        ["ruby", str(HERE / "class_information.rb")],
        input="\n".join(manifests),
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    truth = json.loads(truth_run.stdout)
    assert len(truth) == len(manifests)
    mismatches = {}
    for path, expected in truth.items():
        assert expected is not None, f"Puppet could not parse {path}"
        with open(path, "rb") as manifest:
            got = read_manifest_data(manifest.read()).classes
        if sorted(got) != sorted(expected):
            mismatches[path] = {"puppet": expected, "dropsonde": got}
    total = sum(len(v) for v in truth.values())
    assert total > 1000
    assert mismatches == {}


# --- Bounded cost on hostile input: linear in the size, never a hang or a traceback ---

PROFILE = "class profile::x {\n include apache\n}"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(PROFILE + "\n" * 30, id="30-trailing-newlines"),
        pytest.param(PROFILE + "\n" * 10_000, id="10000-trailing-blank-lines"),
        pytest.param(PROFILE + " \t\r\n" * 10_000, id="10000-trailing-blank-lines-with-spaces"),
        pytest.param(PROFILE + "\n/*" + "x" * 200_000, id="200KB-unterminated-comment"),
        pytest.param(PROFILE + "\n$s = '" + "x" * 100_000, id="100KB-unterminated-single-quoted"),
        pytest.param(PROFILE + '\n$s = "' + "x" * 100_000, id="100KB-unterminated-double-quoted"),
        pytest.param(PROFILE + "\n" + "{" * 20_000, id="20000-open-braces"),
        pytest.param(PROFILE + "\n$h = @(END)\n" + "line\n" * 20_000, id="unterminated-heredoc"),
        pytest.param(PROFILE + "\n# comment # with # hashes" * 2_000, id="trailing-comment-lines"),
        pytest.param(PROFILE + "\n" + "/* " * 50_000, id="many-unterminated-comments"),
        pytest.param(PROFILE + "\n$x = " + "/\\" * 50_000, id="many-unterminated-regexes"),
        pytest.param(PROFILE + "\n$x = " + '"${\\/}' * 10_000, id="regexes-in-interpolations"),
        pytest.param(PROFILE + "\n" + "'\\" * 50_000, id="single-quotes-ending-in-backslash"),
        pytest.param(PROFILE + "\n" + "@(" * 50_000, id="many-unterminated-heredoc-tags"),
        pytest.param(PROFILE + "\n" + "@(" + " " * 50_000, id="heredoc-tag-of-blanks"),
        pytest.param(PROFILE + "\n" + "@(A) " * 20_000 + "\nA\n", id="many-heredocs-on-one-line"),
        pytest.param(PROFILE + "\n" + '"${' * 5_000, id="deeply-nested-interpolations"),
        # the reviewer's: a heredoc opened in an interpolation closed on the same line rescanned the rest
        pytest.param(PROFILE + "\n" + '$a = "${@(Z)}"\n' * 12_000, id="heredoc-in-interpolation"),
        pytest.param(PROFILE + "\n" + "".join(f'$a = "${{@(Z{i})}}"\n' for i in range(12_000)),
                     id="distinct-heredocs-in-interpolations"),
        pytest.param(PROFILE + "\n" + "".join(f'$a = "${{@(Z{i})}}"\n' for i in range(6_000))
                     + "".join(f"Z{i}\n" for i in reversed(range(6_000))), id="nested-heredoc-ends-reversed"),
        pytest.param("{" * 20_000 + "class a { include b }" * 200, id="definitions-deep-in-braces"),
        pytest.param("class a { " * 10, id="10-nested-classes"),
        pytest.param("class a {" + "include b%d " * 2_000 % tuple(range(2_000)) + "}", id="2000-includes"),
        pytest.param("class a {}\n" * 2_000, id="2000-classes"),
    ],
)
def test_hostile_manifests_are_read_in_bounded_time(text):
    with cpu_limit(1.0):
        info = read_manifest_text(text)
    assert info.definitions[0].name in ("profile::x", "a")


@pytest.mark.parametrize(
    "text",
    [
        # the reviewer's: 400,000 classes nested in one with a 1,000-character name took
        # 1.6 GB and a 423 MB cache; a few such files made every later run re-parse all
        pytest.param("class p" + "x" * 1000 + " {\n" + "class b{}\n" * 400_000 + "}\n", id="400000-nested-classes"),
        pytest.param("{" * 20_000 + "class a { include b }" * 20_000, id="20000-definitions-deep-in-braces"),
        pytest.param("class a { " * 20_000, id="20000-nested-classes"),
        pytest.param("class a {" + "include b%d " * 20_000 % tuple(range(20_000)) + "}", id="20000-includes"),
        pytest.param("class a {}\n" * 20_000, id="20000-classes"),
    ],
)
def test_manifests_over_the_output_budget_are_set_aside(text):
    """What a manifest defines and declares is bounded (MANIFEST_OUTPUT_BYTES, 64 KiB;
    the largest real one is 5.7 KB): past it the file is set aside, its classes not public."""
    with cpu_limit(MANIFEST_CPU_SECONDS + 1.0):
        info = read_manifest_text(text)
    assert info.definitions == []
    assert info.error.startswith("set aside:")
    assert "MANIFEST_OUTPUT_BYTES" in info.error or "MANIFEST_CPU_SECONDS" in info.error


def test_a_manifest_over_its_cpu_budget_is_set_aside(monkeypatch):
    """Whatever makes reading slow, the budget stops it: here a budget of a few ms."""
    import dropsonde.puppet.manifests as manifests

    monkeypatch.setattr(manifests, "MANIFEST_CPU_SECONDS", 0.005)
    with cpu_limit(2.0):
        info = read_manifest_text("class a { include b }\n" * 50_000)
    assert info.definitions == []
    assert info.error == "set aside: reading it took more than 0.005 s of CPU time (MANIFEST_CPU_SECONDS)"


PUPPET_VOCABULARY = [
    "class ", "define ", "include ", "require ", "contain ", " inherits ", "node ", "class { '", "':", "profile::x",
    "apache", "::", "Class['a']", "{", "}", "(", ")", "[", "]", ",", ";", ":", "=>", "+>", "->", "~>", "|>", "=~",
    "$x", "$::y", " = ", "'", "\\'", '"', '\\"', "${", "$", "@(END)", '@("END"/L)', "@(END:json/t)", "@(",
    "\nEND\n", "| END", "|- END", "/", "/x/", "\\/", "/*", "*/", "#", "# comment\n", "\n", " ", "1.5e3", "0x1F",
    # the shapes that found the last hangs: a heredoc in an interpolation, classes nested deep
    '"${@(Z)}"\n', '$a = "${@(END)} ${@(Z)}"', "Z\n", "class p::q { ", "class b{}\n", "class " + "x" * 300 + " { ",
]


@FUZZ
@given(source_text(PUPPET_VOCABULARY))
def test_fuzzed_manifest_text_is_read_in_bounded_time(text):
    """Finishes within its budget, or sets the manifest aside (and then returns nothing)."""
    with cpu_limit(EXAMPLE_CPU_LIMIT):
        info = read_manifest_text(text)
    assert isinstance(info, ManifestInfo)
    assert all(d.kind in ("class", "define") and d.name and d.line >= 1 for d in info.definitions)
    if info.error is not None:
        assert info.error.startswith("set aside:") and info.definitions == []


@FUZZ
@given(source_bytes(PUPPET_VOCABULARY))
def test_fuzzed_manifest_bytes_are_read_in_bounded_time(data):
    with cpu_limit(EXAMPLE_CPU_LIMIT):
        info = read_manifest_data(data)
    assert isinstance(info, ManifestInfo)
    if b"\0" in data:
        assert info.definitions == [] and "binary" in info.error


def test_nested_names_cannot_amplify_a_small_file_into_a_large_result():
    """Nested classes are named after every class around them: 1 KB of source could make
    64 KiB of names, and 10,000 such files 640 MB of memory and cache. A manifest's result
    is at most twice its size (real ones: at most 0.84 times)."""
    text = "class p" + "x" * 900 + " {\n" + "class b{}\n" * 20 + "}\n"
    with cpu_limit(1.0):
        info = read_manifest_text(text)
    assert info.definitions == [] and "at most 2 times the file's size" in info.error
    fine = "class p" + "x" * 90 + " {\n" + "class b{}\n" + "}\n"
    assert len(read_manifest_text(fine).definitions) == 2
