"""Which vendors can be connected with OAuth, by name."""

from __future__ import annotations

from core.errors import NotFound
from core.oauth import OAuthProvider
from core.settings import Settings

OAUTH_PROVIDERS = ("zoom", "salesforce")


def oauth_provider(name: str, settings: Settings) -> OAuthProvider:
    """The OAuth description of vendor `name` from settings (ConfigError says what's missing)."""
    if name == "zoom":
        from connectors.zoom import oauth_provider as zoom
        return zoom(settings)
    if name == "salesforce":
        from connectors.salesforce import oauth_provider as salesforce
        return salesforce(settings)
    raise NotFound(f"no OAuth provider {name!r} (available: {', '.join(OAUTH_PROVIDERS)})")
