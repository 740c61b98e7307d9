import os

from dropsonde.metrics.modules import Modules
from tests.support.puppet_tree import make_module, run_metric


def test_public_modules_unique_sorted_with_versions(tree):
    tree.forge(["puppetlabs-apache", "puppetlabs-stdlib", "puppetlabs-ntp"])
    base = tree.codedir / "modules"
    tree.publish(make_module(base, "stdlib", "puppetlabs-stdlib", "9.0.0"),
                 make_module(tree.environment("production") / "modules", "apache", "puppetlabs-apache", "12.0.0"),
                 make_module(tree.environment("staging") / "modules", "apache", "puppetlabs/apache", "11.0.0"))
    make_module(tree.environment("staging") / "modules", "ntp", "puppetlabs-ntp", "10.0.0-acme.1")
    make_module(tree.environment("staging") / "modules", "secret", "acme-secret", "1.0.0")
    make_module(tree.environment("staging") / "modules", "nometa", None)
    make_module(tree.environment("staging") / "modules", "myapache", "puppetlabs-apache", "1.0.0")  # renamed fork
    os.symlink(base / "stdlib", tree.environment("linked") / "modules" / "stdlib")
    data = run_metric(Modules, tree)
    assert data["modules"] == [
        {"name": "apache", "slug": "puppetlabs-apache", "version": "11.0.0"},
        {"name": "apache", "slug": "puppetlabs-apache", "version": "12.0.0"},
        {"name": "ntp", "slug": "puppetlabs-ntp", "version": "(private)"},
        {"name": "stdlib", "slug": "puppetlabs-stdlib", "version": "9.0.0"},
    ]
    assert data["classes"] == data["unused_modules"] == data["unused_classes"] == []


def test_no_forge_cache_means_nothing_is_public(tree):
    make_module(tree.environment("production") / "modules", "apache", "puppetlabs-apache", "12.0.0")
    assert run_metric(Modules, tree)["modules"] == []
