from dropsonde.metrics.puppetfiles import Puppetfiles
from tests.support.puppet_tree import run_metric, write


def test_counts_core_methods_and_hides_site_methods(tree, caplog):
    write(
        tree.environment("production") / "Puppetfile",
        "forge 'https://forge.puppet.com'\nrequire 'json'\ndef acme_helper(x) x end\n"
        "acme_helper 'a'\nmod 'puppetlabs-apache'\nwarn 'x'\n",
    )
    write(tree.environment("staging") / "Puppetfile", "require 'yaml'\nundefined_thing 'b'\nputs 'c'\n")
    write(tree.environment("broken") / "Puppetfile", "mod 'a', mod 'b'\n")
    assert run_metric(Puppetfiles, tree)["puppetfile_ruby_methods"] == [
        {"name": "(private)", "count": 2},
        {"name": "puts", "count": 1},
        {"name": "require", "count": 2},
        {"name": "warn", "count": 1},
    ]
    assert "skipping Puppetfile" in caplog.text and "broken" in caplog.text


def test_core_name_redefined_by_the_site_is_private(tree):
    write(tree.environment("production") / "Puppetfile", "def puts(x) end\nputs 'x'\n")
    assert run_metric(Puppetfiles, tree)["puppetfile_ruby_methods"] == [{"name": "(private)", "count": 1}]


def test_identical_copies_count_once_per_environment_and_each_broken_copy_is_named(tree, caplog):
    """r10k: the same Puppetfile in every environment, parsed once, counted for each."""
    for env in ("production", "feature_a", "feature_b"):
        write(tree.environment(env) / "Puppetfile", "require 'json'\nmod 'puppetlabs-apache'\n")
        write(tree.environment(f"broken_{env}") / "Puppetfile", "mod 'a', mod 'b'\n")
    assert run_metric(Puppetfiles, tree)["puppetfile_ruby_methods"] == [{"name": "require", "count": 3}]
    for env in ("production", "feature_a", "feature_b"):
        assert f"broken_{env}/Puppetfile" in caplog.text


def test_a_puppetfile_ruby_rejects_is_skipped_with_a_warning(tree, caplog):
    # `#mod 'apache',` commented out leaves its options standing alone, which
    # Ruby reads as one pattern and rejects (r10k fails on it)
    write(
        tree.environment("AL2023") / "Puppetfile",
        "require 'json'\n#mod 'apache',\n  :git => 'https://git.example.test/apache.git',\n  :branch => 'master'\n",
    )
    assert run_metric(Puppetfiles, tree)["puppetfile_ruby_methods"] == []
    assert "skipping Puppetfile" in caplog.text and "AL2023" in caplog.text and "line 4" in caplog.text


def test_once_the_run_wide_budget_is_spent_the_other_puppetfiles_are_set_aside_with_one_warning(
        tree, caplog, monkeypatch):
    """The outside review: 30 environments of distinct hostile Puppetfiles, each just
    under its own 1 s budget, took 25.9 s. With the run's budget spent (none here),
    every Puppetfile not known from the cache is set aside, named in one warning; a
    content already known still counts, and nothing set aside is kept, so a later
    run reads it. (How the budget is spent: tests/test_cpu_budget.py.)"""
    from dropsonde.metrics import puppetfiles
    from dropsonde.puppet import puppetfile_cache

    write(tree.environment("a_known") / "Puppetfile", "require 'json'\n")
    run_metric(Puppetfiles, tree)  # now in the cache
    for env in ("b_first", "c_second", "d_third"):
        write(tree.environment(env) / "Puppetfile", f"puts '{env}'\n")
    monkeypatch.setattr(puppetfile_cache, "PUPPETFILES_RUN_CPU_SECONDS", 0.0)
    monkeypatch.setattr(puppetfiles, "MAX_NAMED", 2)
    caplog.clear()
    assert run_metric(Puppetfiles, tree)["puppetfile_ruby_methods"] == [{"name": "require", "count": 1}]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    first, second = (tree.environment(env) / "Puppetfile" for env in ("b_first", "c_second"))
    assert warnings == [
        "3 Puppetfiles set aside, not read: this run's parsing of Puppetfiles took more than 0 s of CPU time "
        f"(PUPPETFILES_RUN_CPU_SECONDS): {first}, {second} and 1 more"]
    monkeypatch.undo()
    assert run_metric(Puppetfiles, tree)["puppetfile_ruby_methods"] == [
        {"name": "puts", "count": 3}, {"name": "require", "count": 1}]
