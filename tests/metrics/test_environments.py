from dropsonde.metrics.environments import Environments
from tests.support.puppet_tree import run_metric


def test_counts_valid_environment_directories(tree):
    for name in ("production", "staging", "dev_2"):
        tree.environment(name)
    (tree.environments / "Not-Valid").mkdir()
    (tree.environments / "README").write_text("not an environment")
    assert run_metric(Environments, tree) == {"environment_count": 3}


def test_r10k_branch_environments_with_capitals_are_counted(tree):
    for name in ("production", "AL2023", "MartyEwings_patch_1"):
        tree.environment(name)
    (tree.environments / "feature-x").mkdir()
    assert run_metric(Environments, tree) == {"environment_count": 3}


def test_no_environments(tree):
    assert run_metric(Environments, tree) == {"environment_count": 0}
