"""App-only tokens for a consented tenant, minted by msal (client credentials, with a secret
or a certificate).

The token vault (`core.connections.TokenVault`) is the one cache: it keeps each tenant's
token encrypted in the database, shared by every worker, and asks for a new one here when
it is about to expire. So each call builds a `ConfidentialClientApplication` with an empty
token cache: msal then speaks the protocol (OIDC discovery against the configured authority,
the signed client assertion for certificates, Entra's error answers) and always asks Entra.
`instance_discovery=False`: msal talks to the configured authority host and no other.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from core.connections import TENANT_ID
from core.errors import ConfigError, InputError, TransientError
from core.oauth import AuthRefused, TokenSet

if TYPE_CHECKING:
    from core.settings import Settings

# Entra's answers that need an admin (the app, its secret or the tenant's consent changed);
# anything else it refuses with is classified as transient only when it says so.
BUSY = ("temporarily_unavailable", "server_error")


def app_token(tenant: str, settings: Settings) -> TokenSet:
    """A new app-only Graph token for `tenant`, with the application permissions the tenant
    granted (`roles`) as its scopes. `AuthRefused` when Entra says no (consent removed,
    secret expired), `TransientError` when it cannot be reached or is busy."""
    import msal
    import requests

    from core.models import utcnow

    own = settings.teams
    tenant = tenant.lower()
    if TENANT_ID.match(own.tenant.lower()) and tenant != own.tenant.lower():
        raise InputError(f"this coachloop connects only tenant {own.tenant} "
                         "(COACHLOOP_TEAMS__TENANT); that consent was for another tenant")
    http = requests.Session()
    http.trust_env = False  # REQUESTS_CA_BUNDLE would override our CA bundle
    http.verify = settings.ca_bundle or True
    try:
        app = msal.ConfidentialClientApplication(
            own.client_id, client_credential=_credential(own),
            authority=f"{own.authority_base.rstrip('/')}/{tenant}", instance_discovery=False,
            http_client=http, token_cache=msal.TokenCache(), timeout=30)
        started = utcnow()
        result = app.acquire_token_for_client(scopes=list(own.scopes))
    except requests.RequestException as exc:
        raise TransientError(f"Microsoft Entra ID could not be reached ({type(exc).__name__})"
                             ) from None
    except ValueError as exc:  # msal: OIDC discovery refused, i.e. no such tenant
        raise AuthRefused(f"Microsoft Entra ID does not know tenant {tenant} "
                          f"({_first_line(str(exc))})") from None
    finally:
        http.close()
    if "access_token" not in result:
        error = str(result.get("error") or "")
        said = _first_line(str(result.get("error_description") or error or "no reason"))
        if error in BUSY:
            raise TransientError(f"Microsoft Entra ID is busy: {said}")
        raise AuthRefused(f"Microsoft Entra ID refused coachloop's app for tenant {tenant}: "
                          f"{said}")
    claims = _claims(result["access_token"])
    return TokenSet(access_token=result["access_token"], refresh_token=None,
                    expires_at=started + timedelta(seconds=int(result.get("expires_in") or 3599)),
                    scopes=tuple(sorted(claims.get("roles") or ())), account_ref=tenant)


def _credential(own) -> str | dict:
    """The client secret, or the certificate's private key and certificate (msal signs a
    client assertion with it; `public_certificate` lets it compute the SHA-256 thumbprint)."""
    if own.client_certificate:
        pem = _certificate(own.client_certificate)
        key = re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----",
                        pem, re.S)
        certificate = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----",
                                pem, re.S)
        if not key or not certificate:
            raise ConfigError("COACHLOOP_TEAMS__CLIENT_CERTIFICATE must be a PEM file holding "
                              "the private key and the certificate")
        return {"private_key": key.group(0), "public_certificate": certificate.group(0)}
    if own.client_secret is None:
        raise ConfigError("set COACHLOOP_TEAMS__CLIENT_SECRET or "
                          "COACHLOOP_TEAMS__CLIENT_CERTIFICATE")
    return own.client_secret.get_secret_value()


def _certificate(path: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("cannot read COACHLOOP_TEAMS__CLIENT_CERTIFICATE "
                          f"({type(exc).__name__})") from None


def _claims(token: str) -> dict:
    """The claims of an access token, unverified (Graph verifies it; we only read which
    permissions it carries, to show them)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _first_line(text: str) -> str:
    """Entra's error_description without its trace and correlation ids."""
    return text.strip().splitlines()[0][:300] if text.strip() else ""
