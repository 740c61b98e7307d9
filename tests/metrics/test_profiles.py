from dropsonde.metrics.profiles import Profiles
from tests.support.puppet_tree import make_module, run_metric


def test_public_classes_declared_by_private_classes(tree):
    tree.forge(["puppetlabs-apache", "puppetlabs-ntp"])
    modules = tree.environment("production") / "modules"
    tree.publish(make_module(modules, "apache", "puppetlabs-apache", manifests={
        "init.pp": "class apache { include apache::params }",
        "params.pp": "class apache::params { }",
        "mod/ssl.pp": "class apache::mod::ssl { }",
    }))
    make_module(modules, "ntp", "puppetlabs-ntp", manifests={"init.pp": "class ntp { }"})
    make_module(modules, "profile", "acme-profile", manifests={
        "web.pp": "class profile::web { include apache, apache::mod::ssl\n include profile::base\n"
                  "Class['ntp'] -> Class['apache'] }",
        "base.pp": "class profile::base { class { 'ntp': } include ::apache }",
        "app.pp": "class profile::app { include acme_internal::thing\n include notinstalled::cls }",
        "thing.pp": "define profile::thing { include ntp }",
    })
    make_module(tree.environment("staging") / "modules", "role", None, manifests={
        "web.pp": "class role::web { include profile::web\n include 'apache' }",
    })
    assert run_metric(Profiles, tree)["profile_classes"] == [
        {"name": "apache", "count": 3},
        {"name": "apache::mod::ssl", "count": 1},
        {"name": "ntp", "count": 1},
    ]


def test_public_modules_declaring_public_classes_are_not_profiles(tree):
    tree.forge(["puppetlabs-apache"])
    make_module(tree.environment("production") / "modules", "apache", "puppetlabs-apache",
                manifests={"init.pp": "class apache { include apache::params }", "params.pp": "class apache::params {}"})
    assert run_metric(Profiles, tree)["profile_classes"] == []


def test_public_classes_are_found_where_puppets_autoloader_looks(tree):
    """a::b::c lives in a/manifests/b/c.pp, b.pp or init.pp; a class hidden elsewhere
    is one Puppet could not load, so it is not counted (and nothing else is parsed)."""
    tree.forge(["puppetlabs-apache"])
    modules = tree.environment("production") / "modules"
    tree.publish(make_module(modules, "apache", "puppetlabs-apache", manifests={
        "init.pp": "class apache { class nested { } }",
        "mod.pp": "class apache::mod { class ssl { } }",
        "other.pp": "class apache::hidden { }",
    }))
    make_module(modules, "profile", "acme-profile", manifests={
        "web.pp": "class profile::web { include apache::nested, apache::mod::ssl, apache::hidden }",
    })
    assert run_metric(Profiles, tree)["profile_classes"] == [
        {"name": "apache::mod::ssl", "count": 1},
        {"name": "apache::nested", "count": 1},
    ]


def test_manifests_left_over_when_the_run_wide_budget_is_spent_fail_closed_with_one_warning(
        tree, monkeypatch, caplog):
    """Past MANIFESTS_RUN_CPU_SECONDS (spent from the start here) no manifest is
    parsed: no class is public, the metric still comes out (empty), and the site
    names the manifests set aside in one warning when it closes."""
    from dropsonde.puppet import manifest_cache
    from dropsonde.report import validate_plugin_data
    from tests.support.puppet_tree import site_for

    tree.forge(["puppetlabs-apache"])
    modules = tree.environment("production") / "modules"
    tree.publish(make_module(modules, "apache", "puppetlabs-apache", manifests={"init.pp": "class apache { }"}))
    make_module(modules, "profile", "acme-profile", manifests={"web.pp": "class profile::web { include apache }"})
    monkeypatch.setattr(manifest_cache, "MANIFESTS_RUN_CPU_SECONDS", 0.0)
    caplog.clear()
    site = site_for(tree)
    plugin = Profiles()
    plugin.name = "profiles"
    assert validate_plugin_data(plugin, plugin.run(site)) == {"profile_classes": []}
    site.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    web = modules / "profile" / "manifests" / "web.pp"  # (apache's classes are known from its release evidence)
    assert warnings == ["1 manifests set aside, not read (their classes are not public): this run's parsing of "
                        f"manifests took more than 0 s of CPU time (MANIFESTS_RUN_CPU_SECONDS): {web}"]
    monkeypatch.undo()
    assert run_metric(Profiles, tree)["profile_classes"] == [{"name": "apache", "count": 1}]
