"""puppet.conf and the packaging layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given

from dropsonde.errors import BadInput
from dropsonde.puppet.puppet_conf import detect_layout, load_puppet_settings, parse_puppet_conf
from tests.support.puppet_tree import write
from tests.support.time_limits import cpu_limit
from tests.support.fuzzing import FUZZ, ini_text, read_fuzzed_file, source_bytes


def test_layout_defaults():
    debian = load_puppet_settings({"confdir": "/nonexistent/puppet"}, environ={}, layout="debian")
    assert debian["codedir"] == "/etc/puppet/code"
    assert debian.basemodulepath == [Path("/etc/puppet/code/modules"), Path("/usr/share/puppet/modules")]
    assert debian["localcacert"] == "/var/lib/puppet/ssl/certs/ca.pem"
    aio = load_puppet_settings({}, environ={}, layout="aio")
    assert aio.environmentpath == [Path("/etc/puppetlabs/code/environments")]
    assert aio["hostcert"] == f"/etc/puppetlabs/puppet/ssl/certs/{aio['certname']}.pem"
    assert aio["cacert"] == "/etc/puppetlabs/puppetserver/ca/ca_crt.pem"
    user = load_puppet_settings({}, environ={}, layout="user")
    assert user["confdir"] == str(Path.home() / ".puppetlabs/etc/puppet")
    assert user.vardir == Path.home() / ".puppetlabs/opt/puppet/cache"


@pytest.mark.parametrize("directories, layout", [
    ([], "aio"),                                      # nothing installed yet: AIO, Puppet's own default
    (["etc/puppet"], "debian"),
    (["etc/puppetlabs"], "aio"),
    (["opt/puppetlabs/puppet"], "aio"),
    (["etc/puppet", "etc/puppetlabs"], "aio"),        # AIO installed over Debian's: AIO wins
    (["etc/puppet", "opt/puppetlabs/puppet"], "aio"),
    (["etc/puppet", "opt/puppetlabs"], "debian"),     # /opt/puppetlabs alone is not an AIO puppet
])
def test_detect_layout_for_root(tmp_path, directories, layout):
    for directory in directories:
        (tmp_path / directory).mkdir(parents=True)
    assert detect_layout(is_root=True, root=tmp_path) == layout


def test_detect_layout_for_non_root(tmp_path):
    (tmp_path / "etc/puppet").mkdir(parents=True)
    assert detect_layout(is_root=False, root=tmp_path) == "user"


def test_sections_interpolation_and_multiple_environment_paths(tmp_path):
    confdir = tmp_path / "puppet"
    write(
        confdir / "puppet.conf",
        """
# comment
[main]
codedir = /srv/code
vardir = /srv/var
certname = MAIN.example.test
environmentpath = $codedir/environments:/srv/more-envs
ssldir = $vardir/ssl {owner = service, mode = 0750}

[user]
certname = user.example.test

[server]
basemodulepath = ${codedir}/modules:/srv/shared
""",
    )
    settings = load_puppet_settings({"confdir": str(confdir)}, environ={}, layout="aio")
    assert settings["certname"] == "user.example.test"  # [user] before [main]
    assert settings.environmentpath == [Path("/srv/code/environments"), Path("/srv/more-envs")]
    assert settings.basemodulepath == [Path("/srv/code/modules"), Path("/srv/shared")]
    assert settings["localcacert"] == "/srv/var/ssl/certs/ca.pem"
    assert settings.puppet_conf == confdir / "puppet.conf"


def test_server_section_wins_and_legacy_master_counts(tmp_path):
    confdir = tmp_path / "puppet"
    write(confdir / "puppet.conf", "[main]\ncertname = a\n[master]\ncertname = b\n[server]\ncertname = c\n")
    assert load_puppet_settings({"confdir": str(confdir)}, environ={}, layout="aio")["certname"] == "c"
    write(confdir / "puppet.conf", "[main]\ncertname = a\n[master]\ncertname = b\n")
    assert load_puppet_settings({"confdir": str(confdir)}, environ={}, layout="aio")["certname"] == "b"


def test_precedence_command_line_then_environment_then_puppet_conf(tmp_path):
    confdir = tmp_path / "puppet"
    write(confdir / "puppet.conf", "[main]\ncodedir = /from/conf\nvardir = /from/conf/var\n")
    environ = {"PUPPET_CONFDIR": str(confdir), "PUPPET_CODEDIR": "/from/env"}
    settings = load_puppet_settings({}, environ=environ, layout="aio")
    assert settings["codedir"] == "/from/env"
    assert settings["vardir"] == "/from/conf/var"
    settings = load_puppet_settings({"codedir": "/from/cli"}, environ=environ, layout="aio")
    assert settings["codedir"] == "/from/cli"
    assert settings.environmentpath == [Path("/from/cli/environments")]


def test_broken_line_names_file_and_line(tmp_path):
    conf = write(tmp_path / "puppet.conf", "[main]\ncertname = ok\nthis is not a setting\n")
    with pytest.raises(BadInput, match=r"puppet.conf:3: cannot parse line"):
        parse_puppet_conf(conf)


def test_self_reference_is_an_error(tmp_path):
    confdir = tmp_path / "puppet"
    write(confdir / "puppet.conf", "[main]\nvardir = $ssldir/x\nssldir = $vardir/ssl\n")
    with pytest.raises(BadInput, match="refers to itself"):
        load_puppet_settings({"confdir": str(confdir)}, environ={}, layout="aio")


PUPPET_CONF_VOCABULARY = [
    "[main]", "[server]", "[user]", "[agent]", "[", "]", "\n", "#", "certname", "codedir", "vardir", "ssldir",
    "environmentpath", "basemodulepath", " = ", "=", "$codedir", "${vardir}", "$certname", "$environment", "/srv/",
    ":", "~", "~root/", "~\x00", " {owner = service, mode = 0750}", "{", "}", "\x00",
    # self-referencing and self-doubling settings
    "$s1", "$s2$s2$s2$s2", "${s1}${s1}", "$vardir$vardir",
]


PUPPET_CONF_LINES = ini_text(
    ["main", "server", "user", "agent", "m\x00ain"],
    ["certname", "codedir", "vardir", "ssldir", "environmentpath", "basemodulepath", "confdir", "a" * 300, "s1", "s2"],
    PUPPET_CONF_VOCABULARY,
)


@FUZZ
@given(source_bytes(PUPPET_CONF_VOCABULARY) | PUPPET_CONF_LINES.map(str.encode))
def test_fuzzed_puppet_conf_is_read_or_named_in_a_clear_error(tmp_path_factory, data):
    confdir = tmp_path_factory.getbasetemp() / "fuzzed_puppet"
    settings = read_fuzzed_file(
        confdir / "puppet.conf",
        data,
        lambda: load_puppet_settings({"confdir": str(confdir)}, environ={}, layout="debian"),
        names=["puppet.conf", "puppet settings"],
    )
    if settings is None:
        return
    paths = settings.environmentpath + settings.basemodulepath + [settings.codedir, settings.vardir]
    assert all("\0" not in str(path) for path in paths)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[main]\ncodedir = ~\x00x\n", "puppet.conf:2: contains a NUL"),
        ("[main]\n" + "".join(f"s{i} = $s{i + 1}\n" for i in range(3000)), "levels of \\$setting"),
        # the reviewer's: each line doubles the one after it (577 bytes: a MemoryError)
        ("[main]\n" + "".join(f"s{i} = $s{i + 1}$s{i + 1}\n" for i in range(33)) + "s33 = x\n",
         "longer than 65536 characters once its \\$settings are interpolated"),
        ("[main]\na = " + "$b" * 100_000 + "\nb = " + "x" * 60_000 + "\n", "\\$a: longer than 65536"),
        # the outside review: each setting within its length, 5.3 GB in all
        ("[main]\nb = " + "x" * 32_000 + "\n" + "".join(f"s{i}=$b$b\n" for i in range(84_000)),
         "more than 4 MiB in all once their \\$settings are interpolated"),
    ],
)
def test_hostile_puppet_conf_is_a_clear_error(tmp_path, text, needle):
    write(tmp_path / "puppet.conf", text)
    with cpu_limit(2.0), pytest.raises(BadInput, match=needle):
        load_puppet_settings({"confdir": str(tmp_path)}, environ={}, layout="debian")


def test_path_settings_name_each_directory_once_and_at_most_64(tmp_path):
    """Review 2, F12: environmentpath naming one directory 25,000 times (1 MiB) had every
    environment listed and sorted once per entry: 9.5 s of CPU over 500 environments.
    Each directory counts once now, and more than 64 distinct is an error naming the file."""
    write(tmp_path / "puppet.conf", "[main]\nenvironmentpath = " + "/srv/envs:" * 6_000 + "\n")  # < 64 KiB
    with cpu_limit(2.0):
        settings = load_puppet_settings({"confdir": str(tmp_path)}, environ={}, layout="debian")
    assert settings.environmentpath == [Path("/srv/envs")]
    write(tmp_path / "puppet.conf", "[main]\nbasemodulepath = " + ":".join(f"/m{i}" for i in range(65)) + "\n")
    with cpu_limit(2.0), pytest.raises(BadInput, match=r"puppet\.conf: basemodulepath: more than 64 directories "
                                                       r"\(MAX_PATH_ENTRIES\)"):
        load_puppet_settings({"confdir": str(tmp_path)}, environ={}, layout="debian")


def test_a_long_line_of_blanks_is_read_in_bounded_time(tmp_path):
    conf = write(tmp_path / "puppet.conf", "[main]\ncertname = a" + " " * 100_000 + "b {mode = 0750}\n")
    with cpu_limit(1.0):
        assert parse_puppet_conf(conf)["main"]["certname"] == "a" + " " * 100_000 + "b"


def test_a_puppet_conf_over_its_cpu_budget_is_an_error_naming_it(tmp_path, monkeypatch):
    import dropsonde.puppet.puppet_conf as puppet_conf

    monkeypatch.setattr(puppet_conf, "CONFIG_CPU_SECONDS", 0.005)
    conf = write(tmp_path / "puppet.conf", "[main]\n" + "certname = a.example.test\n" * 40_000)
    with cpu_limit(2.0), pytest.raises(BadInput, match=r"puppet\.conf: not read: parsing it took more than "
                                                             r"0\.005 s of CPU time \(CONFIG_CPU_SECONDS\)"):
        parse_puppet_conf(conf)
