"""A Forge release and the site's copies of it, for privacy rule 3's tests: the
release's tree (what the loopback Forge serves), a copy installed in production
with a private profile declaring its classes, and both previews run with a
Forge refresh."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Dict, List, Tuple

from tests.support.cli import Result
from tests.support.puppet_tree import PuppetTree, forge_checksums, make_module, write

SECRET = "acmepayrollvhost"
APACHE_MANIFESTS = {
    "init.pp": "class apache (\n  $x = 1,\n) {\n}\nclass apache::inlined { }\n",
    "vhost.pp": "class apache::vhost { }\n",
    "mod/ssl.pp": "class apache::mod::ssl { }\n",
}


def release_tree(root: Path) -> Path:
    """puppetlabs-apache 12.1.0 as the Forge published it (the release's tree)."""
    return make_module(root / "forge-src", "apache", "puppetlabs-apache", "12.1.0", manifests=APACHE_MANIFESTS)


def installed_copy(published: Path, tree: PuppetTree, checksums: bool = True) -> Path:
    """The release installed in production (with its checksums.json, as `puppet module
    install` leaves it; without, as an r10k :git checkout of its tag), and a private
    profile declaring its classes, the site's own among them."""
    module = tree.environment("production") / "modules" / "apache"
    shutil.copytree(published, module)
    if checksums:
        forge_checksums(module)
    make_module(tree.environment("production") / "site", "profile", "acme-profile", manifests={
        "web.pp": f"class profile::web {{ include apache, apache::{SECRET}, apache::vhost, apache::mod::ssl\n"
                  "  include apache::inlined, apache::vhost::acmeedited }\n",
    })
    write(tree.environment("production") / "environment.conf", "modulepath = site:modules:$basemodulepath\n")
    return module


def preview(tree: PuppetTree, server: Any, *more: str) -> Tuple[Dict[str, Any], List[Result]]:
    """Both previews with a Forge refresh from ``server``; the JSON's values and the runs."""
    runs = [tree.run("--update", "--forge-api", server.url, *more, "preview", *fmt)
            for fmt in (("--format", "json"), ())]
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr
    snapshots = json.loads(runs[0].stdout)["self-service-analytics"]["snapshots"]
    return {column: snapshot["value"] for column, snapshot in snapshots.items()}, runs


def evidence_warnings(run: Result) -> List[str]:
    """The warnings about release evidence (the Forge list's own are not these tests' concern)."""
    return [line for line in run.stderr.splitlines()
            if line.startswith("dropsonde: warning:") and "evidence" in line]
