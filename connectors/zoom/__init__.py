"""Zoom: the OAuth app description. The recordings source is `connectors.zoom.source`
(imported on demand: it pulls in zoomus); webhook verification is `webhooks/zoom.py`."""

from __future__ import annotations

from core.errors import ConfigError
from core.oauth import OAuthProvider
from core.settings import Settings


def oauth_provider(settings: Settings) -> OAuthProvider:
    """Zoom's OAuth endpoints for our app; client auth is HTTP Basic."""
    zoom = settings.zoom
    if not zoom.client_id or zoom.client_secret is None:
        raise ConfigError("Zoom is not configured: set COACHLOOP_ZOOM__CLIENT_ID and "
                          "COACHLOOP_ZOOM__CLIENT_SECRET (Zoom Marketplace → your app → "
                          "App Credentials)")
    base = zoom.oauth_base.rstrip("/")
    return OAuthProvider(name="zoom", authorize_url=f"{base}/oauth/authorize",
                         token_url=f"{base}/oauth/token", client_id=zoom.client_id,
                         client_secret=zoom.client_secret.get_secret_value(),
                         scopes=tuple(zoom.scopes), client_auth="basic",
                         verify=settings.ca_bundle or True,
                         identify=lambda token: _account_of(token, settings),
                         # Zoom revokes with the access token; doing so deauthorizes the app
                         # for that user (every token of the grant ends).
                         revoke_url=f"{base}/oauth/revoke", revoke_token="access_token")


def probe(connection_id: int, settings: Settings) -> str:
    """One cheap authenticated call (`GET /users/me`) through the connection's tokens and the
    source's own client; returns who the connection acts as. Raises the classified error."""
    from connectors.zoom.source import ZoomSource

    source = ZoomSource.for_connection(connection_id, settings)
    try:
        me = source.api.me()
    finally:
        source.close()
    return str(me.get("email") or me.get("id") or "")


def api_origin(settings: Settings, instance_url: str | None = None) -> str:
    """The server a Zoom connection's API calls go to (for "cannot be reached" messages)."""
    return settings.zoom.api_base


def _account_of(access_token: str, settings: Settings) -> str:
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
    meetings created or updated (to transcribe). `on_item(item, result)` sees every record or
    problem as it goes (result None for problems)."""
    from connectors.base import SourceProblem
    from connectors.zoom.source import ZoomSource
    from core.db import session_scope
    from core.ingest import ingest_record
    from core.models import Org

    source = ZoomSource.for_org(org_id)
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
