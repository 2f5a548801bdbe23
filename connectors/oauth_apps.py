"""Which vendors can be connected with OAuth, by name."""

from __future__ import annotations

from core.connections import TokenVault
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


def token_vault(settings: Settings) -> TokenVault:
    """The token vault for every connection, refreshing through each vendor's OAuth app."""
    from core.crypto import cipher_from_settings

    return TokenVault(lambda name: oauth_provider(name, settings), cipher_from_settings(settings))


def start_connect(provider: str, org_id: int, settings: Settings) -> str:
    """Begin connecting `provider` for an org: the vendor consent URL, which sends the admin
    back to `{public_url}/connect/{provider}/callback` (the API route)."""
    from core.connections import begin_connect
    from core.crypto import cipher_from_settings

    redirect_uri = f"{settings.public_url.rstrip('/')}/connect/{provider}/callback"
    return begin_connect(oauth_provider(provider, settings), org_id=org_id,
                         redirect_uri=redirect_uri, cipher=cipher_from_settings(settings))


def connect_following_consent(provider: str, org_id: int, settings: Settings,
                              callback_url: str | None = None):
    """Run the connect flow without a browser: follow the consent page ourselves (sandbox
    vendors consent on their own), or finish from a `callback_url` pasted by the admin."""
    from urllib.parse import parse_qs, urlparse

    import httpx

    from core.connections import finish_connect
    from core.crypto import cipher_from_settings
    from core.errors import CoachloopError
    from core.oauth import tls_verify

    oauth = oauth_provider(provider, settings)
    cipher = cipher_from_settings(settings)
    if callback_url is None:
        url = start_connect(provider, org_id, settings)
        callback_url = httpx.get(url, verify=tls_verify(oauth.verify)).headers.get("location")
    query = parse_qs(urlparse(callback_url or "").query)
    if "error" in query:
        raise CoachloopError(f"{provider} sign-in was not completed: "
                             f"{query.get('error_description', query['error'])[0]}")
    if "code" not in query or "state" not in query:
        raise CoachloopError("that address has no code and state in it")
    return finish_connect(oauth, code=query["code"][0], state=query["state"][0], cipher=cipher)
