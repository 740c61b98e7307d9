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
