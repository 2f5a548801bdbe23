"""OAuth 2.0 as our vendors speak it: authorization code with PKCE, refresh (with rotation),
client credentials; and the single-use `state` that ties a callback to the flow we started.

Vendors differ only in data (`OAuthProvider`): URLs, how the client authenticates, what the
token response lacks. Token endpoints' answers are classified here once: a refused grant is
`AuthRefused` (the connection needs a human), anything else transient is `TransientError`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlmodel import Session, select, update

from core.auth import digest
from core.errors import CoachloopError, InputError, Resolution, TransientError
from core.models import OAuthState, as_utc, utcnow

STATE_TTL = timedelta(minutes=10)


class AuthRefused(CoachloopError):
    """The vendor refused our credentials (revoked, rotated away, consent withdrawn)."""

    resolution = Resolution.AUTH


@dataclass(frozen=True)
class OAuthProvider:
    """How one vendor does OAuth. `client_auth`: "basic" (Zoom) or "body" (Salesforce)."""

    name: str
    authorize_url: str
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = ()
    client_auth: str = "body"
    pkce: bool = True
    default_lifetime_s: int | None = None  # when the token response has no expires_in
    verify: str | bool = True  # CA bundle for TLS (the sandbox's, in tests and the demo)
    # Who the token belongs to, for vendors whose token response does not say (Zoom):
    # access token → the vendor's account id. Webhooks are matched to connections by it.
    identify: Callable[[str], str] | None = field(default=None, repr=False, compare=False)
    # Revocation (RFC 7009 style): where, and which of our tokens ends the whole grant there
    # ("refresh_token": Salesforce revokes its access tokens with it; "access_token": Zoom
    # deauthorizes the app for that user). None: the vendor offers no revocation.
    revoke_url: str | None = None
    revoke_token: str = "refresh_token"
    revoke_with_client: bool = False  # the revocation request carries client id and secret
    # Asked for but not required (HubSpot's `optional_scope`): granted where the account can.
    optional_scopes: tuple[str, ...] = ()
    authorize_params: tuple[tuple[str, str], ...] = ()  # more query parameters to authorize
    # "admin_consent" (Microsoft Entra): the callback names a consented tenant instead of a
    # code, and `app_token(tenant)` mints app-only tokens for it (no refresh token).
    flow: str = "authorization_code"
    app_token: Callable[[str], TokenSet] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class TokenSet:
    """What a token endpoint gave us; secrets stay out of repr."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None
    scopes: tuple[str, ...] = ()
    instance_url: str | None = None
    account_ref: str = ""

    def fresh(self, margin: timedelta, now: datetime | None = None) -> bool:
        if self.expires_at is None:
            return True
        return (now or utcnow()) + margin < self.expires_at

    def to_secret(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "refresh_token": self.refresh_token}


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def start_authorization(session: Session, provider: OAuthProvider, *, org_id: int,
                        redirect_uri: str, cipher) -> str:
    """The vendor's authorize URL for a new flow; remembers state and PKCE verifier."""
    purge_states(session)
    state = secrets.token_urlsafe(32)
    verifier, challenge = pkce_pair() if provider.pkce and provider.flow == \
        "authorization_code" else (None, None)
    session.add(OAuthState(state_hash=digest(state), org_id=org_id, provider=provider.name,
                           redirect_uri=redirect_uri,
                           verifier_ciphertext=cipher.encrypt({"v": verifier}) if verifier else None))
    params = {"client_id": provider.client_id, "redirect_uri": redirect_uri, "state": state}
    if provider.flow == "authorization_code":
        params["response_type"] = "code"
    if provider.scopes:
        params["scope"] = " ".join(provider.scopes)
    if provider.optional_scopes:
        params["optional_scope"] = " ".join(provider.optional_scopes)
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(provider.authorize_params)
    return f"{provider.authorize_url}?{urlencode(params)}"


def purge_states(session: Session) -> int:
    """Delete states that expired or were used: they are worth nothing after that."""
    from sqlalchemy import delete

    result = session.exec(delete(OAuthState).where(
        (OAuthState.created_at < utcnow() - STATE_TTL) | OAuthState.used_at.is_not(None)))
    return result.rowcount or 0


@dataclass(frozen=True)
class ConsumedState:
    org_id: int
    redirect_uri: str
    code_verifier: str | None


def consume_state(session: Session, provider: OAuthProvider, state: str, cipher) -> ConsumedState:
    """Accept a callback's `state` once: unknown, expired, reused or cross-provider → InputError."""
    row = session.exec(select(OAuthState).where(OAuthState.state_hash == digest(state))).first()
    if row is None or row.provider != provider.name:
        raise InputError("unknown OAuth state: start the connection again", field="state")
    if as_utc(row.created_at) + STATE_TTL < utcnow():
        raise InputError("this sign-in took too long (over 10 minutes): start again",
                         field="state")
    claimed = session.exec(update(OAuthState).where(OAuthState.id == row.id,
                                                    OAuthState.used_at.is_(None))
                           .values(used_at=utcnow()))
    if claimed.rowcount != 1:  # a replayed or double-submitted callback
        raise InputError("this OAuth state was already used: start the connection again",
                         field="state")
    verifier = cipher.decrypt(row.verifier_ciphertext)["v"] if row.verifier_ciphertext else None
    return ConsumedState(row.org_id, row.redirect_uri, verifier)



def exchange_code(provider: OAuthProvider, code: str, consumed: ConsumedState,
                  now: datetime | None = None) -> TokenSet:
    data = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": consumed.redirect_uri}
    if consumed.code_verifier:
        data["code_verifier"] = consumed.code_verifier
    try:
        return _token_request(provider, data, now)
    except AuthRefused as exc:  # a wrong, expired or replayed code: the admin starts again
        raise InputError(f"{exc.message}; start the connection again", field="code") from None


def refresh(provider: OAuthProvider, refresh_token: str, now: datetime | None = None) -> TokenSet:
    """Use a refresh token; rotating vendors return a new one, which the caller must store."""
    return _token_request(provider, {"grant_type": "refresh_token",
                                     "refresh_token": refresh_token}, now)


def client_credentials(provider: OAuthProvider, extra: dict[str, str],
                       now: datetime | None = None) -> TokenSet:
    """Server-to-server tokens (Zoom `account_credentials`): no refresh token, mint anew."""
    return _token_request(provider, extra, now)


def revoke(provider: OAuthProvider, tokens: TokenSet) -> None:
    """Revoke the grant behind `tokens` at the vendor. Raises `TransientError` when the vendor
    cannot be reached or is down, `CoachloopError` when it refuses (the message says why,
    never the token); returns quietly when the vendor confirmed."""
    import httpx

    if provider.revoke_url is None:
        raise CoachloopError(f"{provider.name} offers no token revocation")
    token = (tokens.refresh_token if provider.revoke_token == "refresh_token" else None) \
        or tokens.access_token
    auth = (provider.client_id, provider.client_secret) \
        if provider.client_auth == "basic" else None
    data = {"token": token}
    if provider.revoke_with_client and auth is None:
        data.update(client_id=provider.client_id, client_secret=provider.client_secret)
    try:
        response = httpx.post(provider.revoke_url, data=data, auth=auth, timeout=15,
                              verify=tls_verify(provider.verify),
                              headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise TransientError(f"{provider.name} ({_origin(provider.revoke_url)}) cannot be "
                             f"reached ({type(exc).__name__})") from None
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientError(f"{provider.name} revocation endpoint answered "
                             f"{response.status_code}")
    if response.status_code != 200:
        raise CoachloopError(f"{provider.name} refused to revoke the token: "
                             f"{_refusal(response, _json_object(response))}")


def _json_object(response) -> dict:
    """The response's JSON object, or {} when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _refusal(response, body: dict) -> str:
    """What an OAuth server said when it refused (RFC 6749 error fields, or Zoom's reason)."""
    return body.get("error_description") or body.get("reason") or body.get("error") \
        or f"HTTP {response.status_code}"


def _origin(url: str) -> str:
    """scheme://host:port of a URL: enough to say which server, nothing from its query."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def tls_verify(verify: str | bool):
    """What httpx wants for `verify`: True/False, or an SSL context trusting a CA bundle."""
    if isinstance(verify, str):
        import ssl

        return ssl.create_default_context(cafile=verify)
    return verify


def _token_request(provider: OAuthProvider, data: dict[str, str],
                   now: datetime | None) -> TokenSet:
    """POST to the token endpoint; expiry is counted from `now` (the caller's clock)."""
    import httpx

    auth = None
    if provider.client_auth == "basic":
        auth = (provider.client_id, provider.client_secret)
    else:
        data = {**data, "client_id": provider.client_id, "client_secret": provider.client_secret}
    try:
        response = httpx.post(provider.token_url, data=data, auth=auth, timeout=30,
                              verify=tls_verify(provider.verify),
                              headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise TransientError(f"{provider.name} token endpoint unreachable "
                             f"({type(exc).__name__})") from None
    if response.status_code == 429 or response.status_code >= 500:
        from core.retry import retry_after

        raise TransientError(f"{provider.name} token endpoint answered {response.status_code}",
                             retry_after=retry_after(response.headers))
    body = _json_object(response)
    if response.status_code != 200 or "access_token" not in body:
        # Never echo the request: it carries the code, refresh token or client secret.
        raise AuthRefused(f"{provider.name} refused the grant: {_refusal(response, body)}")
    now = now or utcnow()
    lifetime = body.get("expires_in") or provider.default_lifetime_s
    scope = body.get("scope") or ""
    return TokenSet(access_token=body["access_token"], refresh_token=body.get("refresh_token"),
                    expires_at=now + timedelta(seconds=int(lifetime)) if lifetime else None,
                    scopes=tuple(scope.replace(",", " ").split()),
                    instance_url=body.get("instance_url"),
                    account_ref=str(body.get("account_id") or body.get("id") or ""))
