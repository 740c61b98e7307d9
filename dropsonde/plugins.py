"""Finding metrics plugins and choosing the enabled ones; always in alphabetical order.

The built-in plugins are registered here, in code (as Datasette registers its
default plugins), so they are found even where dropsonde runs without package
metadata (a source checkout on ``PYTHONPATH``, a distribution package that
ships no ``dist-info``). Third-party plugins are found through the
``dropsonde.metrics.v1`` entry-point group, and the group's first,
unversioned name ``dropsonde.metrics`` is still read so existing plugins keep
working. Built-ins and third-party plugins are loaded the same way, as
entry points: the built-ins exercise the plugin API on every run.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint
from typing import Dict, List, Optional, Sequence

from dropsonde.errors import BadInput, Failure
from dropsonde.metrics.base import MetricPlugin

ENTRY_POINT_GROUP = "dropsonde.metrics.v1"
# Older names of the group, still read; the versioned one wins when a plugin is under both.
LEGACY_ENTRY_POINT_GROUPS = ("dropsonde.metrics",)

BUILTIN_PLUGINS: Dict[str, str] = {
    "dependencies": "dropsonde.metrics.dependencies:Dependencies",
    "environments": "dropsonde.metrics.environments:Environments",
    "modules": "dropsonde.metrics.modules:Modules",
    "platforms": "dropsonde.metrics.platforms:Platforms",
    "profiles": "dropsonde.metrics.profiles:Profiles",
    "puppetfiles": "dropsonde.metrics.puppetfiles:Puppetfiles",
}

log = logging.getLogger(__name__)


@dataclass
class PluginSet:
    """The enabled plugins, the disabled ones, and those that failed to load."""

    enabled: List[MetricPlugin] = field(default_factory=list)
    disabled: List[str] = field(default_factory=list)
    broken: Dict[str, str] = field(default_factory=dict)


def _group(name: str) -> List[EntryPoint]:
    from importlib.metadata import entry_points

    if sys.version_info >= (3, 10):
        return list(entry_points(group=name))
    return list(entry_points().get(name, []))


def available_plugins() -> Dict[str, EntryPoint]:
    """Every plugin by name: the built-ins, then third-party ones from the
    versioned group, then from the legacy group. A third-party plugin cannot
    replace a built-in (that would change what a built-in column means)."""
    found = {name: EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in BUILTIN_PLUGINS.items()}
    for group in (ENTRY_POINT_GROUP, *LEGACY_ENTRY_POINT_GROUPS):
        for entry_point in sorted(_group(group), key=lambda ep: (ep.name, ep.value)):
            if entry_point.name in BUILTIN_PLUGINS:
                if entry_point.value != BUILTIN_PLUGINS[entry_point.name]:
                    log.warning("plugin %s (%s) is ignored: a built-in plugin has that name",
                                entry_point.name, entry_point.value)
                continue
            found.setdefault(entry_point.name, entry_point)
    return dict(sorted(found.items()))


def _load(entry_point: EntryPoint) -> MetricPlugin:
    plugin_class = entry_point.load()
    plugin = plugin_class()
    if not isinstance(plugin, MetricPlugin):
        raise TypeError(f"{entry_point.value} is not a dropsonde MetricPlugin")
    plugin.name = entry_point.name
    return plugin


def load_plugins(enable: Optional[Sequence[str]] = None, disable: Optional[Sequence[str]] = None) -> PluginSet:
    """Plugins chosen by ``--enable`` (only these, when given) and ``--disable``.

    An unknown name is an error listing the known ones, so a typo cannot
    silently send more than the admin meant; so is a choice that leaves no
    plugin to run, which would make a report with nothing in it.
    """
    found = available_plugins()
    known = list(found)
    for name in list(enable or []) + list(disable or []):
        if name not in found:
            raise BadInput(f"unknown plugin '{name}' (known plugins: {', '.join(known)})")
    wanted = set(enable) if enable else set(known)
    wanted -= set(disable or [])
    if not wanted:
        raise BadInput(f"no metrics plugin is enabled (known plugins: {', '.join(known)})")
    plugins = PluginSet(disabled=[name for name in known if name not in wanted])
    for name in known:
        if name not in wanted:
            continue
        try:
            plugins.enabled.append(_load(found[name]))
        except Exception as exc:  # a third-party plugin must not break the run
            log.warning("plugin %s could not be loaded: %s: %s", name, type(exc).__name__, exc)
            plugins.broken[name] = type(exc).__name__  # shown by preview and list: no exception text
    if not plugins.enabled:
        raise Failure(f"no metrics plugin could be loaded ({', '.join(plugins.broken)})")
    return plugins
