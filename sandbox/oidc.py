"""An OpenID Connect identity provider on loopback, as strict as Google Workspace, Entra ID,
Okta or Keycloak are about what they accept (OpenID Connect Core 1.0, Discovery 1.0, RFC 7636):

- `/.well-known/openid-configuration` with the issuer and every endpoint;
- `/authorize`: authorization code only, a registered redirect_uri, scope with `openid`,
  PKCE S256 required, state and nonce passed through; it "signs in" `sign_in_as`;
- `/token`: client_secret_basic or client_secret_post; the code works once, for its
  redirect_uri and code_verifier, within 60 s; ID tokens signed RS256 with a `kid` from
  `/jwks`; refresh tokens rotate;
- `/jwks`, with `rotate_keys()` to roll the signing key (the old one stays published until
  `drop_old_keys()`), as real issuers do.

Tests ask it for bad ID tokens (`tamper_next`): another audience, expired, signed with a key
it does not publish, an earlier nonce. Tokens are signed here with `cryptography` directly,
not with the library coachloop uses to check them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import Request  # at module level: the routes' annotations are strings

CODE_TTL_S = 60
ID_TOKEN_TTL_S = 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class _Key:
    kid: str
    private: rsa.RSAPrivateKey

    def public_jwk(self) -> dict:
        numbers = self.private.public_key().public_numbers()
        size = (numbers.n.bit_length() + 7) // 8
        return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                "n": _b64(numbers.n.to_bytes(size, "big")),
                "e": _b64(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big"))}

    def sign(self, claims: dict) -> str:
        header = _b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": self.kid}).encode())
        payload = _b64(json.dumps(claims).encode())
        signature = self.private.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(),
                                      hashes.SHA256())
        return f"{header}.{payload}.{_b64(signature)}"


def _new_key() -> _Key:
    return _Key(secrets.token_hex(6), rsa.generate_private_key(public_exponent=65537,
                                                               key_size=2048))


@dataclass
class Person:
    email: str
    name: str
    email_verified: bool = True
    sub: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass
class OidcSandbox:
    """The identity provider's state; `create_app()` serves it, `issuer` is its URL."""

    client_id: str = "coachloop-test-client"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    redirect_uris: list[str] = field(default_factory=list)
    issuer: str = ""
    people: dict[str, Person] = field(default_factory=dict)
    sign_in_as: str | None = None
    requests: Counter = field(default_factory=Counter)
    _keys: list[_Key] = field(default_factory=lambda: [_new_key()])
    _codes: dict[str, dict] = field(default_factory=dict)
    _refresh: dict[str, dict] = field(default_factory=dict)
    _tamper: dict = field(default_factory=dict)
    _nonces: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_person(self, email: str, name: str, *, verified: bool = True) -> Person:
        self.people[email] = Person(email, name, verified)
        return self.people[email]

    def rotate_keys(self) -> None:
        """Sign with a new key from now on; the old one stays published."""
        self._keys.insert(0, _new_key())

    def drop_old_keys(self) -> None:
        self._keys[1:] = []

    def tamper_next(self, **how) -> None:
        """The next ID token is bad: audience="x", expired=True, foreign_key=True,
        replay_nonce=True (an earlier login's nonce)."""
        self._tamper = how

    # ---------------------------------------------------------------------------------

    def discovery(self) -> dict:
        return {"issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                          "client_secret_post"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "email",
                                     "email_verified", "name"]}

    def _id_token(self, person: Person, nonce: str | None) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": person.sub, "aud": self.client_id,
                  "iat": now, "exp": now + ID_TOKEN_TTL_S, "auth_time": now,
                  "email": person.email, "email_verified": person.email_verified,
                  "name": person.name}
        if nonce is not None:
            claims["nonce"] = nonce
        how, self._tamper = self._tamper, {}
        if "audience" in how:
            claims["aud"] = how["audience"]
        if how.get("expired"):
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        if how.get("replay_nonce") and self._nonces:
            claims["nonce"] = self._nonces[0]
        if nonce:
            self._nonces.append(nonce)
        key = _new_key() if how.get("foreign_key") else self._keys[0]
        if how.get("foreign_key"):
            key.kid = self._keys[0].kid  # claims to be ours; the signature says otherwise
        return key.sign(claims)

    def create_app(self):
        from fastapi import FastAPI
        from fastapi.responses import JSONResponse, RedirectResponse

        app = FastAPI()
        box = self

        def oauth_error(error: str, description: str, status: int = 400):
            return JSONResponse({"error": error, "error_description": description},
                                status_code=status,
                                headers={"Cache-Control": "no-store"})

        @app.get("/.well-known/openid-configuration")
        async def discovery():
            box.requests["GET /.well-known/openid-configuration"] += 1
            return box.discovery()

        @app.get("/jwks")
        async def jwks():
            box.requests["GET /jwks"] += 1
            return {"keys": [k.public_jwk() for k in box._keys]}

        @app.get("/authorize")
        async def authorize(request: Request):
            box.requests["GET /authorize"] += 1
            q = request.query_params
            if q.get("client_id") != box.client_id:
                return oauth_error("invalid_client", "unknown client_id")
            redirect = q.get("redirect_uri", "")
            if redirect not in box.redirect_uris:  # never redirect to an unregistered URI
                return oauth_error("invalid_request", "redirect_uri is not registered")

            def back(**params):
                params = {k: v for k, v in params.items() if v is not None}
                return RedirectResponse(f"{redirect}?{urlencode(params)}", status_code=302)

            state = q.get("state")
            if q.get("response_type") != "code":
                return back(error="unsupported_response_type", state=state)
            if "openid" not in q.get("scope", "").split():
                return back(error="invalid_scope", error_description="openid is required",
                            state=state)
            if not q.get("code_challenge") or q.get("code_challenge_method") != "S256":
                return back(error="invalid_request", error_description="PKCE S256 required",
                            state=state)
            person = box.people.get(box.sign_in_as or "")
            if person is None:
                return back(error="access_denied", error_description="the user cancelled",
                            state=state)
            code = secrets.token_urlsafe(24)
            with box._lock:
                box._codes[code] = {"person": person, "redirect_uri": redirect,
                                    "challenge": q["code_challenge"], "nonce": q.get("nonce"),
                                    "at": time.time()}
            return back(code=code, state=state)

        @app.post("/token")
        async def token(request: Request):
            box.requests["POST /token"] += 1
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            client_id, secret = form.get("client_id"), form.get("client_secret")
            auth = request.headers.get("authorization", "")
            if auth.startswith("Basic "):
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            if client_id != box.client_id or secret != box.client_secret:
                return oauth_error("invalid_client", "client authentication failed", 401)
            grant = form.get("grant_type")
            if grant == "authorization_code":
                with box._lock:
                    issued = box._codes.pop(form.get("code", ""), None)
                if issued is None or time.time() - issued["at"] > CODE_TTL_S:
                    return oauth_error("invalid_grant", "the code is invalid or was used")
                if form.get("redirect_uri") != issued["redirect_uri"]:
                    return oauth_error("invalid_grant", "redirect_uri does not match")
                verifier = form.get("code_verifier", "")
                if _b64(hashlib.sha256(verifier.encode()).digest()) != issued["challenge"]:
                    return oauth_error("invalid_grant", "code_verifier does not match")
                person, nonce = issued["person"], issued["nonce"]
            elif grant == "refresh_token":
                with box._lock:
                    held = box._refresh.pop(form.get("refresh_token", ""), None)
                if held is None:
                    return oauth_error("invalid_grant", "the refresh token is invalid")
                person, nonce = held["person"], None
            else:
                return oauth_error("unsupported_grant_type", f"{grant!r} is not supported")
            refresh = secrets.token_urlsafe(24)
            with box._lock:
                box._refresh[refresh] = {"person": person}
            return JSONResponse({"access_token": secrets.token_urlsafe(24),
                                 "token_type": "Bearer", "expires_in": 3600,
                                 "refresh_token": refresh, "scope": "openid email profile",
                                 "id_token": box._id_token(person, nonce)},
                                headers={"Cache-Control": "no-store"})

        return app

    def start(self, tls, redirect_uris: list[str]):
        from sandbox.server import serve

        self.redirect_uris = list(redirect_uris)
        server = serve(self.create_app(), tls)
        self.issuer = server.url
        return server

