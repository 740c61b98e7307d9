"""Puppet Server's conf.d: merged HOCON, the dropsonde stanza, jruby-puppet directories."""

from __future__ import annotations

import pytest
from hypothesis import given

from dropsonde.errors import DropsondeError
from dropsonde.puppet.server_config import DEFAULT_INTERVAL, read_server_config
from tests.support.puppet_tree import write
from tests.support.fuzzing import FUZZ, read_fuzzed_file, source_bytes


def test_files_are_merged_and_opt_in_is_explicit(tmp_path):
    write(tmp_path / "puppetserver.conf", """
jruby-puppet: {
    ruby-load-path: [/usr/lib/ruby/vendor_ruby]
    server-conf-dir: /srv/puppet/conf
    master-code-dir: /srv/puppet/legacy-code
    server-code-dir: /srv/puppet/code
}
""")
    write(tmp_path / "dropsonde.conf", "dropsonde { enabled: true }\n")
    write(tmp_path / "zz-interval.conf", "dropsonde.interval: 3600\n# comments are fine\n")
    write(tmp_path / "notes.txt", "not { hocon")
    config = read_server_config(tmp_path, "debian")
    assert config.files == 3
    assert config.enabled is True and config.interval == 3600
    assert config.directories["confdir"] == "/srv/puppet/conf"
    assert config.directories["codedir"] == "/srv/puppet/code"  # server-* wins over master-*
    assert config.directories["vardir"] == "/var/lib/puppetserver"  # the layout's default


def test_legacy_master_keys_and_absent_stanza(tmp_path):
    write(tmp_path / "puppetserver.conf", "jruby-puppet { master-var-dir: /srv/var }\n")
    config = read_server_config(tmp_path, "aio")
    assert config.enabled is False and config.interval == DEFAULT_INTERVAL
    assert config.directories["vardir"] == "/srv/var"
    assert config.directories["confdir"] == "/etc/puppetlabs/puppet"


def test_missing_confd_means_not_enabled(tmp_path):
    config = read_server_config(tmp_path / "absent", "aio")
    assert config.enabled is False and config.files == 0


@pytest.mark.parametrize(
    "text, needle",
    [
        ("dropsonde { enabled: true\n", "broken.conf: not valid HOCON"),
        ("dropsonde { enabled: sometimes }\n", "dropsonde.enabled"),
        ("dropsonde { interval: -5 }\n", "dropsonde.interval"),
        ("dropsonde { interval: soon }\n", "dropsonde.interval"),
        ("jruby-puppet { server-code-dir: [1, {a: 2}] }\n", "jruby-puppet.server-code-dir: expected a directory"),
        ('include url("http://127.0.0.1:9/x.conf")\n', "broken.conf: includes a URL"),
        ('a { include required(url("http://127.0.0.1:9/x.conf")) }\n', "broken.conf: includes a URL"),
    ],
)
def test_bad_configuration_names_the_file_or_key(tmp_path, text, needle):
    write(tmp_path / "broken.conf", text)
    with pytest.raises(DropsondeError, match=needle):
        read_server_config(tmp_path, "aio")


HOCON_VOCABULARY = [
    "dropsonde", "{", "}", " enabled: ", "true", "false", "interval", ": ", "=", "3600", "-5", "jruby-puppet",
    "server-code-dir", "master-var-dir", ".", "\n", "#", "//", '"', '"""', "${", "${?x}", "[", "]", ",", "+=",
    "include ", "a.b.c", "\\", "0x10", "1e400",
]


@FUZZ
@given(source_bytes(HOCON_VOCABULARY, run_size=5_000))
def test_fuzzed_confd_is_read_or_named_in_a_clear_error(tmp_path_factory, data):
    confd = tmp_path_factory.getbasetemp() / "fuzzed_confd"
    config = read_fuzzed_file(confd / "fuzzed.conf", data, lambda: read_server_config(confd, "debian"), names=[str(confd)])
    if config is None:
        return
    assert isinstance(config.enabled, bool) and config.interval > 0
    assert all(isinstance(value, str) for value in config.directories.values())
