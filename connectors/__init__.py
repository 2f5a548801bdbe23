"""Connectors to external systems, found by name through the `coachloop.connectors` entry points.

Built-in connectors register in our own pyproject.toml exactly as a third-party package would
register its own, so `load_source("files")` and `load_source("acme")` take the same path.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, PackageNotFoundError, distribution, entry_points

from connectors.base import MeetingSource
from core.errors import ConfigError

ENTRY_POINT_GROUP = "coachloop.connectors"

# A copy of the `[project.entry-points."coachloop.connectors"]` table in pyproject.toml, used
# only while coachloop itself is not installed (running from a source checkout), when
# importlib.metadata cannot see that table. Keep the two in step.
_OWN_ENTRY_POINTS = {
    "files": "connectors.files:FilesSource",
    "zoom": "connectors.zoom.source:ZoomSource",
}


def available_sources() -> list[str]:
    """Names of every registered meeting source, sorted."""
    return sorted({entry.name for entry in _entry_points()})


def load_source(name: str) -> type[MeetingSource]:
    """The `MeetingSource` class registered as `name`; `ConfigError` if none or ambiguous."""
    matches = {entry.value: entry for entry in _entry_points() if entry.name == name}
    if not matches:
        known = ", ".join(available_sources()) or "none"
        raise ConfigError(f"no meeting source named '{name}' in the entry-point group "
                          f"'{ENTRY_POINT_GROUP}' (registered: {known})")
    if len(matches) > 1:
        raise ConfigError(f"meeting source '{name}' is registered more than once in "
                          f"'{ENTRY_POINT_GROUP}': {', '.join(sorted(matches))}")
    (entry,) = matches.values()
    try:
        loaded = entry.load()
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"meeting source '{name}' is registered as '{entry.value}', "
                          f"which cannot be imported: {exc}") from exc
    if not (isinstance(loaded, type) and issubclass(loaded, MeetingSource)):
        raise ConfigError(f"meeting source '{name}' ('{entry.value}') is not a MeetingSource "
                          "subclass")
    return loaded


def _entry_points() -> list[EntryPoint]:
    found = list(entry_points(group=ENTRY_POINT_GROUP))
    try:
        distribution("coachloop")
    except PackageNotFoundError:
        found += [EntryPoint(name, value, ENTRY_POINT_GROUP)
                  for name, value in _OWN_ENTRY_POINTS.items()]
    return found
