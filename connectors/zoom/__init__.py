"""Zoom: its descriptor (`vendor.yaml`: OAuth app, source, webhooks, poll), the connection
probe and the poll. The recordings source is `connectors.zoom.source` (imported on demand: it
pulls in zoomus); webhook verification is `connectors.zoom.webhooks`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.vendors import Vendor

if TYPE_CHECKING:
    from core.settings import Settings

VENDOR = Vendor.from_file(__file__)


def probe(connection_id: int, settings: Settings) -> str:
    """One cheap authenticated call (`GET /users/me`) through the connection's tokens and the
    source's own client; returns who the connection acts as, and says so when the grant has
    no `:admin` scope (a user-managed app: it reads that user's recordings only). Raises the
    classified error."""
    from connectors.zoom.source import ZoomSource
    from core.db import session_scope
    from core.models import Connection

    source = ZoomSource.for_connection(connection_id, settings)
    try:
        me = source.api.me()
    finally:
        source.close()
    who = str(me.get("email") or me.get("id") or "")
    with session_scope() as session:
        scopes = session.get(Connection, connection_id).scopes or []
    if scopes and not any(scope.endswith(":admin") for scope in scopes):
        who += (" · user-managed app: reads only this user's recordings (an admin-managed "
                "app reads every rep's)")
    return who


def account_of(access_token: str, settings: Settings) -> str:
    """The Zoom account a user token belongs to (`GET /users/me`): webhooks name accounts."""
    import httpx

    from core.errors import TransientError
    from core.oauth import tls_verify

    try:
        answer = httpx.get(f"{settings.zoom.api_base.rstrip('/')}/users/me", timeout=15,
                           headers={"Authorization": f"Bearer {access_token}"},
                           verify=tls_verify(settings.ca_bundle or True), trust_env=False)
    except httpx.HTTPError as exc:
        raise TransientError(f"cannot reach Zoom to identify the account ({type(exc).__name__})"
                             ) from None
    if answer.status_code != 200:
        return ""  # connected, but webhooks will only match it while it is the only one
    return str(answer.json().get("account_id") or "")


def poll(org_id: int, *, since=None, progress=None, on_item=None) -> list[int]:
    """Ingest the org's Zoom recordings since the last sync (or `since`); returns the ids of
    meetings created or updated (to transcribe)."""
    from connectors import poll_source
    from connectors.zoom.source import ZoomSource

    return poll_source(ZoomSource.for_org(org_id), org_id, since=since, progress=progress,
                       on_item=on_item)
