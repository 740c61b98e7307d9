"""Finding metrics plugins through the ``dropsonde.metrics`` entry-point group
and choosing the enabled ones; always in alphabetical order."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from dropsonde.errors import DropsondeError
from dropsonde.metrics.base import MetricPlugin

ENTRY_POINT_GROUP = "dropsonde.metrics"

log = logging.getLogger(__name__)


@dataclass
class PluginSet:
    """The enabled plugins, the disabled ones, and those that failed to load."""

    enabled: List[MetricPlugin] = field(default_factory=list)
    disabled: List[str] = field(default_factory=list)
    broken: Dict[str, str] = field(default_factory=dict)


def _entry_points() -> list:
    from importlib.metadata import entry_points

    if sys.version_info >= (3, 10):
        return list(entry_points(group=ENTRY_POINT_GROUP))
    return list(entry_points().get(ENTRY_POINT_GROUP, []))


def _load(entry_point) -> MetricPlugin:
    plugin_class = entry_point.load()
    plugin = plugin_class()
    if not isinstance(plugin, MetricPlugin):
        raise TypeError(f"{entry_point.value} is not a dropsonde MetricPlugin")
    plugin.name = entry_point.name
    return plugin


def load_plugins(enable: Optional[Sequence[str]] = None, disable: Optional[Sequence[str]] = None) -> PluginSet:
    """Plugins chosen by ``--enable`` (only these, when given) and ``--disable``.

    An unknown name is an error listing the known ones, so a typo cannot
    silently send more than the admin meant.
    """
    found = {ep.name: ep for ep in sorted(_entry_points(), key=lambda ep: ep.name)}
    known = sorted(found)
    for name in list(enable or []) + list(disable or []):
        if name not in found:
            raise DropsondeError(f"unknown plugin '{name}' (known plugins: {', '.join(known)})")
    wanted = set(enable) if enable else set(known)
    wanted -= set(disable or [])
    plugins = PluginSet(disabled=[name for name in known if name not in wanted])
    for name in known:
        if name not in wanted:
            continue
        try:
            plugins.enabled.append(_load(found[name]))
        except Exception as exc:  # a third-party plugin must not break the run
            log.warning("plugin %s could not be loaded: %s", name, exc)
            plugins.broken[name] = f"{type(exc).__name__}: {exc}"
    return plugins
