"""Connectors to external systems, found by vendor name through `core.vendors` (the
`coachloop.vendors` entry points).

Built-in vendors register in our own pyproject.toml exactly as a third-party package would
register its own, so `load_source("files")` and `load_source("acme")` take the same path.
"""

from __future__ import annotations

from connectors.base import MeetingSource
from core.errors import ConfigError, NotFound
from core.vendors import ENTRY_POINT_GROUP, vendors, with_a


def available_sources() -> list[str]:
    """Names of every registered meeting source, sorted."""
    return sorted(vendor.name for vendor in with_a("source"))


def load_source(name: str) -> type[MeetingSource]:
    """The `MeetingSource` class of vendor `name`; `ConfigError` if none or broken."""
    vendor = vendors().get(name)
    if vendor is None or vendor.source is None:
        known = ", ".join(available_sources()) or "none"
        raise ConfigError(f"no meeting source named '{name}' in the entry-point group "
                          f"'{ENTRY_POINT_GROUP}' (registered: {known})")
    try:
        loaded = vendor.load("source")
    except (ImportError, AttributeError, NotFound) as exc:
        raise ConfigError(f"meeting source '{name}' is registered as '{vendor.source}', "
                          f"which cannot be imported: {exc}") from exc
    if not (isinstance(loaded, type) and issubclass(loaded, MeetingSource)):
        raise ConfigError(f"meeting source '{name}' ('{vendor.source}') is not a MeetingSource "
                          "subclass")
    return loaded
