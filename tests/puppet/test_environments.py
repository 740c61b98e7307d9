"""Directory environments, modulepaths and module metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dropsonde.errors import BadInput
from dropsonde.puppet.environments import (
    Dependency,
    Module,
    ModuleStore,
    discover_environments,
    environment_modulepath,
    normalize_slug,
    read_metadata,
)
from tests.support.puppet_tree import make_module, write
from tests.support.time_limits import cpu_limit
from tests.support.fuzzing import EXAMPLE_CPU_LIMIT, FUZZ, ini_text, read_fuzzed_file, source_bytes


def discover(roots, base=(), codedir=None):
    store = ModuleStore()
    return discover_environments([Path(r) for r in roots], [Path(b) for b in base], store, codedir), store


def test_valid_names_first_path_wins_and_sorted(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for name in ("production", "dev_1", "Bad-Name", ".git"):
        (first / name / "modules").mkdir(parents=True)
    (second / "production").mkdir(parents=True)
    (second / "staging").mkdir(parents=True)
    (first / "not_a_dir").parent.mkdir(exist_ok=True)
    (first / "not_a_dir").write_text("")
    envs, _ = discover([first, second])
    assert [(e.name, e.path.parent.name) for e in envs] == [("dev_1", "a"), ("production", "a"), ("staging", "b")]


def test_environment_names_follow_puppets_rule_capitals_included(tmp_path):
    for name in ("AL2023", "MartyEwings_patch_1", "production"):
        make_module(tmp_path / name / "modules", f"mod_{name.lower()}", f"acme-mod_{name.lower()}")
    # Ruby's \w is ASCII-only. Its \Z matches before a final newline, so Puppet would
    # take "trailing_newline\n"; no r10k deploy makes one, and such a name would print
    # a line of its own (review L3): it is not an environment here.
    for name in ("Bad-Name", "caf\u00e9", "\u0661", "two\nlines", "trailing_newline\n", ".git"):
        (tmp_path / name / "modules" / "hidden").mkdir(parents=True)
    envs, _ = discover([tmp_path])
    assert [e.name for e in envs] == ["AL2023", "MartyEwings_patch_1", "production"]
    assert [m.name for m in envs[0].modules] == ["mod_al2023"]
    assert [m.slug for m in envs[1].modules] == ["acme-mod_martyewings_patch_1"]


def test_a_module_directory_name_is_matched_whole(tmp_path):
    """Puppet's module names are /\\A[a-z][a-z0-9_]*\\z/: a directory `zzz\\n` is no module (review L3)."""
    for name in ("zzz", "zzz\n", "Zzz", "zzz.old", "9zzz"):
        make_module(tmp_path / "production" / "modules", name, "acme-zzz")
    envs, _ = discover([tmp_path])
    assert [m.name for m in envs[0].modules] == ["zzz"]


def test_environment_conf_modulepath_relative_and_basemodulepath(tmp_path):
    base = tmp_path / "base"
    make_module(base, "stdlib", "puppetlabs-stdlib")
    make_module(base, "apache", "puppetlabs-apache", "1.0.0")
    env = tmp_path / "envs" / "production"
    make_module(env / "site", "apache", "puppetlabs-apache", "2.0.0")
    write(env / "environment.conf", "# comment\nmodulepath = site:$basemodulepath\nenvironment_timeout = 0\n")
    envs, _ = discover([tmp_path / "envs"], [base])
    assert envs[0].modulepath == [env / "site", base]
    by_name = {m.name: m for m in envs[0].modules}
    assert by_name["apache"].version == "2.0.0"  # first on the path wins
    assert by_name["stdlib"].slug == "puppetlabs-stdlib"


def test_default_modulepath(tmp_path):
    env = tmp_path / "envs" / "production"
    make_module(env / "modules", "ntp", "puppetlabs/ntp")
    envs, _ = discover([tmp_path / "envs"], [tmp_path / "base"])
    assert envs[0].modulepath == [env / "modules", tmp_path / "base"]
    assert envs[0].modules[0].slug == "puppetlabs-ntp"


def test_bad_environment_conf_names_file_and_line(tmp_path):
    env = tmp_path / "envs" / "production"
    write(env / "environment.conf", "modulepath = modules\nnonsense line\n")
    with pytest.raises(BadInput, match=r"environment.conf:2"):
        environment_modulepath(env, [])


def test_one_branchs_bad_environment_conf_sets_that_environment_aside_not_the_run(tmp_path, caplog):
    """Review 2, F16: one line Puppet rejects in ANY r10k branch's environment.conf stopped
    every run of the site (exit 2). Now that environment is set aside with one warning
    naming the file and line (its modules are not read), a same-named one further on the
    environmentpath does not stand in, and the others are read; a setting Puppet does not
    know (`environment_data_provider`, common in Puppet 4-era repositories) is ignored
    with a warning, as Puppet does."""
    envs = tmp_path / "envs"
    make_module(envs / "production" / "modules", "ntp", "puppetlabs-ntp")
    make_module(envs / "old_branch" / "modules", "ntp", "puppetlabs-ntp")
    write(envs / "old_branch" / "environment.conf", "modulepath = modules\nenvironment_data_provider = hiera\n")
    make_module(envs / "broken" / "modules", "ntp", "puppetlabs-ntp")
    write(envs / "broken" / "environment.conf", "modulepath = modules\nnonsense line\n")
    make_module(tmp_path / "more" / "broken" / "modules", "ntp", "puppetlabs-ntp")
    caplog.clear()
    found, _ = discover([envs, tmp_path / "more"])
    assert [(e.name, [m.slug for m in e.modules]) for e in found] == [
        ("old_branch", ["puppetlabs-ntp"]), ("production", ["puppetlabs-ntp"])]
    assert [r.getMessage() for r in caplog.records] == [
        f"environment {envs / 'broken'} set aside, its modules not read: {envs / 'broken' / 'environment.conf'}:2: "
        "not an environment.conf setting: 'nonsense line'",
        f"{envs / 'old_branch' / 'environment.conf'}:2: ignoring 'environment_data_provider', not an "
        "environment.conf setting"]


def test_a_modulepath_is_counted_as_written_and_never_looks_users_up(tmp_path, caplog):
    """Review 2, F2: `~nosuch/m:` repeated over 1 MiB was accepted (one distinct entry)
    after one user lookup per entry (NSS: LDAP on many sites), outside the CPU budget:
    5.7 s per environment, r10k copying it into every branch. Now more than 64 entries
    as written set the environment aside before anything is expanded, and `~user/...`
    (another user's home: outside the trees read) is left out unlooked-up."""
    env = tmp_path / "envs" / "production"
    (env / "modules").mkdir(parents=True)
    (env / "environment.conf").write_text("modulepath = " + "~nosuch_dropsonde/m:" * 50_000 + "modules\n")
    with cpu_limit(1):
        found, _ = discover([tmp_path / "envs"])
    assert found == []
    assert "modulepath: more than 64 directories (MAX_MODULEPATH_ENTRIES)" in caplog.text
    (env / "environment.conf").write_text("modulepath = ~nosuch_dropsonde/m:~root/m:~:modules\n")
    found, _ = discover([tmp_path / "envs"])
    assert found[0].modulepath == [Path(os.path.expanduser("~")), env / "modules"]


def test_the_environment_confs_of_a_run_have_one_budget(tmp_path, monkeypatch, caplog):
    """Review 2, F2: nothing bounded the config CPU of all environments together (one
    costly environment.conf per branch). Once the run's budget is spent (none here), an
    environment with an environment.conf is set aside, and all are named in ONE warning;
    one without is read (it costs nothing to read)."""
    import dropsonde.puppet.environments as environments

    monkeypatch.setattr(environments, "ENVIRONMENT_CONFS_RUN_CPU_SECONDS", 0.0)
    envs = tmp_path / "envs"
    for name in ("a", "b", "c", "d", "e", "f", "production"):
        make_module(envs / name / "modules", "ntp", "puppetlabs-ntp")
        if name != "production":
            write(envs / name / "environment.conf", "modulepath = modules\n")
    caplog.clear()
    found, _ = discover([envs])
    assert [e.name for e in found] == ["production"]
    assert [r.getMessage() for r in caplog.records] == [
        "6 environments set aside, their modules not read: this run's reading of environment.conf files took more "
        f"than 0 s of CPU time (ENVIRONMENT_CONFS_RUN_CPU_SECONDS): {envs / 'a'}, {envs / 'b'}, {envs / 'c'}, "
        f"{envs / 'd'}, {envs / 'e'} and 1 more"]


def test_each_module_directory_is_read_once_by_real_path(tmp_path):
    shared = make_module(tmp_path / "shared", "concat", "puppetlabs-concat")
    for name in ("one", "two", "three"):
        modules = tmp_path / "envs" / name / "modules"
        modules.mkdir(parents=True)
        os.symlink(shared, modules / "concat")
    envs, store = discover([tmp_path / "envs"], [tmp_path / "shared"])  # linked from an allowed root
    assert len(envs) == 3
    assert len(store.modules) == 1
    assert envs[0].modules[0] is envs[2].modules[0]


def test_modules_are_keyed_by_real_path_whether_the_module_or_its_directory_is_a_link(tmp_path):
    """r10k copies (no link: resolved once per modulepath entry), a linked
    modulepath entry, and a linked module directory all give real paths."""
    real = tmp_path / "real"
    make_module(real / "production" / "modules", "apache", "puppetlabs-apache")
    make_module(tmp_path / "elsewhere", "ntp", "puppetlabs-ntp")
    os.symlink(tmp_path / "elsewhere" / "ntp", real / "production" / "modules" / "ntp")
    (tmp_path / "envs").mkdir()
    os.symlink(real / "production", tmp_path / "envs" / "production")  # the environment itself is a link
    envs, store = discover([tmp_path / "envs"], codedir=tmp_path)  # the links stay inside the codedir
    assert sorted(store.modules) == sorted([str(real / "production" / "modules" / "apache"), str(tmp_path / "elsewhere" / "ntp")])
    assert [m.path for m in envs[0].modules] == [real / "production" / "modules" / "apache", tmp_path / "elsewhere" / "ntp"]


def test_symlink_loops_and_dangling_links_are_skipped(tmp_path, caplog):
    modules = tmp_path / "envs" / "production" / "modules"
    modules.mkdir(parents=True)
    os.symlink(modules / "loop", modules / "loop")
    os.symlink(tmp_path / "nowhere", modules / "dangling")
    make_module(modules, "good", "puppetlabs-good")
    envs, _ = discover([tmp_path / "envs"])
    assert [m.name for m in envs[0].modules] == ["good"]
    assert "loop" in caplog.text and "dangling" in caplog.text


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid UTF-8"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"version": "1.0.0"}', "no valid 'name'"),
        (b'{"name": 42, "version": "1.0.0"}', "no valid 'name'"),
        (b'{"name": "a-b"}', "no 'version'"),
        (b'{"name": "a-b", "version": "1.0.0", "dependencies": {}}', "not a list"),
        (b'{"name": "a-b", "version": "1.0.0", "dependencies": [{"version_requirement": "1"}]}', "without a 'name'"),
    ],
)
def test_malformed_metadata_makes_the_module_private_with_a_reason(tmp_path, content, problem):
    module = tmp_path / "envs" / "production" / "modules" / "b"
    module.mkdir(parents=True)
    (module / "metadata.json").write_bytes(content)
    envs, _ = discover([tmp_path / "envs"])
    found = envs[0].modules[0]
    assert found.slug is None
    assert problem in found.problem


def test_module_without_metadata(tmp_path):
    (tmp_path / "envs" / "production" / "modules" / "bare" / "manifests").mkdir(parents=True)
    envs, _ = discover([tmp_path / "envs"])
    assert envs[0].modules[0].problem == "no metadata.json"


def test_unreadable_metadata_and_modulepath_entries(tmp_path, caplog):
    """Root reads everything, so unreadability is made from things no one can read as a file."""
    modules = tmp_path / "envs" / "production" / "modules"
    module = modules / "locked"
    (module / "metadata.json").mkdir(parents=True)  # a directory where a file should be
    write(tmp_path / "envs" / "production" / "environment.conf", "modulepath = modules:not_a_dir.txt\n")
    write(tmp_path / "envs" / "production" / "not_a_dir.txt", "")
    envs, _ = discover([tmp_path / "envs"])
    found = envs[0].modules[0]
    assert found.slug is None and "unreadable" in found.problem
    assert "not_a_dir.txt" in caplog.text


def test_dependencies_keep_forge_names_only(tmp_path):
    make_module(
        tmp_path / "envs" / "production" / "modules",
        "profile",
        "acme-profile",
        dependencies=[
            {"name": "puppetlabs/stdlib", "version_requirement": ">= 4.0.0"},
            {"name": "not a forge name"},
            {"name": "puppetlabs-concat"},
        ],
    )
    envs, _ = discover([tmp_path / "envs"])
    deps = envs[0].modules[0].dependencies
    assert [(d.slug, d.version_requirement) for d in deps] == [
        ("puppetlabs-stdlib", ">= 4.0.0"),
        ("puppetlabs-concat", None),
    ]


def test_normalize_slug():
    assert normalize_slug("PuppetLabs/apache") == "puppetlabs-apache"
    assert normalize_slug("puppet-nginx") == "puppet-nginx"
    assert normalize_slug("apache") is None
    assert normalize_slug("a-B") is None


# --- Fuzzing: a module's metadata.json and an environment's environment.conf are untrusted ---

JSON_VOCABULARY = [
    "{", "}", "[", "]", ",", ":", '"name"', '"version"', '"dependencies"', '"version_requirement"',
    '"puppetlabs-stdlib"', '"puppetlabs/apache"', '"1.0.0"', '">= 1.0.0 < 10.0.0"', "null", "true", "1e999", "-0",
    "NaN", '"\\u0000"', '"\\ud800"', "\\", '"',
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
METADATA = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["puppetlabs-stdlib", "a/b", "x"]) | JSON_VALUES,
        "version": st.sampled_from(["1.0.0"]) | JSON_VALUES,
        "dependencies": st.lists(
            st.fixed_dictionaries({}, optional={"name": JSON_VALUES | st.just("puppetlabs-stdlib"),
                                                "version_requirement": JSON_VALUES}) | JSON_VALUES,
            max_size=4,
        ) | JSON_VALUES,
    },
)
METADATA_BYTES = (
    source_bytes(JSON_VOCABULARY)
    | METADATA.map(lambda data: json.dumps(data).encode("utf-8"))
    | st.integers(1, 100_000).map(lambda depth: b"[" * depth + b"]" * depth)
)


@FUZZ
@given(METADATA_BYTES)
def test_fuzzed_metadata_leaves_the_module_private_with_a_reason_or_reads_it(tmp_path_factory, data):
    module_dir = tmp_path_factory.getbasetemp() / "fuzzed_module"
    module_dir.mkdir(exist_ok=True)
    (module_dir / "metadata.json").write_bytes(data)
    module = Module(name="fuzzed_module", path=module_dir)
    with cpu_limit(EXAMPLE_CPU_LIMIT):
        read_metadata(module)
    assert (module.slug is None) != (module.problem is None)
    if module.slug is not None:
        assert isinstance(module.version, str)
        assert all(normalize_slug(dep.slug) == dep.slug for dep in module.dependencies)


ENVIRONMENT_CONF_VOCABULARY = [
    "modulepath", "manifest", "environment_timeout", " = ", "=", "[main]", "#", "\n", "site:$basemodulepath",
    "${basemodulepath}", "$environment", "~", "~root", ":", "/abs", "modules", "\x00",
    # the shapes of the second review: user lookups repeated, a setting Puppet only warns about
    "~nosuch/m:", "~/m:", "environment_data_provider = hiera\n",
]


ENVIRONMENT_CONF_LINES = ini_text(["main"], ["modulepath", "manifest", "config_version", "x"], ENVIRONMENT_CONF_VOCABULARY)


@FUZZ
@given(source_bytes(ENVIRONMENT_CONF_VOCABULARY) | ENVIRONMENT_CONF_LINES.map(str.encode))
def test_fuzzed_environment_conf_is_read_or_named_in_a_clear_error(tmp_path_factory, data):
    env_dir = tmp_path_factory.getbasetemp() / "fuzzed_env"
    modulepath = read_fuzzed_file(
        env_dir / "environment.conf",
        data,
        lambda: environment_modulepath(env_dir, [Path("/nonexistent/base")]),
        names=["environment.conf"],
    )
    assert modulepath is None or all(isinstance(path, Path) and "\0" not in str(path) for path in modulepath)


@FUZZ
@given(source_bytes(ENVIRONMENT_CONF_VOCABULARY) | ENVIRONMENT_CONF_LINES.map(str.encode))
def test_a_fuzzed_environment_conf_never_stops_the_run(tmp_path_factory, data):
    """Finishes within its budget, or sets that environment aside: discovery itself
    never raises for what a branch's environment.conf holds."""
    root = tmp_path_factory.getbasetemp() / "fuzzed_envs"
    (root / "production" / "modules").mkdir(parents=True, exist_ok=True)
    (root / "production" / "environment.conf").write_bytes(data)
    with cpu_limit(EXAMPLE_CPU_LIMIT):
        found, _ = discover([root])
    assert [e.name for e in found] in ([], ["production"])


def test_a_nul_in_environment_conf_is_a_clear_error(tmp_path):
    write(tmp_path / "production" / "environment.conf", "modulepath = ~\x00x:modules\n")
    with pytest.raises(BadInput, match="environment.conf:1: contains a NUL"):
        environment_modulepath(tmp_path / "production", [])


def test_deeply_nested_metadata_leaves_the_module_private(tmp_path):
    make_module(tmp_path, "deep", "puppetlabs-deep")
    (tmp_path / "deep" / "metadata.json").write_text("[" * 9_000 + "]" * 9_000)
    module = Module(name="deep", path=tmp_path / "deep")
    read_metadata(module)
    assert module.slug is None and "nested more than 32 levels deep" in module.problem
    (tmp_path / "deep" / "metadata.json").write_text("[" * 100_000 + "]" * 100_000)
    read_metadata(module)
    assert module.slug is None and "made of more than 10000 values" in module.problem


def test_a_metadata_json_of_too_many_values_makes_the_module_private(tmp_path):
    module = tmp_path / "envs" / "production" / "modules" / "b"
    module.mkdir(parents=True)
    dependencies = ",".join('{"name": "a-b%d"}' % i for i in range(5_000))
    (module / "metadata.json").write_text('{"name": "x-b", "version": "1.0.0", "dependencies": [%s]}' % dependencies)
    envs, _ = discover([tmp_path / "envs"])
    found = envs[0].modules[0]
    assert found.slug is None and found.dependencies == []
    assert found.problem == "metadata.json is made of more than 10000 values"


def test_a_modulepath_of_too_many_directories_is_an_error_naming_the_file(tmp_path):
    """Each entry is listed in every environment: 140,000 of them (1 MiB) cost 2 s of CPU per
    environment, 80 s for a control repository deployed to 40 branches."""
    env = tmp_path / "envs" / "production"
    (env / "modules").mkdir(parents=True)
    (env / "environment.conf").write_text("modulepath = " + ":".join(f"m{i}" for i in range(65)) + "\n")
    with cpu_limit(2), pytest.raises(BadInput, match=r"environment\.conf: modulepath: more than 64 directories"):
        environment_modulepath(env, [])
    (env / "environment.conf").write_text("modulepath = m1:m2:$basemodulepath\n")
    with cpu_limit(2), pytest.raises(BadInput, match=r"environment\.conf: modulepath: more than 64 directories"):
        environment_modulepath(env, [tmp_path / f"b{i}" for i in range(63)])
    repeated = "modules:" * 30 + "$basemodulepath:" * 30  # duplicates are searched once
    (env / "environment.conf").write_text(f"modulepath = {repeated}\n")
    with cpu_limit(2):
        envs, _ = discover([tmp_path / "envs"])
    assert envs[0].modulepath == [env / "modules"]


def test_an_environment_conf_over_its_cpu_budget_is_an_error_naming_it(tmp_path, monkeypatch):
    import dropsonde.puppet.environments as environments

    monkeypatch.setattr(environments, "CONFIG_CPU_SECONDS", 0.005)
    conf = tmp_path / "environment.conf"
    # Blank lines are the costliest content per byte (about 36 ms for this file on a quiet
    # machine, against 8-12 ms for comments): well past the budget even on a coarse CPU clock.
    conf.write_text("\n" * 1_000_000 + "modulepath = modules\n")
    with cpu_limit(2.0), pytest.raises(BadInput, match=r"environment\.conf: not read: parsing it took more than "
                                                       r"0\.005 s of CPU time \(CONFIG_CPU_SECONDS\)"):
        environments.read_environment_conf(conf)


def test_copies_of_one_metadata_json_are_parsed_once_and_share_nothing(tmp_path):
    """r10k copies every module into every environment: each distinct metadata.json
    content is parsed once, a broken one included, and each copy gets its own list."""
    for env in ("production", "staging", "dev"):
        make_module(tmp_path / env / "modules", "apache", "puppetlabs-apache",
                    dependencies=[{"name": "puppetlabs/stdlib", "version_requirement": ">= 4.13.1 < 10.0.0"}])
        make_module(tmp_path / env / "modules", "broken", "acme-broken")
        (tmp_path / env / "modules" / "broken" / "metadata.json").write_text("{")
    make_module(tmp_path / "dev" / "modules", "ntp", "puppetlabs-ntp")
    envs, store = discover([tmp_path])
    apaches = [next(m for m in env.modules if m.name == "apache") for env in envs]
    assert len({id(m) for m in apaches}) == 3 and store.distinct_metadata == 3
    assert all(m.slug == "puppetlabs-apache" and m.version == "1.0.0" for m in apaches)
    assert all(m.dependencies == [Dependency("puppetlabs-stdlib", ">= 4.13.1 < 10.0.0")] for m in apaches)
    apaches[0].dependencies.clear()
    assert apaches[1].dependencies == [Dependency("puppetlabs-stdlib", ">= 4.13.1 < 10.0.0")]
    broken = [next(m for m in env.modules if m.name == "broken") for env in envs]
    assert all(m.slug is None and m.problem and m.problem.startswith("metadata.json is not valid JSON") for m in broken)


def test_a_run_reads_at_most_max_environments_and_says_how_many_it_left_out(tmp_path, caplog):
    """Re-check V3: nothing bounded the environments of a run: 200,000 empty branches took 27 s
    and 322 MB, each within every other budget."""
    from dropsonde.puppet.environments import MAX_ENVIRONMENTS

    for n in range(30):
        (tmp_path / "envs" / f"e{n:02d}" / "modules").mkdir(parents=True)
    store = ModuleStore()
    found = discover_environments([tmp_path / "envs"], [], store, None, max_environments=10)
    assert [e.name for e in found] == [f"e{n:02d}" for n in range(10)]
    assert "20 environments left out" in caplog.text and "MAX_ENVIRONMENTS" in caplog.text and "e10" in caplog.text
    assert 160 * 10 <= MAX_ENVIRONMENTS <= 100_000  # ten times bench/r10k.py's largest tree, far below the 200,000
