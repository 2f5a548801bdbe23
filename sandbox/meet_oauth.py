"""Google accounts for the Meet + Workspace emulator (`sandbox.meet`): the people of the
Workspace and of other Google accounts, the OAuth client's consent screen and token endpoint,
service accounts with domain-wide delegation, and the keys Google signs ID tokens (and Pub/Sub
push tokens) with.

`GoogleAccounts` is a part of `MeetSandbox`: it keeps its state on the sandbox, under the
sandbox's lock and clock. Access tokens are opaque (`ya29.` …) and mean whatever the emulator
recorded when it issued them: a person, scopes, an expiry on the emulator's clock.

JWTs that cross to or from a real client library (ID tokens, service-account assertions, push
tokens) are stamped and checked with the wall clock (`wall_clock`), not the settable one: the
library on the other side checks them against its own clock.
"""

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote, unquote, urlencode, urlsplit

from sandbox.meet_wire import (
    DISCOVERY_FILES,
    ConsentPageError,
    GoogleError,
    OAuthError,
    SigningKey,
    b64url,
    discovery,
    error_info,
    new_signing_key,
)

GOOGLE_ISSUER = "https://accounts.google.com"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"   # what google-auth signs `aud` for
USERINFO_EMAIL = "https://www.googleapis.com/auth/userinfo.email"
USERINFO_PROFILE = "https://www.googleapis.com/auth/userinfo.profile"
# Google expands the short OpenID scopes in what it reports as granted.
SHORT_SCOPES = {"email": USERINFO_EMAIL, "profile": USERINFO_PROFILE}

ACCESS_TOKEN_TTL = 3600
EXPIRES_IN = 3599
CODE_TTL = 600
ID_TOKEN_TTL = 3600
ASSERTION_MAX_LIFETIME = 3600
ASSERTION_SKEW = 300

INVALID_CREDENTIALS = ("Request had invalid authentication credentials. Expected OAuth 2 "
                       "access token, login cookie or other valid authentication credential. "
                       "See https://developers.google.com/identity/sign-in/web/devconsole-project.")
MISSING_CREDENTIALS = ("Request is missing required authentication credential. Expected OAuth 2 "
                       "access token, login cookie or other valid authentication credential. "
                       "See https://developers.google.com/identity/sign-in/web/devconsole-project.")
DWD_REFUSED = ("Client is unauthorized to retrieve access tokens using this method, or client "
               "not authorized for any of the scopes requested.")
BAD_ASSERTION_TIME = ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                      "reasonable timeframe. Check your iat and exp values in the JWT claim.")
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class Person:
    """A Google account: a user of the Workspace (`internal`) or of another account."""

    id: str
    email: str
    name: str
    internal: bool
    created: datetime
    admin: bool = False

    @property
    def given_family(self) -> tuple[str, str]:
        first, _, last = self.name.partition(" ")
        return first, last


@dataclass
class AccessToken:
    """What an opaque access token stands for. `person` is None for a service account
    acting as itself (no `sub`)."""

    value: str
    person: Person | None
    scopes: frozenset
    client_id: str
    expires: float
    account: "ServiceAccount | None" = None
    revoked: bool = False


@dataclass
class RefreshToken:
    value: str
    person: Person
    scopes: frozenset
    client_id: str
    revoked: bool = False


@dataclass
class AuthCode:
    value: str
    person: Person
    client_id: str
    redirect_uri: str
    scopes: frozenset
    expires: float
    offline: bool
    challenge: str | None
    challenge_method: str
    nonce: str | None
    used: bool = False


@dataclass
class ServiceAccount:
    """A service account and its one key, as the Cloud console makes them."""

    name: str
    email: str
    client_id: str
    project_id: str
    key: SigningKey
    token_ids: list = field(default_factory=list)


def known_scopes() -> frozenset:
    """Every scope the six discovery documents name, and the OpenID ones."""
    found = {"openid", USERINFO_EMAIL, USERINFO_PROFILE}
    for api, version in DISCOVERY_FILES:
        found.update(discovery(api, version).get("auth", {}).get("oauth2", {}).get("scopes", {}))
    return frozenset(found)


def normalize_scopes(raw: str) -> list[str]:
    """Scopes as Google reports them granted: short OpenID names expanded, order kept."""
    seen: list[str] = []
    for scope in raw.replace(",", " ").split():
        scope = SHORT_SCOPES.get(scope, scope)
        if scope not in seen:
            seen.append(scope)
    return seen


def _digits(rng, count: int) -> str:
    return "1" + "".join(str(rng.randrange(10)) for _ in range(count - 1))


class GoogleAccounts:
    """The accounts.google.com / oauth2.googleapis.com part of `MeetSandbox`."""

    def _init_accounts(self, client_id: str, client_secret: str,
                       redirect_uris) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.redirect_uris = None if redirect_uris is None else list(redirect_uris)
        self._people: dict[str, Person] = {}             # lowercased e-mail -> person
        self._signed_in: str | None = None
        self._declines = False
        self._codes: dict[str, AuthCode] = {}
        self._tokens: dict[str, AccessToken] = {}
        self._refresh: dict[str, RefreshToken] = {}
        self._consents: dict[tuple[str, str], set] = {}   # (client, person id) -> scopes
        self._offline_issued: set[tuple[str, str]] = set()
        self._accounts: dict[str, ServiceAccount] = {}   # e-mail -> service account
        self._delegations: dict[str, frozenset] = {}      # client id -> scopes
        # A new key pair every run, so a new kid too (never a reused kid for another key).
        self._keys: list[SigningKey] = [new_signing_key()]
        self._scope_universe = known_scopes()

    # ------------------------------------------------------------------ people

    @property
    def signed_in(self) -> str | None:
        """Who the consent screen signs in when the request names nobody (`login_hint`):
        the first person added, unless set."""
        with self._lock:
            if self._signed_in:
                return self._signed_in
            return next((p.email for p in self._people.values()), None)

    @signed_in.setter
    def signed_in(self, email: str | None) -> None:
        with self._lock:
            if email is not None and email.lower() not in self._people:
                raise KeyError(email)
            self._signed_in = email

    def add_user(self, email: str, name: str = "", *, admin: bool = False) -> str:
        """A user of the Workspace (`domain`); returns its stable numeric id. `admin`: a
        Workspace administrator (may read the Admin SDK's admin view of other users)."""
        if email.split("@")[-1].lower() != self.domain.lower():
            raise ValueError(f"{email} is not in the Workspace's domain {self.domain}; use "
                             "add_external_user for people of other Google accounts")
        return self._add_person(email, name, internal=True, admin=admin).id

    def add_external_user(self, email: str, name: str = "") -> str:
        """A person with a Google account outside the Workspace (can join meetings signed
        in); returns its numeric id."""
        if email.split("@")[-1].lower() == self.domain.lower():
            raise ValueError(f"{email} is in the Workspace's domain: use add_user")
        return self._add_person(email, name, internal=False).id

    def user_id(self, email: str) -> str:
        """The numeric id of a person added before."""
        with self._lock:
            return self._people[email.lower()].id

    def _add_person(self, email: str, name: str, *, internal: bool,
                    admin: bool = False) -> Person:
        import random

        with self._lock:
            person = self._people.get(email.lower())
            if person is None:
                rng = random.Random(f"person|{email.lower()}") if self.stable_ids \
                    else random.SystemRandom()
                person = Person(_digits(rng, 21), email, name or email.split("@")[0],
                                internal, self.now(), admin)
                self._people[email.lower()] = person
            else:
                if name and person.name == person.email.split("@")[0]:
                    person.name = name
                person.admin = person.admin or admin
            return person

    def _person(self, key: str) -> Person | None:
        """A person by e-mail or numeric id."""
        with self._lock:
            found = self._people.get(key.lower())
            return found or next((p for p in self._people.values() if p.id == key), None)

    # ------------------------------------------------------------ admin controls

    def decline_consent(self, declines: bool = True) -> None:
        """The user clicks Cancel on the consent screen: the redirect carries
        `error=access_denied`."""
        with self._lock:
            self._declines = declines

    def expire_tokens(self) -> None:
        """Every access token issued so far is expired now (refresh tokens still work)."""
        with self._lock:
            stamp = self._epoch()
            for token in self._tokens.values():
                token.expires = min(token.expires, stamp)

    def revoke_consent(self, email: str) -> None:
        """The user removes the app's access (myaccount.google.com): their refresh tokens
        answer invalid_grant, their access tokens stop working, and subscriptions they
        authorized are suspended (USER_SCOPE_REVOKED)."""
        with self._lock:
            person = self._people[email.lower()]
            self._revoke_person(person, client_id=None)
        self._consent_revoked(person)

    def add_service_account(self, name: str = "coachloop-sa") -> dict:
        """A service account with a new key; returns the key file as Google issues it. Its
        `token_uri` is this emulator's, so call this after `start` (or re-read it with
        `service_account_info`)."""
        import random

        with self._lock:
            email = f"{name}@{self.project_id}.iam.gserviceaccount.com"
            if email not in self._accounts:
                rng = random.Random(f"sa|{email}") if self.stable_ids else random.SystemRandom()
                key = new_signing_key()     # its id is the key's own fingerprint
                self._accounts[email] = ServiceAccount(name, email, _digits(rng, 21),
                                                       self.project_id, key)
        return self.service_account_info(email)

    def service_account_info(self, name_or_email: str) -> dict:
        """The key file of a service account added before, with this emulator's token URI."""
        if self.base_url is None:
            raise RuntimeError("start the sandbox first: the key file's token_uri is its URL")
        with self._lock:
            account = self._accounts.get(name_or_email) or self._accounts.get(
                f"{name_or_email}@{self.project_id}.iam.gserviceaccount.com")
            if account is None:
                raise KeyError(name_or_email)
            return {
                "type": "service_account", "project_id": account.project_id,
                "private_key_id": account.key.kid, "private_key": account.key.private_pem(),
                "client_email": account.email, "client_id": account.client_id,
                "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                "token_uri": f"{self.base_url}/token",
                "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
                "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
                                        + quote(account.email, safe=""),
                "universe_domain": "googleapis.com"}

    def grant_delegation(self, client_id: str, scopes) -> None:
        """The Workspace admin grants domain-wide delegation to a service account's client id
        for these scopes (URLs, or names of `SCOPES`)."""
        from sandbox.meet import SCOPES

        granted = frozenset(SCOPES.get(s, s) for s in scopes)
        with self._lock:
            self._delegations[str(client_id)] = granted

    def revoke_delegation(self, client_id: str) -> None:
        """The admin removes the client's domain-wide delegation (issued tokens live on)."""
        with self._lock:
            self._delegations.pop(str(client_id), None)

    def rotate_signing_key(self) -> None:
        """A new key joins the JWKS and signs from now on; the old one stays listed."""
        with self._lock:
            self._keys.append(new_signing_key())

    def jwks(self) -> dict:
        """The public keys at /oauth2/v3/certs."""
        with self._lock:
            return {"keys": [key.public_jwk() for key in reversed(self._keys)]}

    def _signing_key(self) -> SigningKey:
        with self._lock:
            return self._keys[-1]

    # -------------------------------------------------------------- endpoints

    def _openid_configuration(self, base: str) -> dict:
        return {
            "issuer": GOOGLE_ISSUER,
            "authorization_endpoint": f"{base}/o/oauth2/v2/auth",
            "device_authorization_endpoint": f"{base}/device/code",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/v1/userinfo",
            "revocation_endpoint": f"{base}/revoke",
            "jwks_uri": f"{base}/oauth2/v3/certs",
            "response_types_supported": ["code", "token", "id_token", "code token",
                                         "code id_token", "token id_token",
                                         "code token id_token", "none"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                      "client_secret_basic"],
            "claims_supported": ["aud", "email", "email_verified", "exp", "family_name",
                                 "given_name", "iat", "iss", "name", "picture", "sub"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "grant_types_supported": ["authorization_code", "refresh_token",
                                      "urn:ietf:params:oauth:grant-type:device_code",
                                      JWT_BEARER]}

    def _redirect_allowed(self, uri: str) -> bool:
        if self.redirect_uris is not None:
            return uri in self.redirect_uris
        parts = urlsplit(uri)
        if parts.fragment or not parts.netloc:
            return False
        return parts.scheme == "https" or (
            parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"))

    def _authorize(self, query) -> str:
        """The consent screen, answered at once: the URL to redirect the browser to."""
        client_id = query.get("client_id") or ""
        if client_id != self.client_id:
            raise ConsentPageError("invalid_client", "The OAuth client was not found.")
        redirect_uri = query.get("redirect_uri") or ""
        if not redirect_uri:
            raise ConsentPageError("invalid_request", "Missing required parameter: "
                                                      "redirect_uri")
        if not self._redirect_allowed(redirect_uri):
            raise ConsentPageError("redirect_uri_mismatch", "You can't sign in to this app "
                                   "because it doesn't comply with Google's OAuth 2.0 policy. "
                                   f"redirect_uri={redirect_uri}")
        state = query.get("state")

        def back(params: dict) -> str:
            if state is not None:
                params = {"state": state, **params}
            return redirect_uri + ("&" if "?" in redirect_uri else "?") + urlencode(params)

        if query.get("response_type") != "code":
            return back({"error": "unsupported_response_type"})
        scopes = normalize_scopes(query.get("scope") or "")
        if not scopes:
            raise ConsentPageError("invalid_request", "Missing required parameter: scope")
        unknown = [s for s in scopes if s not in self._scope_universe]
        if unknown:
            raise ConsentPageError("invalid_scope", "Some requested scopes were invalid. "
                                   f"{{invalid={unknown}}}")
        challenge = query.get("code_challenge")
        method = query.get("code_challenge_method") or "plain"
        if challenge is not None and method not in ("plain", "S256"):
            raise ConsentPageError("invalid_request", "Invalid code_challenge_method value.")
        with self._lock:
            declines = self._declines
            hint = query.get("login_hint")
            person = (self._person(hint) if hint else None) or (
                self._people.get((self.signed_in or "").lower()))
        if declines:
            return back({"error": "access_denied"})
        if person is None:
            raise ConsentPageError("invalid_request", "No Google account is signed in.")
        prompt = (query.get("prompt") or "").split()
        with self._lock:
            key = (client_id, person.id)
            granted = set(scopes)
            if (query.get("include_granted_scopes") or "").lower() == "true":
                granted |= self._consents.get(key, set())
            self._consents[key] = set(granted) | self._consents.get(key, set())
            offline = (query.get("access_type") or "online") == "offline" and (
                "consent" in prompt or key not in self._offline_issued)
            code = AuthCode("4/0A" + b64url(secrets.token_bytes(48)), person, client_id,
                            redirect_uri, frozenset(granted), self._epoch() + CODE_TTL,
                            offline, challenge, method, query.get("nonce"))
            self._codes[code.value] = code
        ordered = [s for s in scopes if s in granted] + sorted(granted - set(scopes))
        params = {"code": code.value, "scope": " ".join(ordered), "authuser": "0"}
        if person.internal:
            params["hd"] = self.domain
        params["prompt"] = "consent" if "consent" in prompt or offline else "none"
        return back(params)

    def _client_auth(self, form: dict, headers) -> str:
        """The client of a token request (HTTP Basic or form fields), checked."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(basic[6:].strip()).decode()
                client_id, _, secret = decoded.partition(":")
                client_id, secret = unquote(client_id), unquote(secret)
            except ValueError:
                raise OAuthError(400, "invalid_request", "Bad Request") from None
        if not client_id:
            raise OAuthError(400, "invalid_request", "Could not determine client ID from "
                                                     "request.")
        if client_id != self.client_id:
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        if not secret or not secrets.compare_digest(secret.encode(),
                                                    self.client_secret.encode()):
            raise OAuthError(401, "invalid_client", "Unauthorized")
        return client_id

    def _token(self, form: dict, headers, base: str) -> dict:
        grant = form.get("grant_type")
        if not grant:
            raise OAuthError(400, "invalid_request", "Missing required parameter: grant_type")
        if grant == JWT_BEARER:
            return self._jwt_grant(form, base)
        if grant not in ("authorization_code", "refresh_token"):
            raise OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")
        client_id = self._client_auth(form, headers)
        if grant == "authorization_code":
            return self._code_grant(form, client_id)
        return self._refresh_grant(form, client_id)

    def _code_grant(self, form: dict, client_id: str) -> dict:
        value = form.get("code")
        if not value:
            raise OAuthError(400, "invalid_request", "Missing required parameter: code")
        with self._lock:
            code = self._codes.get(value)
            if code is None or code.used or code.expires <= self._epoch() \
                    or code.client_id != client_id:
                raise OAuthError(400, "invalid_grant", "Bad Request")
            if form.get("redirect_uri") != code.redirect_uri:
                raise OAuthError(400, "redirect_uri_mismatch", "Bad Request")
            if code.challenge is not None:
                verifier = form.get("code_verifier")
                if not verifier:
                    raise OAuthError(400, "invalid_grant", "Missing code verifier.")
                made = verifier if code.challenge_method == "plain" else b64url(
                    hashlib.sha256(verifier.encode()).digest())
                if not secrets.compare_digest(made, code.challenge):
                    raise OAuthError(400, "invalid_grant", "Invalid code verifier.")
            code.used = True
            key = (client_id, code.person.id)
            if key not in self._consents:     # revoked between consent and exchange
                raise OAuthError(400, "invalid_grant", "Bad Request")
            access = self._issue(code.person, code.scopes, client_id)
            body = {"access_token": access.value, "expires_in": EXPIRES_IN}
            if code.offline:
                refresh = RefreshToken("1//0" + b64url(secrets.token_bytes(64)), code.person,
                                       code.scopes, client_id)
                self._refresh[refresh.value] = refresh
                self._offline_issued.add(key)
                body["refresh_token"] = refresh.value
        body.update(scope=" ".join(sorted(code.scopes)), token_type="Bearer")
        if "openid" in code.scopes:
            body["id_token"] = self._id_token(code.person, code.scopes, client_id,
                                              access.value, code.nonce)
        return body

    def _refresh_grant(self, form: dict, client_id: str) -> dict:
        value = form.get("refresh_token")
        if not value:
            raise OAuthError(400, "invalid_request", "Missing required parameter: "
                                                     "refresh_token")
        with self._lock:
            refresh = self._refresh.get(value)
            if refresh is None or refresh.revoked:
                raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
            if refresh.client_id != client_id:
                raise OAuthError(401, "unauthorized_client", "Unauthorized")
            scopes = refresh.scopes
            asked = normalize_scopes(form.get("scope") or "")
            if asked:
                if not set(asked) <= set(refresh.scopes):
                    raise OAuthError(400, "invalid_scope", "Bad Request")
                scopes = frozenset(asked)
            access = self._issue(refresh.person, scopes, client_id)
        body = {"access_token": access.value, "expires_in": EXPIRES_IN,
                "scope": " ".join(sorted(scopes)), "token_type": "Bearer"}
        if "openid" in scopes:
            body["id_token"] = self._id_token(refresh.person, scopes, client_id, access.value)
        return body

    def _jwt_grant(self, form: dict, base: str) -> dict:
        """A service account's signed assertion (RFC 7523), with `sub` for domain-wide
        delegation."""
        import jwt

        assertion = form.get("assertion") or ""
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.") from None
        with self._lock:
            account = next((a for a in self._accounts.values()
                            if a.key.kid == header.get("kid")), None) \
                or self._accounts.get(str(unverified.get("iss")))
        if account is None:
            raise OAuthError(400, "invalid_grant", "Invalid grant: account not found")
        try:
            claims = jwt.decode(assertion, account.key.private.public_key(),
                                algorithms=["RS256"],
                                options={"verify_aud": False, "verify_exp": False,
                                         "verify_iat": False, "verify_nbf": False})
        except jwt.PyJWTError:
            raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.") from None
        if claims.get("iss") != account.email:
            raise OAuthError(400, "invalid_grant", "Invalid JWT: the issuer is not the "
                                                   "service account of the signing key.")
        if claims.get("aud") not in (f"{base}/token", GOOGLE_TOKEN_URL):
            raise OAuthError(400, "invalid_grant", "Invalid JWT: Failed audience check. The "
                                                   f"expected value was: {GOOGLE_TOKEN_URL}")
        iat, exp, now = claims.get("iat"), claims.get("exp"), self.wall_clock()
        if not isinstance(iat, (int, float)) or not isinstance(exp, (int, float)) \
                or exp - iat > ASSERTION_MAX_LIFETIME or exp <= now \
                or iat > now + ASSERTION_SKEW:
            raise OAuthError(400, "invalid_grant", BAD_ASSERTION_TIME)
        scopes = normalize_scopes(str(claims.get("scope") or ""))
        if not scopes or any(s not in self._scope_universe for s in scopes):
            raise OAuthError(400, "invalid_scope", "Invalid OAuth scope or ID token audience "
                                                   "provided.")
        person = None
        if claims.get("sub") and claims["sub"] != account.email:
            person = self._person(str(claims["sub"]))
            if person is None or not person.internal:
                raise OAuthError(400, "invalid_grant", "Invalid email or User ID")
            with self._lock:
                delegated = self._delegations.get(account.client_id, frozenset())
            if not set(scopes) <= delegated:
                raise OAuthError(401, "unauthorized_client", DWD_REFUSED)
        with self._lock:
            access = self._issue(person, frozenset(scopes), account.client_id, account)
        return {"access_token": access.value, "expires_in": EXPIRES_IN, "token_type": "Bearer"}

    def _issue(self, person: Person | None, scopes: frozenset, client_id: str,
               account: ServiceAccount | None = None) -> AccessToken:
        token = AccessToken("ya29.a0" + b64url(secrets.token_bytes(96)), person,
                            frozenset(scopes), client_id, self._epoch() + ACCESS_TOKEN_TTL,
                            account)
        self._tokens[token.value] = token
        return token

    def _id_token(self, person: Person, scopes, client_id: str, access_token: str,
                  nonce: str | None = None) -> str:
        now = int(self.wall_clock())
        claims = {"iss": GOOGLE_ISSUER, "azp": client_id, "aud": client_id, "sub": person.id}
        if person.internal:
            claims["hd"] = self.domain
        if USERINFO_EMAIL in scopes:
            claims.update(email=person.email, email_verified=True)
        claims["at_hash"] = b64url(hashlib.sha256(access_token.encode()).digest()[:16])
        if nonce:
            claims["nonce"] = nonce
        if USERINFO_PROFILE in scopes:
            given, family = person.given_family
            claims.update(name=person.name, given_name=given, family_name=family)
        claims.update(iat=now, exp=now + ID_TOKEN_TTL)
        return self._signing_key().sign(claims)

    def _revoke(self, value: str) -> None:
        """POST /revoke: an access or refresh token ends the whole grant (client, person)."""
        with self._lock:
            refresh = self._refresh.get(value)
            access = self._tokens.get(value)
            live_access = access is not None and not access.revoked \
                and access.expires > self._epoch()
            if refresh is not None and not refresh.revoked:
                self._revoke_person(refresh.person, refresh.client_id)
                person = refresh.person
            elif live_access and access.person is not None and access.account is None:
                self._revoke_person(access.person, access.client_id)
                person = access.person
            elif live_access:
                access.revoked = True
                return
            else:
                raise OAuthError(400, "invalid_token", "Token expired or revoked")
        self._consent_revoked(person)

    def _revoke_person(self, person: Person, client_id: str | None) -> None:
        for refresh in self._refresh.values():
            if refresh.person is person and client_id in (None, refresh.client_id):
                refresh.revoked = True
        for token in self._tokens.values():
            if token.person is person and token.account is None \
                    and client_id in (None, token.client_id):
                token.revoked = True
        for key in [k for k in self._consents if k[1] == person.id
                    and client_id in (None, k[0])]:
            del self._consents[key]
            self._offline_issued.discard(key)

    def _consent_revoked(self, person: Person) -> None:
        """Hook: the events part suspends what the person authorized."""

    def _userinfo(self, token: AccessToken) -> dict:
        person = token.person
        body = {"sub": person.id}
        if USERINFO_PROFILE in token.scopes:
            given, family = person.given_family
            body.update(name=person.name, given_name=given, family_name=family)
        if USERINFO_EMAIL in token.scopes:
            body.update(email=person.email, email_verified=True)
        if person.internal:
            body["hd"] = self.domain
        return body

    # ------------------------------------------------------------ API bearer

    def _bearer(self, request, method) -> AccessToken:
        """The request's live access token, else 401 in Google's shape."""
        header = request.headers.get("authorization", "")
        value = header[7:].strip() if header.lower().startswith("bearer ") else ""
        realm = 'Bearer realm="https://accounts.google.com/"'
        metadata = {"service": method.service, "method": method.rpc}
        if not value:
            raise GoogleError(401, MISSING_CREDENTIALS, details=[error_info(
                "CREDENTIALS_MISSING", "googleapis.com", metadata)], reason="required",
                legacy_message="Login Required.", location="Authorization",
                location_type="header", headers={"WWW-Authenticate": realm})
        with self._lock:
            token = self._tokens.get(value)
            live = token is not None and not token.revoked and token.expires > self._epoch()
        if not live:
            raise GoogleError(401, INVALID_CREDENTIALS, reason="authError",
                              legacy_message="Invalid Credentials", location="Authorization",
                              location_type="header",
                              headers={"WWW-Authenticate": realm + ', error="invalid_token"'})
        return token
