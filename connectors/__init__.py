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


def poll_source(source: MeetingSource, org_id: int, *, since=None, progress=None,
                on_item=None) -> list[int]:
    """Ingest what `source` lists for the org (since its cursors, or `since`) and close it;
    returns the ids of meetings created or updated (to transcribe). `on_item(item, result)`
    sees every record or problem as it goes (result None for problems)."""
    from connectors.base import SourceProblem
    from core.db import session_scope
    from core.ingest import ingest_record
    from core.models import Org

    started = []
    try:
        for item in source.list_meetings(since, progress=progress):
            if isinstance(item, SourceProblem):
                if on_item:
                    on_item(item, None)
                continue
            with session_scope() as session:
                result = ingest_record(session, session.get(Org, org_id), item)
            if result.outcome in ("created", "updated"):
                started.append(result.meeting_id)
            if on_item:
                on_item(item, result)
    finally:
        source.close()
    return started
