"""``dev inventory``: everything dropsonde sees, for the admin's eyes only.

Never sent anywhere. It exists so an admin can check *why* a module is or is
not reported (public on the Forge, renamed fork, no metadata...), whether the
Forge's published release of a public module is known (the only proof that
its classes are public; without it, only the main class is reportable), which
of its classes may be reported and which of its manifests are not the
published files and why, and what the profiles metric will count, before
trusting the preview. Every verdict comes from :mod:`dropsonde.publicness`.
"""

from __future__ import annotations

from typing import Any, Dict, List

from dropsonde.release_evidence import EVIDENCE_FILENAME
from dropsonde.site import Site
from dropsonde.terminal import printable


def build_inventory(site: Site) -> Dict[str, Any]:
    """Environments, modules with their public/private verdict, classes and declarations."""
    public_classes = site.public_classes
    modules: List[Dict[str, Any]] = []
    for module in site.modules:
        publicity = site.publicity(module)
        definitions = site.definitions(module)
        entry: Dict[str, Any] = {
            "name": module.name,
            "path": str(module.path),
            "slug": module.slug,
            "version": module.version,
            "public": publicity.public,
            "reason": publicity.reason,
            "classes": [d.name for d in definitions if d.kind == "class"],
            "defined_types": [d.name for d in definitions if d.kind == "define"],
            "public_classes": sorted(site.public_classes_of(module)),
            "private_manifests": site.private_manifests(module),
        }
        if publicity.public:
            entry["release_evidence"] = site.publicness.release(module)[1]
        if not publicity.public:
            entry["declares_public_classes"] = {
                d.name: [name for name in d.declares if name in public_classes]
                for d in definitions
                if d.kind == "class" and any(name in public_classes for name in d.declares)
            }
        modules.append(entry)
    usage = site.class_usage
    puppetdb = site.puppetdb
    return {
        "puppetdb": {
            "configured": puppetdb is not None,
            "server_urls": puppetdb.config.server_urls if puppetdb else [],
            "answered_by": puppetdb.answered_by if puppetdb else None,
            "failures": puppetdb.failures if puppetdb else [],
            "declared_classes": len(usage.classes) if usage else None,
        },
        "forge_cache": {
            "path": str(site.forge.path),
            "modules": len(site.forge.modules),
            "timestamp": site.forge.timestamp,
            "problem": site.forge.problem,
        },
        "release_evidence": {
            "path": str(site.cache / EVIDENCE_FILENAME),
            "releases": len(site.evidence.releases),
            "unavailable": len(site.evidence.unavailable),
            "problem": site.evidence.problem,
        },
        "environments": [
            {
                "name": env.name,
                "path": str(env.path),
                "modulepath": [str(p) for p in env.modulepath],
                "modules": [str(m.path) for m in env.modules],
                "puppetfile": env.puppetfile.is_file(),
            }
            for env in site.environments
        ],
        "modules": modules,
    }


def render_inventory(inventory: Dict[str, Any]) -> str:
    """The inventory as text for a terminal. Every value from the site (file and
    directory names, reasons quoting them, PuppetDB failures) is escaped to one
    line before the lines are assembled: a file named ``x\ndropsonde: error: ...``
    must not print a line of its own."""
    p = printable
    forge = inventory["forge_cache"]
    lines = ["dropsonde inventory (local only; never sent)", ""]
    lines.append(f"Forge cache: {p(forge['path'])}: {forge['modules']} modules, "
                 f"updated {p(forge['timestamp'] or 'never')}")
    if forge["problem"]:
        lines.append(f"  {p(forge['problem'])}: nothing is public")
    evidence = inventory["release_evidence"]
    lines.append(f"Release evidence: {p(evidence['path'])}: {evidence['releases']} releases proven, "
                 f"{evidence['unavailable']} unavailable")
    if evidence["problem"]:
        lines.append(f"  {p(evidence['problem'])}: only main classes are reportable")
    puppetdb = inventory["puppetdb"]
    if not puppetdb["configured"]:
        lines.append("PuppetDB: not configured (no puppetdb.conf)")
    elif puppetdb["answered_by"]:
        lines.append(f"PuppetDB: {p(puppetdb['answered_by'])} answered; {puppetdb['declared_classes']} classes declared")
    else:
        lines.append(f"PuppetDB: no server answered ({p('; '.join(puppetdb['failures']))})")
    for failure in puppetdb["failures"] if puppetdb["answered_by"] else []:
        lines.append(f"  skipped: {p(failure)}")
    lines += ["", f"Environments ({len(inventory['environments'])}):"]
    for env in inventory["environments"]:
        lines.append(f"  {p(env['name'])}  ({len(env['modules'])} modules)  {p(env['path'])}")
        lines.append(f"    modulepath: {p(':'.join(env['modulepath']))}")
    lines += ["", f"Modules ({len(inventory['modules'])} distinct directories):"]
    for module in inventory["modules"]:
        verdict = "public " if module["public"] else "private"
        lines.append(f"  [{verdict}] {p(module['name'])} {p(module['version'] or '')}  {p(module['path'])}")
        lines.append(f"      why: {p(module['reason'])}")
        if module["classes"]:
            lines.append(f"      classes: {p(', '.join(module['classes']))}")
        if module["defined_types"]:
            lines.append(f"      defined types: {p(', '.join(module['defined_types']))}")
        if module["public"]:
            lines.append(f"      release evidence: {p(module['release_evidence'])}")
            lines.append(f"      reported classes: {p(', '.join(module['public_classes']) or '(none)')}")
        for relative, reason in sorted(module["private_manifests"].items()):
            lines.append(f"      private, not the published file: {p(relative)}: {p(reason)}")
        for name, declared in module.get("declares_public_classes", {}).items():
            lines.append(f"      {p(name)} declares public: {p(', '.join(declared))}")
    return "\n".join(lines) + "\n"
