"""Salesforce: OAuth app description (the CRM writer arrives with issue 3)."""

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
                         verify=settings.ca_bundle or True)
