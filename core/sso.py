"""Single sign-on with the company's OpenID Connect issuer (Google Workspace, Entra ID, Okta,
Keycloak): authorization code with PKCE and a nonce, through Authlib; the ID token checked with
joserfc against the issuer's published keys (fetched again when it rotates them).

A sign-in is bound to the browser that started it (the state is also in a cookie of ours),
used once, within ten minutes. The person is matched to a user of an org by their e-mail,
which the issuer must say is verified. Nothing here knows about HTTP frameworks.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlmodel import Session, delete, select, update

from core.auth import AuthFailed, digest, same_secret
from core.errors import ConfigError, TransientError
from core.models import SignInState, User, as_utc, utcnow
from core.oauth import tls_verify
from core.settings import Settings

SIGN_IN_TTL = timedelta(minutes=10)
LEEWAY_S = 60  # clock skew tolerated on exp / iat
_CACHE_S = 3600
_discovered: dict[str, tuple[float, dict]] = {}
_key_sets: dict[str, tuple[float, dict]] = {}


@dataclass(frozen=True)
class Started:
    """Where to send the browser, and the state to keep in its cookie."""

    url: str
    state: str


def configured(settings: Settings) -> bool:
    oidc = settings.oidc
    return bool(oidc.issuer and oidc.client_id and oidc.client_secret)


def _oidc(settings: Settings):
    oidc = settings.oidc
    if not configured(settings):
        raise ConfigError("single sign-on is not set up: set COACHLOOP_OIDC__ISSUER, "
                          "COACHLOOP_OIDC__CLIENT_ID and COACHLOOP_OIDC__CLIENT_SECRET")
    return oidc


def redirect_uri(settings: Settings) -> str:
    return f"{settings.public_url.rstrip('/')}/auth/oidc/callback"


def _get_json(url: str, settings: Settings) -> dict:
    try:
        response = httpx.get(url, timeout=15, verify=tls_verify(settings.ca_bundle or True),
                             headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise TransientError(f"the identity provider cannot be reached "
                             f"({type(exc).__name__})") from None
    if response.status_code != 200:
        raise TransientError(f"the identity provider answered {response.status_code} for "
                             f"{httpx.URL(url).path}")
    return response.json()


def discover(settings: Settings, *, fresh: bool = False) -> dict:
    """The issuer's discovery document (cached an hour); its `issuer` must be ours."""
    issuer = _oidc(settings).issuer.rstrip("/")
    cached = _discovered.get(issuer)
    if cached and not fresh and time.monotonic() - cached[0] < _CACHE_S:
        return cached[1]
    document = _get_json(f"{issuer}/.well-known/openid-configuration", settings)
    if document.get("issuer", "").rstrip("/") != issuer:
        raise ConfigError(f"the identity provider says its issuer is "
                          f"{document.get('issuer')!r}, not {issuer!r}: check "
                          "COACHLOOP_OIDC__ISSUER")
    _discovered[issuer] = (time.monotonic(), document)
    return document


def _keys(settings: Settings, *, fresh: bool = False):
    from joserfc.jwk import KeySet

    uri = discover(settings)["jwks_uri"]
    cached = _key_sets.get(uri)
    if cached is None or fresh or time.monotonic() - cached[0] >= _CACHE_S:
        cached = (time.monotonic(), _get_json(uri, settings))
        _key_sets[uri] = cached
    return KeySet.import_key_set(cached[1])


def _client(settings: Settings):
    from authlib.integrations.httpx_client import OAuth2Client

    oidc = _oidc(settings)
    return OAuth2Client(client_id=oidc.client_id,
                        client_secret=oidc.client_secret.get_secret_value(),
                        scope=" ".join(oidc.scopes), redirect_uri=redirect_uri(settings),
                        code_challenge_method="S256", timeout=15,
                        verify=tls_verify(settings.ca_bundle or True))


def start(session: Session, settings: Settings, cipher) -> Started:
    """Begin a sign-in: the issuer's authorize URL (PKCE S256, state, nonce)."""
    session.exec(delete(SignInState).where(
        (SignInState.created_at < utcnow() - SIGN_IN_TTL) | SignInState.used_at.is_not(None)))
    document = discover(settings)
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)
    with _client(settings) as client:
        url, _ = client.create_authorization_url(document["authorization_endpoint"],
                                                 state=state, nonce=nonce,
                                                 code_verifier=verifier)
    session.add(SignInState(state_hash=digest(state), nonce_hash=digest(nonce),
                            verifier_ciphertext=cipher.encrypt({"v": verifier})))
    return Started(url, state)


def finish(session: Session, settings: Settings, cipher, *, code: str, state: str,
           browser_state: str | None) -> User:
    """Complete a sign-in from the issuer's callback: the user it signs in, or AuthFailed
    saying why (never which secret was wrong)."""
    if not browser_state or not same_secret(state, digest(browser_state)):
        raise AuthFailed("this sign-in was not started in this browser: start again")
    row = session.exec(select(SignInState).where(
        SignInState.state_hash == digest(state))).first()
    if row is None or as_utc(row.created_at) + SIGN_IN_TTL < utcnow():
        raise AuthFailed("this sign-in expired or is unknown: start again")
    won = session.exec(update(SignInState).where(SignInState.id == row.id,
                                                 SignInState.used_at.is_(None))
                       .values(used_at=utcnow()))
    if won.rowcount != 1:
        raise AuthFailed("this sign-in was already used: start again")
    session.commit()
    verifier = cipher.decrypt(row.verifier_ciphertext)["v"]
    document = discover(settings)
    with _client(settings) as client:
        try:
            tokens = client.fetch_token(document["token_endpoint"], code=code,
                                        code_verifier=verifier,
                                        redirect_uri=redirect_uri(settings))
        except Exception as exc:  # the issuer refused the code: say so, not its internals
            raise AuthFailed(f"the identity provider refused the sign-in "
                             f"({getattr(exc, 'error', None) or type(exc).__name__}): "
                             "start again") from None
    id_token = tokens.get("id_token")
    if not id_token:
        raise AuthFailed("the identity provider sent no ID token")
    claims = verify_id_token(id_token, settings, nonce_hash=row.nonce_hash)
    return _user_for(session, claims)


def verify_id_token(id_token: str, settings: Settings, *, nonce_hash: str) -> dict:
    """The ID token's claims, if it is signed by the issuer's published key (RS256/ES256,
    never `none` or a shared secret), for us, current, from our issuer, carrying our nonce."""
    from joserfc import jwt
    from joserfc.errors import JoseError

    oidc = _oidc(settings)
    algorithms = ["RS256", "ES256", "PS256"]
    try:
        try:
            token = jwt.decode(id_token, _keys(settings), algorithms=algorithms)
        except JoseError:  # a key rotated since we fetched them: fetch once more
            token = jwt.decode(id_token, _keys(settings, fresh=True), algorithms=algorithms)
    except (JoseError, ValueError) as exc:
        raise AuthFailed(f"the ID token's signature does not verify against the identity "
                         f"provider's keys ({type(exc).__name__})") from None
    claims = token.claims
    registry = jwt.JWTClaimsRegistry(
        leeway=LEEWAY_S, iss={"essential": True, "value": discover(settings)["issuer"]},
        aud={"essential": True, "value": oidc.client_id},
        exp={"essential": True}, iat={"essential": True}, sub={"essential": True})
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise AuthFailed(f"the ID token was refused: {exc.description or exc.error}") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != oidc.client_id:
        raise AuthFailed("the ID token was refused: it is for several parties and not "
                         "authorised for us (azp)")
    if not isinstance(claims.get("nonce"), str) or not same_secret(claims["nonce"], nonce_hash):
        raise AuthFailed("the ID token was refused: its nonce is not this sign-in's "
                         "(a replayed token?)")
    return claims


def _user_for(session: Session, claims: dict) -> User:
    email = str(claims.get("email") or "").strip().lower()
    if not email:
        raise AuthFailed("the identity provider did not share an e-mail address (scope "
                         "`email`)")
    if claims.get("email_verified") is not True:
        raise AuthFailed(f"the identity provider has not verified {email}: coachloop matches "
                         "people by verified e-mail only")
    users = [u for u in session.exec(select(User).where(User.email == email))
             if not u.disabled]
    if not users:
        raise AuthFailed(f"{email} is not in any team here: ask an admin to add you to "
                         "the roster (team.yaml) or invite you")
    if len(users) > 1:
        raise AuthFailed(f"{email} is in several orgs here: ask an admin to keep one")
    return users[0]
