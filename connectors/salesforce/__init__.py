"""Salesforce: the OAuth app, and the CRM writer for an org's connection."""

from __future__ import annotations

from core.errors import ConfigError
from core.oauth import OAuthProvider
from core.settings import Settings


def oauth_provider(settings: Settings) -> OAuthProvider:
    """Salesforce's web-server flow with PKCE; the client authenticates in the body."""
    sf = settings.salesforce
    if not sf.client_id or sf.client_secret is None:
        raise ConfigError("Salesforce is not configured: set COACHLOOP_SALESFORCE__CLIENT_ID "
                          "and COACHLOOP_SALESFORCE__CLIENT_SECRET (Setup → External Client "
                          "App Manager → your app → OAuth settings)")
    base = sf.login_url.rstrip("/")
    return OAuthProvider(name="salesforce", authorize_url=f"{base}/services/oauth2/authorize",
                         token_url=f"{base}/services/oauth2/token", client_id=sf.client_id,
                         client_secret=sf.client_secret.get_secret_value(),
                         scopes=tuple(sf.scopes), client_auth="body",
                         default_lifetime_s=sf.session_lifetime_s,
                         verify=settings.ca_bundle or True,
                         # The refresh token revokes its access tokens with it.
                         revoke_url=f"{base}/services/oauth2/revoke",
                         revoke_token="refresh_token")


def probe(connection_id: int, settings: Settings) -> str:
    """One cheap authenticated call (`GET /services/data/vXX.X/limits`) through the
    connection's tokens and the writer's own client; returns the daily API calls left."""
    from connectors.oauth_apps import token_vault
    from connectors.salesforce.writer import SalesforceWriter

    writer = SalesforceWriter.for_connection(connection_id, token_vault(settings),
                                             verify=settings.ca_bundle or True,
                                             version=settings.salesforce.api_version)
    writer.call_retries = 0  # a status check reports what it sees; it does not wait it out
    try:
        limits = writer.check() or {}
    finally:
        writer.close()
    daily = limits.get("DailyApiRequests") or {}
    if "Remaining" in daily and "Max" in daily and daily["Max"]:
        share = 1 - daily["Remaining"] / daily["Max"]
        sf = settings.salesforce
        pace = ("; write-back paused until tomorrow (UTC)" if share >= sf.quota_stop_share
                else f"; write-back slowed to once every {sf.quota_slow_minutes:g} min"
                if share >= sf.quota_slow_share else "")
        return (f"{daily['Remaining']:,} of {daily['Max']:,} API calls left today "
                f"({share:.0%} used){pace}")
    return ""


def api_origin(settings: Settings, instance_url: str | None = None) -> str:
    """The server a Salesforce connection's API calls go to: its instance (My Domain)."""
    return instance_url or settings.salesforce.login_url


def writer_for_org(org_id: int, settings: Settings):
    """The Salesforce writer for the org's active connection (ConfigError if there is none)."""
    from connectors.oauth_apps import token_vault
    from connectors.salesforce.writer import SalesforceWriter
    from core.connections import active_connection_id

    connection_id = active_connection_id(org_id, "salesforce")
    return SalesforceWriter.for_connection(connection_id, token_vault(settings),
                                           verify=settings.ca_bundle or True,
                                           version=settings.salesforce.api_version)


def mapping_from_settings(settings: Settings):
    """The configured mapping: a built-in name or a file path."""
    from pathlib import Path

    from mappings import builtin_mapping, load_mapping

    name = settings.salesforce.mapping
    if name.endswith((".yaml", ".yml")) or Path(name).is_file():
        return load_mapping(name)
    return builtin_mapping(name)
