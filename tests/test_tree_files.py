"""Reading a file someone else wrote (tree_files): regular files only, never
blocking, bounded, and inside the directory given (findings H2, M1, M2)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dropsonde.tree_files import LIMITS, RefusedFile, is_inside, read_tree_file
from dropsonde.errors import ExitStatus
from tests.support.time_limits import never_blocks
from tests.support.cli import assert_clean_error
from tests.support.puppet_tree import make_module, write
from tests.support.fuzzing import FUZZ


def test_a_regular_file_is_read_whole(tmp_path):
    (tmp_path / "metadata.json").write_bytes(b'{"name": "acme-x"}')
    assert read_tree_file(tmp_path / "metadata.json", "metadata.json", within=str(tmp_path)) == b'{"name": "acme-x"}'


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_tree_file(tmp_path / "absent", "manifest")


def test_a_fifo_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "metadata.json")
    with never_blocks(), pytest.raises(RefusedFile, match=r"not a regular file \(a FIFO\)"):
        read_tree_file(tmp_path / "metadata.json", "metadata.json")


def test_a_link_to_a_fifo_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "environment.conf").symlink_to(tmp_path / "fifo")
    with never_blocks(), pytest.raises(RefusedFile, match="a FIFO"):
        read_tree_file(tmp_path / "environment.conf", "environment.conf", within=str(tmp_path))


def test_a_link_to_dev_zero_is_refused(tmp_path):
    (tmp_path / "Puppetfile").symlink_to("/dev/zero")
    with pytest.raises(RefusedFile, match="character device"):
        read_tree_file(tmp_path / "Puppetfile", "Puppetfile")


def test_a_directory_is_refused(tmp_path):
    (tmp_path / "init.pp").mkdir()
    with pytest.raises(RefusedFile, match="a directory"):
        read_tree_file(tmp_path / "init.pp", "manifest")


def test_a_3_gb_sparse_file_is_refused_without_reading_it(tmp_path):
    big = tmp_path / "big.pp"
    with open(big, "wb") as handle:
        handle.truncate(3 * 1024**3)
    with pytest.raises(RefusedFile, match=r"larger than 4 MiB, the limit for a manifest"):
        read_tree_file(big, "manifest")


@pytest.mark.parametrize("kind", ["metadata.json", "environment.conf", "Puppetfile", "manifest", "puppetdb.conf"])
def test_each_kind_is_read_up_to_its_limit_and_no_further(tmp_path, kind):
    path = tmp_path / "file"
    path.write_bytes(b"x" * LIMITS[kind])
    assert len(read_tree_file(path, kind)) == LIMITS[kind]
    path.write_bytes(b"x" * (LIMITS[kind] + 1))
    with pytest.raises(RefusedFile, match="larger than"):
        read_tree_file(path, kind)


def test_a_link_leading_outside_within_is_refused(tmp_path):
    outside = tmp_path / "outside" / "secret.pp"
    outside.parent.mkdir()
    outside.write_text("class secret {}")
    module = tmp_path / "module"
    module.mkdir()
    (module / "s.pp").symlink_to(outside)
    with pytest.raises(RefusedFile, match="outside"):
        read_tree_file(module / "s.pp", "manifest", within=str(module))


def test_a_directory_link_leading_outside_within_is_refused(tmp_path):
    """The check is of the file opened: a link in the middle of the path counts too."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "init.pp").write_text("class secret {}")
    module = tmp_path / "module"
    module.mkdir()
    (module / "manifests").symlink_to(tmp_path / "outside")
    with pytest.raises(RefusedFile, match="outside"):
        read_tree_file(module / "manifests" / "init.pp", "manifest", within=str(module))


def test_a_link_staying_inside_within_is_followed(tmp_path):
    (tmp_path / "real.pp").write_text("class a {}")
    (tmp_path / "alias.pp").symlink_to("real.pp")
    assert read_tree_file(tmp_path / "alias.pp", "manifest", within=str(tmp_path)) == b"class a {}"


def test_is_inside_compares_whole_path_components():
    assert is_inside("/srv/code/modules/x", "/srv/code")
    assert is_inside("/srv/code", "/srv/code")
    assert not is_inside("/srv/codex/secret", "/srv/code")
    assert is_inside("/etc/passwd", "/")


@FUZZ
@given(content=st.binary(max_size=4096))
def test_any_content_within_the_limit_comes_back_unchanged(tmp_path_factory, content):
    path = Path(tmp_path_factory.mktemp("fuzz")) / "metadata.json"
    path.write_bytes(content)
    assert read_tree_file(path, "metadata.json", within=str(path.parent)) == content


# Through the CLI: every reader of the tree goes through read_tree_file (the
# review's reproductions, /tmp/attack in probe-findings.md).


def _site(tree):
    """production with public apache and private acmeprof (whose class includes apache)."""
    tree.forge(["puppetlabs-apache"])
    modules = tree.environment("production") / "modules"
    make_module(modules, "apache", "puppetlabs-apache", manifests={"init.pp": "class apache {}\n"})
    make_module(modules, "acmeprof", "acme-acmeprof", manifests={"web.pp": "class acmeprof::web { include apache }\n"})
    return modules


def _outside(tree, name: str, text: str) -> Path:
    return write(tree.root / "outside" / name, text)


def test_fifos_for_metadata_manifest_and_puppetfile_never_hang_a_preview(tree):
    modules = _site(tree)
    (modules / "acmeprof" / "metadata.json").unlink()
    os.mkfifo(modules / "acmeprof" / "metadata.json")
    os.mkfifo(modules / "acmeprof" / "manifests" / "fifo.pp")
    os.mkfifo(tree.environment("production") / "Puppetfile")
    with never_blocks(30):
        result = tree.run("preview", "--format", "json")
    assert result.returncode == 0, result.stderr
    snapshots = result.json()["self-service-analytics"]["snapshots"]
    assert snapshots["profile_classes"]["value"] == [{"name": "apache", "count": 1}]
    assert "acmeprof" not in json.dumps(snapshots)


def _set_aside_environment(tree, why: str) -> None:
    """The run goes on without the environment (environment.conf is tree input, as a
    manifest is: one branch's must not stop the run), with one warning naming it."""
    with never_blocks(30):
        result = tree.run("preview", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert f"environment {tree.environment('production')} set aside, its modules not read: " in result.stderr
    assert f"{tree.environment('production') / 'environment.conf'}: cannot read: {why}" in result.stderr
    assert result.json()["self-service-analytics"]["snapshots"]["profile_classes"]["value"] == []


def test_a_fifo_environment_conf_sets_its_environment_aside_naming_it(tree):
    _site(tree)
    os.mkfifo(tree.environment("production") / "environment.conf")
    _set_aside_environment(tree, "not a regular file (a FIFO)")


def test_a_dev_zero_environment_conf_sets_its_environment_aside_not_a_memory_error(tree):
    _site(tree)
    (tree.environment("production") / "environment.conf").symlink_to("/dev/zero")
    _set_aside_environment(tree, "")


def test_an_oversized_manifest_is_skipped_with_a_warning_naming_it(tree):
    modules = _site(tree)
    write(modules / "acmeprof" / "manifests" / "big.pp", "class acmeprof::big { include apache }\n" + "#" * (4 * 1024 * 1024))
    (modules / "acmeprof" / "manifests" / "web.pp").unlink()
    result = tree.run("preview", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "big.pp: cannot read: larger than 4 MiB, the limit for a manifest" in result.stderr
    assert result.json()["self-service-analytics"]["snapshots"]["profile_classes"]["value"] == []


def test_a_manifests_directory_linked_outside_its_module_is_not_walked(tree):
    modules = _site(tree)
    shutil.rmtree(modules / "acmeprof" / "manifests")
    outside = _outside(tree, "manifests/web.pp", "class acmeprof::web { include apache }\n").parent
    (modules / "acmeprof" / "manifests").symlink_to(outside)
    result = tree.run("preview", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "a symbolic link leading outside its module" in result.stderr
    assert result.json()["self-service-analytics"]["snapshots"]["profile_classes"]["value"] == []


def test_a_manifests_link_to_the_root_directory_walks_nothing(tree):
    """The review's `manifests -> /`: 22 s walking and parsing every .pp on the machine."""
    modules = _site(tree)
    shutil.rmtree(modules / "acmeprof" / "manifests")
    (modules / "acmeprof" / "manifests").symlink_to("/")
    with never_blocks(20):
        result = tree.run("preview", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "a symbolic link leading outside its module" in result.stderr


@pytest.mark.parametrize("link", ["manifest", "metadata.json", "Puppetfile", "module", "environment"])
def test_links_leading_out_of_the_tree_are_not_followed(tree, link):
    """Manifests, metadata.json, Puppetfiles, module and environment directories
    linked from outside the allowed roots are not read."""
    modules = _site(tree)
    canary = "class acmeprof::canaryout { include apache }\n"
    if link == "manifest":
        (modules / "acmeprof" / "manifests" / "web.pp").unlink()
        (modules / "acmeprof" / "manifests" / "web.pp").symlink_to(_outside(tree, "web.pp", canary))
    elif link == "metadata.json":
        (modules / "acmeprof" / "metadata.json").unlink()
        meta = _outside(tree, "meta.json", '{"name": "acme-canaryout", "version": "1.0.0", "dependencies": []}')
        (modules / "acmeprof" / "metadata.json").symlink_to(meta)
    elif link == "Puppetfile":
        (tree.environment("production") / "Puppetfile").symlink_to(_outside(tree, "Puppetfile", "puts 'x'\n"))
    elif link == "module":
        make_module(tree.root / "outside", "canaryout", "acme-canaryout", manifests={"init.pp": canary})
        (modules / "canaryout").symlink_to(tree.root / "outside" / "canaryout")
    else:
        outside_env = tree.root / "outside" / "canaryenv"
        make_module(outside_env / "modules", "canaryout", "acme-canaryout", manifests={"init.pp": canary})
        (tree.environments / "canaryenv").symlink_to(outside_env)
    result = tree.run("preview", "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.dumps(result.json())
    assert "canaryout" not in report and '"puts"' not in report
    assert "outside" in result.stderr  # each refusal is a warning naming what was skipped


def test_a_modulepath_entry_outside_the_tree_is_skipped_with_a_warning(tree):
    _site(tree)
    make_module(tree.root / "outside" / "mods", "canaryout", "acme-canaryout")
    write(tree.environment("staging") / "environment.conf", f"modulepath = {tree.root / 'outside' / 'mods'}\n")
    result = tree.run("preview", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "canaryout" not in json.dumps(result.json())
    assert "skipping modulepath entry" in result.stderr and "add it to basemodulepath" in result.stderr


def test_debian_modules_linked_into_an_environment_are_still_read(tree):
    """/usr/share/puppet/modules is a package-owned root: linking from it is allowed."""
    debian = Path("/usr/share/puppet/modules/stdlib")
    assert (debian / "metadata.json").is_file(), "needs Debian's puppet-module-puppetlabs-stdlib"
    tree.forge(["puppetlabs-stdlib"])
    (tree.environment("production") / "modules" / "stdlib").symlink_to(debian)
    result = tree.run("preview", "--format", "json")
    assert result.returncode == 0, result.stderr
    modules = result.json()["self-service-analytics"]["snapshots"]["modules"]["value"]
    assert [m["slug"] for m in modules] == ["puppetlabs-stdlib"]


@pytest.mark.parametrize("name", ["puppet.conf", "telemetry.yaml"])
def test_a_fifo_configuration_file_is_an_error_naming_it(tree, name):
    path = (tree.confdir.parent if name == "telemetry.yaml" else tree.confdir) / name
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    with never_blocks(30):
        result = tree.run("preview", "--format", "json")
    assert_clean_error(result, ExitStatus.USAGE, name, "not a regular file (a FIFO)")


def test_a_fifo_puppetdb_conf_fails_the_puppetdb_plugins_as_a_malformed_one_does(tree):
    _site(tree)
    os.mkfifo(tree.confdir / "puppetdb.conf")
    with never_blocks(30):
        result = tree.run("preview", "--format", "json")
    assert "puppetdb.conf: cannot read: not a regular file (a FIFO)" in result.stderr


def test_a_file_whose_size_lies_is_refused_once_it_reads_over_the_limit(monkeypatch):
    """The mutation run: the check after the read (a file that grew after its fstat) could
    go without a test failing. /proc files are regular files whose fstat size is 0."""
    monkeypatch.setitem(LIMITS, "manifest", 100)
    assert os.stat("/proc/self/mountinfo").st_size == 0
    with pytest.raises(RefusedFile, match="larger than 100 bytes, the limit for a manifest"):
        read_tree_file("/proc/self/mountinfo", "manifest")


def test_a_link_to_a_fifo_outside_within_is_refused_before_it_is_opened(tmp_path):
    """Refused for leading outside, before anything looks at (or opens) what it leads to."""
    os.mkfifo(tmp_path / "fifo")
    tree = tmp_path / "module"
    tree.mkdir()
    os.symlink(tmp_path / "fifo", tree / "init.pp")
    with never_blocks(10), pytest.raises(RefusedFile, match=f"a symbolic link leading outside {tree}"):
        read_tree_file(tree / "init.pp", "manifest", within=str(tree))
