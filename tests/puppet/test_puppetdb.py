"""PuppetDB metrics against a real PuppetDB 7.12: ground truth computed from
what the test loads, Puppet 7 and Puppet 8 style nodes, TLS, failover, faults."""

from __future__ import annotations

import json
import ssl
import time
from collections import Counter

import pytest
from hypothesis import example, given

from dropsonde.errors import BadInput
from dropsonde.puppet.puppetdb import (
    CLASS_COUNTS,
    FACTER_OS_FAMILIES,
    PuppetDBClient,
    PuppetDBConfig,
    PuppetDBError,
    pql_string,
    read_puppetdb_conf,
)
from tests.support.puppet_tree import PuppetTree, forge_checksums, make_module, write
from tests.support.fuzzing import FUZZ, ini_text, read_fuzzed_file, source_bytes
from tests.support.fake_puppetdb import class_rows_server
from tests.support.loopback import DEEP_JSON, LoopbackServer, QuietHandler
from tests.support.puppetdb_server import facts_for, free_port, make_ca, make_signed

CANARY = "zzcanary"

# (certname, os.family or None, legacy osfamily or None, classes)
PUBLIC = ["Apache", "Apache::Mod::Ssl", "Ntp", "Ntp::Config"]
# Apache::Secret: in a file the site added to the public module (not in its checksums.json)
PRIVATE = ["Main", "Settings", "Profile::Web", "Role::Webserver", f"{CANARY.capitalize()}::Secret", "Apache::Secret"]


def node_plan():
    nodes = []
    layout = [
        ("RedHat", None, 7),            # Puppet 8: os.family only
        ("Debian", "Debian", 5),        # Puppet 7: both
        ("windows", None, 2),
        (None, "Suse", 3),              # very old agents: legacy osfamily only
        (f"{CANARY}OS", None, 2),       # not a Facter family: counted as "other"
        ('Odd"Fam\\ily', None, 1),      # quotes and backslashes from an agent
    ]
    index = 0
    for family, legacy, count in layout:
        for _ in range(count):
            classes = ["Main", "Settings", "Ntp", "Ntp::Config"]
            if index % 2 == 0:
                classes += ["Apache", "Profile::Web", "Role::Webserver"]
            if index % 3 == 0:
                classes += ["Apache::Mod::Ssl", f"{CANARY.capitalize()}::Secret", "Apache::Secret"]
            nodes.append((f"node{index:02d}.{CANARY}.example.test", family, legacy, classes))
            index += 1
    return nodes


@pytest.fixture(scope="module")
def loaded(puppetdb):
    nodes = node_plan()
    for certname, family, legacy, classes in nodes:
        puppetdb.replace_facts(certname, facts_for(family, legacy, {"secret_fact": f"{CANARY}value"}))
        puppetdb.replace_catalog(certname, classes)
    puppetdb.replace_facts(f"gone.{CANARY}.example.test", facts_for("RedHat"))
    puppetdb.replace_catalog(f"gone.{CANARY}.example.test", ["Apache", "Apache::Unused"])
    puppetdb.wait_for_queue()
    puppetdb.deactivate(f"gone.{CANARY}.example.test", wait=30)
    puppetdb.wait_for_queue()
    assert len(puppetdb.query("nodes[certname] { }")) == len(nodes)
    return nodes


def ground_truth(nodes):
    classes = Counter(c for _, _, _, cs in nodes for c in cs)
    platforms = Counter()
    for _, family, legacy, cs in nodes:
        platform = family if family is not None else legacy
        platform = platform if platform in FACTER_OS_FAMILIES else "other"
        for c in cs:
            platforms[(c, platform)] += 1
    return classes, platforms


def site_tree(tmp_path, puppetdb_conf: str, extra_conf: str = "") -> PuppetTree:
    tree = PuppetTree(tmp_path / "site")
    if extra_conf:
        write(tree.confdir / "puppet.conf", (tree.confdir / "puppet.conf").read_text() + extra_conf)
    # profile and role are Forge-listed here, as modules of those names are on the
    # Forge: their classes (declared on the nodes) must still never be reported.
    tree.forge(["puppetlabs-apache", "puppetlabs-ntp", "puppetlabs-unused", "acme-profile", "acme-role"])
    modules = tree.environment("production") / "modules"
    apache = make_module(modules, "apache", "puppetlabs-apache", "12.0.0", manifests={
        # a class outside the module's namespace: not reported even as published
        "init.pp": "class apache { }\nclass secretothernsdd { }", "mod/ssl.pp": "class apache::mod::ssl { }",
        "unused.pp": "class apache::unused { }", "vhost.pp": "define apache::vhost() { }",
    })
    tree.publish(apache)  # the release the Forge published...
    forge_checksums(apache)  # ...and a checksums.json the site regenerates over its own additions (no evidence)
    # The site's own code inside the public module: never reported, used or not.
    write(apache / "manifests" / "secret.pp", "class apache::secret { }\nclass apache::secret::unused { }")
    write(apache / "manifests" / "local.pp", "class apache::local { }")
    tree.publish(make_module(modules, "ntp", "puppetlabs-ntp", "10.0.0", manifests={
        "init.pp": "class ntp { }", "config.pp": "class ntp::config { }",
    }))
    tree.publish(make_module(modules, "unused", "puppetlabs-unused", "1.0.0", manifests={"init.pp": "class unused { }"}))
    make_module(modules, "profile", "acme-profile", manifests={"web.pp": "class profile::web { include apache }"})
    make_module(modules, "role", "acme-role", manifests={"webserver.pp": "class role::webserver { include profile::web }"})
    make_module(modules, "zzcanary", None, manifests={"init.pp": "class zzcanary::secret { }"})
    write(tree.confdir / "puppetdb.conf", puppetdb_conf)
    return tree


def test_report_matches_ground_truth(tmp_path, puppetdb, loaded):
    tree = site_tree(tmp_path, f"[main]\nserver_urls = {puppetdb.http_url}\n")
    result = tree.run("-v", "preview", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert f"PuppetDB settings from {tree.confdir / 'puppetdb.conf'}: {puppetdb.http_url}" in result.stderr
    assert f"PuppetDB {puppetdb.http_url} answered: {len(PUBLIC) + len(PRIVATE)} classes declared" in result.stderr
    assert CANARY not in result.stdout.lower() and "Odd" not in result.stdout
    # the modules metric took site.public_classes, then judged each module's manifests again
    assert result.stderr.count("classes in manifests/local.pp are private") == 1, result.stderr
    values = {c: s["value"] for c, s in result.json()["self-service-analytics"]["snapshots"].items()}
    classes, platforms = ground_truth(loaded)
    # PuppetDB titles classes as Puppet does (Apache::Mod::Ssl); they are sent in canonical form
    assert values["classes"] == [{"name": c.lower(), "count": classes[c]} for c in sorted(PUBLIC)]
    assert values["unused_classes"] == [{"name": "apache::unused"}, {"name": "unused"}]
    assert values["unused_modules"] == [{"name": "unused", "slug": "puppetlabs-unused", "version": "1.0.0"}]
    expected_platforms = sorted(
        ({"name": c.lower(), "platform": p, "count": n} for (c, p), n in platforms.items() if c in PUBLIC),
        key=lambda row: (row["name"], row["platform"]),
    )
    assert values["class_platforms"] == expected_platforms
    assert {row["platform"] for row in values["class_platforms"]} == {"Debian", "RedHat", "Suse", "other", "windows"}
    pairs = [(row["name"], row["platform"]) for row in values["class_platforms"]]
    assert len(pairs) == len(set(pairs))  # no duplicated platform rows


def test_human_preview_and_inventory_say_which_puppetdb_answered(tmp_path, puppetdb, loaded):
    dead = f"http://127.0.0.1:{free_port()}"
    tree = site_tree(tmp_path, f"[main]\nserver_urls = {dead}, {puppetdb.http_url}\n")
    result = tree.run("preview", "--format", "json")
    assert result.returncode == 0
    assert result.json()["self-service-analytics"]["snapshots"]["classes"]["value"]
    warnings = [line for line in result.stderr.splitlines() if dead in line]
    assert len(warnings) == 1 and "cannot connect" in warnings[0] and "trying the next server" in warnings[0]
    inventory = json.loads(tree.run("dev", "inventory", "--format", "json").stdout)["puppetdb"]
    assert inventory["answered_by"] == puppetdb.http_url
    assert inventory["declared_classes"] == len(PUBLIC) + len(PRIVATE)


def test_mutual_tls_with_puppets_certificates(tmp_path, puppetdb, loaded):
    c = puppetdb.certs
    conf = f"hostcert = {c.client_cert}\nhostprivkey = {c.client_key}\nlocalcacert = {c.ca_cert}\n"
    tree = site_tree(tmp_path, f"[main]\nserver_urls = {puppetdb.https_url}\n", conf)
    values = tree.report()
    assert [row["name"] for row in values["classes"]] == sorted(c.lower() for c in PUBLIC)


def test_client_certificate_from_another_ca_degrades(tmp_path, puppetdb, loaded):
    other_ca, other_key = make_ca(tmp_path, "other")
    cert, key = make_signed(tmp_path, "intruder", other_ca, other_key)
    conf = f"hostcert = {cert}\nhostprivkey = {key}\nlocalcacert = {puppetdb.certs.ca_cert}\n"
    tree = site_tree(tmp_path, f"[main]\nserver_urls = {puppetdb.https_url}\n", conf)
    result = tree.run("preview", "--format", "json")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert puppetdb.https_url in result.stderr
    values = {c: s["value"] for c, s in result.json()["self-service-analytics"]["snapshots"].items()}
    assert values["classes"] == [] and values["class_platforms"] == []
    assert values["modules"]  # the rest is intact


def test_all_servers_dead_gives_a_degraded_report(tmp_path):
    dead = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    tree = site_tree(tmp_path, f"[main]\nserver_urls = {','.join(dead)}\n")
    result = tree.run("preview")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    text = " ".join(result.stdout.split())
    assert "PuppetDB could not be queried" in text
    assert dead[0] not in result.stdout  # host names stay out of the preview
    assert all(url in result.stderr for url in dead)


# ---- faults from a loopback server that is not PuppetDB ----


class FaultHandler(QuietHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        mode = self.server.state
        if mode == "hang":
            return self.hang()
        if mode == "drip":
            return self.drip()
        answers = {
            "deep": (200, DEEP_JSON, "application/json"),
            "500": (500, b"boom", "text/plain"),
            "truncated": (200, b'[{"title": "Apache", "cou', "application/json"),
            "notalist": (200, b'{"error": "nope"}', "application/json"),
            "400": (400, b"PQL parse error: unexpected token at 'grup'", "text/plain"),
            "503": (503, b"PuppetDB is currently down. Try again later.", "text/plain"),
        }
        self.send(*answers[mode])


def fault_server(mode, tls_context=None) -> LoopbackServer:
    return LoopbackServer(FaultHandler, mode, tls_context)


@pytest.mark.parametrize(
    "mode, cause",
    [("500", "HTTP 500"), ("503", "HTTP 503"), ("truncated", "the answer is not valid JSON"), ("notalist", "not a JSON list"),
     ("hang", "no answer within 0.2 s"), ("deep", "the answer is nested more than 32 levels deep")],
)
def test_faulty_server_degrades_with_one_warning(tmp_path, mode, cause):
    with fault_server(mode) as server:
        url = server.url
        tree = site_tree(tmp_path, f"[main]\nserver_urls = {url}\nserver_url_timeout = {0.2 if mode == 'hang' else 5}\n")
        result = tree.run("preview", "--format", "json")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if url in line]
    assert len(warnings) == 1 and cause in warnings[0]
    snapshots = result.json()["self-service-analytics"]["snapshots"]
    assert snapshots["classes"]["value"] == [] and snapshots["modules"]["value"]


class Recorded(QuietHandler):
    """Answers every query with one class row, and notes the paths asked for; with a
    ``location`` in its state, answers 302 to it instead."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        state = self.server.state
        state["paths"].append(self.path)
        if state.get("location"):
            return self.send(302, b"", "text/plain", {"Location": state["location"]})
        self.send(200, json.dumps([{"title": state["title"], "count": 3}]).encode(), "application/json")


def recorded(title: str, location: str = "") -> LoopbackServer:
    return LoopbackServer(Recorded, {"title": title, "location": location, "paths": []})


def test_a_dripping_server_fails_over_at_the_deadline():
    """A byte every 50 ms stays under server_url_timeout: the deadline on the whole answer
    ends it, and the next server answers."""
    with fault_server("drip") as dripping, recorded("Ntp") as second:
        client = PuppetDBClient(PuppetDBConfig([dripping.url, second.url], timeout=5), deadline=0.3)
        started = time.monotonic()
        assert client.query(CLASS_COUNTS) == [{"title": "Ntp", "count": 3}]
        assert time.monotonic() - started < 4
    assert client.failures == [f"PuppetDB {dripping.url}: no complete answer within 0.3 s"]
    assert client.answered_by == second.url


def test_a_redirect_is_a_failure_naming_the_server_and_is_not_followed():
    """A 302 to another port was followed and its answer taken as PuppetDB's (with Puppet's
    client certificate offered to whoever is there, over https)."""
    with recorded("Stolen") as elsewhere, recorded("Ntp") as second:
        with recorded("", location=f"{elsewhere.url}/stolen") as redirecting:
            client = PuppetDBClient(PuppetDBConfig([redirecting.url, second.url], timeout=5))
            assert client.query(CLASS_COUNTS) == [{"title": "Ntp", "count": 3}]
    assert elsewhere.state["paths"] == []
    assert client.failures == [f"PuppetDB {redirecting.url}: HTTP 302 redirect to {elsewhere.url}/stolen: not followed"]


def test_a_redirecting_puppetdb_degrades_the_report(tmp_path):
    with recorded("Stolen") as elsewhere, recorded("", location=f"{elsewhere.url}/stolen") as redirecting:
        tree = site_tree(tmp_path, f"[main]\nserver_urls = {redirecting.url}\n")
        result = tree.run("preview", "--format", "json")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert elsewhere.state["paths"] == []
    assert any(redirecting.url in line and "not followed" in line for line in result.stderr.splitlines())
    assert result.json()["self-service-analytics"]["snapshots"]["classes"]["value"] == []


def test_our_bad_query_shows_puppetdbs_message(tmp_path):
    with fault_server("400") as server:
        url = server.url
        client = PuppetDBClient(PuppetDBConfig([url], timeout=5))
        with pytest.raises(PuppetDBError, match="HTTP 400.*PQL parse error: unexpected token"):
            client.query("resources[title] { grup }")


def test_server_certificate_from_another_ca_is_refused(tmp_path, puppetdb):
    other_ca, other_key = make_ca(tmp_path, "rogue")
    cert, key = make_signed(tmp_path, "rogue-server", other_ca, other_key, "IP:127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with fault_server("500", context) as server:
        url = server.url
        c = puppetdb.certs
        conf = f"hostcert = {c.client_cert}\nhostprivkey = {c.client_key}\nlocalcacert = {c.ca_cert}\n"
        tree = site_tree(tmp_path, f"[main]\nserver_urls = {url}\n", conf)
        result = tree.run("preview", "--format", "json")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "TLS failure" in result.stderr and "HTTP 500" not in result.stderr


def test_puppetdb_conf_parsing(tmp_path):
    path = write(tmp_path / "puppetdb.conf", "[main]\nserver_urls = https://a.example.test:8081/, http://b:8080\n")
    config = read_puppetdb_conf(path, {"hostcert": "/c", "hostprivkey": "/k", "localcacert": "/ca"})
    assert config.server_urls == ["https://a.example.test:8081", "http://b:8080"]
    assert config.timeout == 30 and config.hostcert == "/c"
    assert read_puppetdb_conf(tmp_path / "absent.conf", {}) is None
    for bad, needle in [("[main]\n", "server_urls is not set"), ("[main]\nserver_urls = ftp://x\n", "not an http"),
                        ("[main]\nserver_urls = http://x\nserver_url_timeout = soon\n", "server_url_timeout"),
                        ("[main]\nserver_urls = http://x\nserver_url_timeout = nan\n", "server_url_timeout"),
                        ("[main]\nserver_urls = http://[::1\n", "not an http"),
                        ("[main]\nserver_urls = http://x:99999\n", "not an http"),
                        ("server_urls = http://x\n", "puppetdb.conf")]:
        write(path, bad)
        with pytest.raises(BadInput, match=needle):
            read_puppetdb_conf(path, {})


def test_pql_strings_are_escaped():
    assert pql_string('Odd"Fam\\ily') == '"Odd\\"Fam\\\\ily"'


PUPPETDB_CONF_VOCABULARY = [
    "[main]", "[", "]", "\n", "server_urls", "server", "server_url_timeout", " = ", ": ", "https://a.example.test:8081",
    "http://[::1", "http://[", "https://b:99999", ",", " ", "nan", "inf", "-1", "30", "1e10", "3600", "%(x)s", "#", ";", "\x00",
]


PUPPETDB_CONF_LINES = ini_text(["main", "x"], ["server_urls", "server", "server_url_timeout"], PUPPETDB_CONF_VOCABULARY)


@FUZZ
@given(source_bytes(PUPPETDB_CONF_VOCABULARY) | PUPPETDB_CONF_LINES.map(str.encode))
def test_fuzzed_puppetdb_conf_is_read_or_named_in_a_clear_error(tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / "puppetdb.conf"
    config = read_fuzzed_file(path, data, lambda: read_puppetdb_conf(path, {}))
    if config is None:
        return
    assert config.server_urls and all(url.startswith(("http://", "https://")) for url in config.server_urls)
    assert 0 < config.timeout <= 3600


# ---- what a hostile or broken PuppetDB answers (review L2) ----


def _fake_site(tmp_path, rows, families=None) -> tuple:
    """The preview's values over a site with a public apache, PuppetDB answering ``rows``
    (and ``families`` to the OS family query)."""
    tree = PuppetTree(tmp_path / "site")
    tree.forge(["puppetlabs-apache"])
    tree.publish(make_module(tree.environment("production") / "modules", "apache", "puppetlabs-apache", "12.0.0",
                             manifests={"init.pp": "class apache { }", "vhost.pp": "class apache::vhost { }"}))
    with class_rows_server(rows, families) as server:
        write(tree.confdir / "puppetdb.conf", f"[main]\nserver_urls = {server.url}\n")
        result = tree.run("preview", "--format", "json")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    snapshots = result.json()["self-service-analytics"]["snapshots"]
    return {column: snapshot["value"] for column, snapshot in snapshots.items()}, result.stderr


def test_class_titles_are_reported_in_canonical_form_and_merged(tmp_path):
    rows = [{"title": "::apache", "count": 1}, {"title": "ApAcHe", "count": 2}, {"title": "aPACHE", "count": 3},
            {"title": "Apache", "count": 4}, {"title": "Apache::Vhost", "count": 5}, {"title": "::Apache::vhost", "count": 6},
            {"title": "Apache-Bad", "count": 7}, {"title": "\u212apache", "count": 8}]
    values, _ = _fake_site(tmp_path, rows)
    assert values["classes"] == [{"name": "apache", "count": 10}, {"name": "apache::vhost", "count": 11}]
    assert values["class_platforms"] == [{"name": "apache", "platform": "Debian", "count": 10},
                                         {"name": "apache::vhost", "platform": "Debian", "count": 11}]
    assert values["unused_classes"] == []


@pytest.mark.parametrize("count", [10**30, -5, 10**9 + 1])
def test_an_out_of_range_count_fails_the_plugin_instead_of_being_sent(tmp_path, count):
    values, stderr = _fake_site(tmp_path, [{"title": "Apache", "count": count}])
    assert "classes" not in values and "class_platforms" not in values
    assert "modules" not in values  # the failed plugin's columns go with it; the other plugins still run
    assert "profile_classes" in values and values["environment_count"] == 1
    assert "plugin modules: column classes.0.count" in stderr
    assert ("less than the minimum of 0" if count < 0 else "greater than the maximum of 1000000000") in stderr


@pytest.mark.parametrize("row", [["Apache", 1], {"title": 5, "count": 1}, {"title": "Apache", "count": True},
                                 {"title": "Apache", "count": "3"}, {"title": "Apache"}])
def test_a_malformed_class_row_degrades_with_one_warning(tmp_path, row):
    values, stderr = _fake_site(tmp_path, [row])
    assert values["classes"] == [] and values["class_platforms"] == [] and values["modules"]
    assert "malformed class row" in stderr


@pytest.mark.parametrize("families", [["Debian"], [None], [7], [{"facts.os.family": "Debian", "count": 1}, "x"],
                                      [{"facts.os.family": 5, "count": 1}]])
def test_a_malformed_family_row_degrades_with_one_warning(tmp_path, families):
    """The reviewer's: family rows that are not objects raised AttributeError, which
    dropped the whole modules column as a failed plugin."""
    values, stderr = _fake_site(tmp_path, [{"title": "Apache", "count": 1}], families)
    assert values["modules"] and "Traceback" not in stderr
    if all(isinstance(row, dict) for row in families):  # a non-string family is counted as no family
        return
    assert values["classes"] == [] and values["class_platforms"] == []
    assert stderr.count("malformed OS family row") == 1


# ---- any answer: read within its budget, or refused with one clear reason ----

from hypothesis import strategies as st  # noqa: E402

from dropsonde.puppet.puppetdb import PuppetDBError, _class_rows, _family_values  # noqa: E402
from tests.support.fuzzing import EXAMPLE_CPU_LIMIT  # noqa: E402
from tests.support.time_limits import cpu_limit  # noqa: E402

_TITLES = st.one_of(st.sampled_from(["Apache", "::apache", "Apache::" + "::".join(["a"] * 80), "Main", "ApAcHe::Mod",
                                     "\u212apache", "a" * 300, ""]), st.text(max_size=20))
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(), _TITLES)
_JSON = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                     max_leaves=20)
_ROWS = st.lists(st.one_of(
    st.fixed_dictionaries({"title": _TITLES, "count": st.integers(0, 10**9)}),
    st.fixed_dictionaries({"facts.os.family": _SCALARS, "count": _SCALARS}),
    _JSON,
), max_size=50)


@FUZZ
@given(_ROWS)
@example(["\n"])  # the row's text in the message is escaped: the error stays one line
@example([{"title": "a\n", "count": "1"}])
def test_any_rows_are_read_within_the_budget_or_refused_as_not_puppetdb(rows):
    """The reviewer's shapes (rows that are not objects, deep titles, huge numbers) among any JSON."""
    with cpu_limit(EXAMPLE_CPU_LIMIT):
        for read in (_class_rows, lambda r: _family_values(r, "facts.os.family")):
            try:
                found = read(rows)
            except PuppetDBError as exc:
                assert "\n" not in str(exc) and str(exc).startswith("PuppetDB answered a malformed")
                continue
            assert isinstance(found, list)
    for name, count in (_class_rows(rows) if all(isinstance(r, dict) and isinstance(r.get("title"), str)
                                                 and type(r.get("count")) is int for r in rows) else []):
        assert name.isascii() and name == name.lower() and name.count("::") <= 16 and isinstance(count, int)


# ---- run-wide bounds (issue 18, review attack-probe2) ----


@pytest.mark.parametrize("timeout", ["1e10", "1e300", "3601"])
def test_a_huge_server_url_timeout_is_one_error_naming_the_file(tmp_path, timeout):
    """F17: 1e10 s passed the reader and overflowed time_t in socket.settimeout: an
    internal error in `dev inventory`, the modules and platforms plugins FAILED."""
    tree = PuppetTree(tmp_path / "site")
    tree.forge(["puppetlabs-apache"])
    conf = write(tree.confdir / "puppetdb.conf",
                 f"[main]\nserver_urls = http://127.0.0.1:9\nserver_url_timeout = {timeout}\n")
    with pytest.raises(BadInput, match="server_url_timeout.*at most 3600"):
        read_puppetdb_conf(conf, {})
    for command in (["dev", "inventory"], ["preview"]):
        result = tree.run(*command)
        assert result.returncode == 2 and "Traceback" not in result.stderr and "internal error" not in result.stderr
        lines = [line for line in result.stderr.splitlines() if "error" in line]
        assert len(lines) == 1 and str(conf) in lines[0] and "server_url_timeout" in lines[0]


ALL_FAMILIES = [{"facts.os.family": family, "count": 1} for family in sorted(FACTER_OS_FAMILIES)] + [
    {"facts.os.family": "Acme", "count": 1}, {"facts.os.family": None, "count": 1}]


def test_a_slow_puppetdb_is_set_aside_at_the_run_wide_deadline_and_the_report_is_sent(tmp_path, caplog):
    """Review F3: every Facter family plus one other value plus a node with no os.family
    makes 45 queries, each allowed 300 s: 3.5 h, and the scheduled unit is killed at 1 h.
    The run's clock (injected: each query answered costs 60 s of it) stops the
    PuppetDB work at PUPPETDB_RUN_SECONDS; the rest is set aside with one warning."""
    from dropsonde.plugins import load_plugins
    from dropsonde.puppet.puppetdb import PUPPETDB_RUN_SECONDS, PuppetDBClient, PuppetDBConfig
    from dropsonde.report import build_report
    from tests.support.puppet_tree import site_for

    assert PUPPETDB_RUN_SECONDS == 600
    tree = PuppetTree(tmp_path / "site")
    tree.forge(["puppetlabs-apache"])
    tree.publish(make_module(tree.environment("production") / "modules", "apache", "puppetlabs-apache", "12.0.0",
                             manifests={"init.pp": "class apache { }"}))
    with class_rows_server([{"title": "Apache", "count": 3}], ALL_FAMILIES) as server:
        asked = server.state[2]
        site = site_for(tree)
        site.__dict__["puppetdb"] = PuppetDBClient(PuppetDBConfig([server.url]), clock=lambda: 60.0 * len(asked))
        report = build_report(site, load_plugins())
        site.close()
    assert len(asked) == 10  # 10 x 60 s: the 11th query is never asked (24 without the deadline)
    values = report.values()
    assert values["modules"] == [{"name": "apache", "slug": "puppetlabs-apache", "version": "12.0.0"}]
    assert values["classes"] == [] and values["class_platforms"] == []
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "PuppetDB" in r.getMessage()]
    assert warnings == ["PuppetDB work set aside: over its run-wide deadline of 600 s (PUPPETDB_RUN_SECONDS); "
                        "PuppetDB metrics are left empty"]
    assert any("PuppetDB could not be queried" in note for note in report.notes)


def test_puppetdb_answers_within_each_cap_are_bounded_in_all(tmp_path):
    """Review F11: 42 answers, each within its own caps, kept 4.2 million (class, family)
    pairs (1.65 GB, then MemoryError). The rows of all answers of a run have one budget
    (MAX_RUN_ROWS, scaled down here); past it the PuppetDB data is set aside."""
    from dropsonde.puppet.puppetdb import (MAX_RUN_ROWS, PuppetDBClient, PuppetDBConfig, PuppetDBOverBudget,
                                           fetch_class_usage)

    assert MAX_RUN_ROWS == 200_000
    rows = [{"title": f"Apache::C{index}", "count": 1} for index in range(1_000)]
    with class_rows_server(rows, ALL_FAMILIES) as server:
        client = PuppetDBClient(PuppetDBConfig([server.url]), max_run_rows=5_000)
        with pytest.raises(PuppetDBOverBudget, match=r"more than 5000 rows in all \(MAX_RUN_ROWS\)"):
            fetch_class_usage(client)
        asked = len(server.state[2])
    # classes, families, legacy families (none), then 4 of the 21 per-family class counts
    assert asked == 7 and client.rows_received == 1_000 * 5 + len(ALL_FAMILIES)
    with class_rows_server(rows[:100], ALL_FAMILIES) as server:  # within the budget: all 24 queries answered
        usage = fetch_class_usage(PuppetDBClient(PuppetDBConfig([server.url]), max_run_rows=5_000))
        assert len(server.state[2]) == 24 and len(usage.classes) == 100 and len(usage.platforms) == 2_100


def test_an_answer_cut_by_the_run_wide_deadline_names_that_deadline():
    """The last answer of a slow PuppetDB gets only what is left of PUPPETDB_RUN_SECONDS
    (here 0.3 s of 600: the injected clock starts at 0 and then reads 599.7); when it is
    cut, the run-wide deadline is named, not a 0.3 s answer deadline nobody configured."""
    from dropsonde.puppet.puppetdb import PuppetDBOverBudget

    readings = iter([0.0, 599.7])
    with fault_server("drip") as dripping:
        client = PuppetDBClient(PuppetDBConfig([dripping.url], timeout=5),
                                clock=lambda: next(readings, 600.0))
        client._time_left()  # the first query's start
        with pytest.raises(PuppetDBOverBudget, match=r"run-wide deadline of 600 s \(PUPPETDB_RUN_SECONDS\)"):
            client.query(CLASS_COUNTS)
    assert client.failures == [f"PuppetDB {dripping.url}: no complete answer within 0.3 s"]
