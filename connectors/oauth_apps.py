"""Which vendors can be connected with OAuth, by name; connecting, checking, replacing and
disconnecting an org's connections."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.connections import ConnectionInfo, TokenVault
from core.errors import ConfigError, NotFound
from core.oauth import OAuthProvider
from core.settings import Settings
from core.vendors import load_reference, vendor, vendors, with_a

log = logging.getLogger("coachloop.connections")


def oauth_vendors() -> list[str]:
    """The vendors that connect with OAuth, by name."""
    return [vendor.name for vendor in with_a("oauth")]


def oauth_provider(name: str, settings: Settings) -> OAuthProvider:
    """Vendor `name`'s OAuth provider: its descriptor's data filled from its settings
    (ConfigError says what is missing and where an admin finds it)."""
    found = vendors().get(name)
    if found is None or found.oauth is None:
        raise NotFound(f"no OAuth provider {name!r} (available: {', '.join(oauth_vendors())})")
    spec, own = found.oauth, found.settings_of(settings)
    certificate = getattr(own, "client_certificate", None)  # instead of a secret (Entra)
    if not own.client_id or (own.client_secret is None and not certificate):
        prefix = f"COACHLOOP_{name.upper()}__"
        where = f" ({spec.credentials_hint})" if spec.credentials_hint else ""
        also = f" (or {prefix}CLIENT_CERTIFICATE)" if hasattr(own, "client_certificate") else ""
        raise ConfigError(f"{found.label} is not configured: set {prefix}CLIENT_ID and "
                          f"{prefix}CLIENT_SECRET{also}{where}")
    identify = None
    if spec.identify:
        account_of = load_reference(spec.identify)

        def identify(access_token: str) -> str:
            return account_of(access_token, settings)
    app_token = None
    if spec.app_token:
        mint = load_reference(spec.app_token)

        def app_token(tenant: str):
            return mint(tenant, settings)
    return OAuthProvider(
        name=name, authorize_url=found.expand(spec.authorize_url, settings),
        token_url=found.expand(spec.token_url, settings), client_id=own.client_id,
        client_secret=own.client_secret.get_secret_value() if own.client_secret else "",
        scopes=tuple(own.scopes), flow=spec.flow, app_token=app_token,
        client_auth=spec.client_auth, pkce=spec.pkce,
        default_lifetime_s=getattr(own, spec.lifetime_setting) if spec.lifetime_setting else None,
        verify=settings.ca_bundle or True, identify=identify,
        revoke_url=found.expand(spec.revoke_url, settings) if spec.revoke_url else None,
        revoke_token=spec.revoke_token, revoke_with_client=spec.revoke_with_client,
        authorize_params=tuple(spec.authorize_params.items()),
        optional_scopes=tuple(getattr(own, spec.optional_scopes_setting))
        if spec.optional_scopes_setting else ())


def api_origin(name: str, settings: Settings, instance_url: str | None = None) -> str:
    """The server a connection's API calls go to (for "cannot be reached" messages): its own
    instance when it has one, else the vendor's."""
    found = vendor(name)
    return instance_url or (found.expand(found.api_origin, settings) if found.api_origin
                            else found.label)


def label(name: str) -> str:
    """A vendor's name as people write it."""
    found = vendors().get(name)
    return found.label if found else name


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
    query = {k: v[0] for k, v in parse_qs(urlparse(callback_url or "").query).items()}
    if "error" in query:
        raise CoachloopError(f"{provider} sign-in was not completed: "
                             f"{query.get('error_description', query['error'])}")
    granted = "tenant" if oauth.flow == "admin_consent" else "code"
    if granted not in query or "state" not in query:
        raise CoachloopError(f"that address has no {granted} and state in it")
    return finish_connect(oauth, code=query.get("code"), state=query["state"], cipher=cipher,
                          tenant=query.get("tenant"))


# ------------------------------------------------------------ manage connections ----

@dataclass(frozen=True)
class ConnectionHealth:
    """A connection checked live: `status` active | broken | unreachable (or its ended
    status, disconnected | replaced, without a call); `problem` says what is wrong and what
    to do. Never a token."""

    id: int
    provider: str
    account: str
    status: str
    scopes: tuple[str, ...]
    last_sync_at: datetime | None
    note: str = ""  # what the live call told us (who it acts as, API calls left)
    problem: str | None = None


def check_connection(info: ConnectionInfo, settings: Settings) -> ConnectionHealth:
    """One cheap authenticated call through the token vault and the vendor's client; the
    outcome classified by `core.errors.classify` (transient → unreachable, else broken)."""
    from core.connections import ENDED, ConnectionBroken, mark_broken
    from core.errors import CoachloopError, Resolution, classify, user_message
    from core.oauth import AuthRefused

    def health(status: str, note: str = "", problem: str | None = None) -> ConnectionHealth:
        return ConnectionHealth(info.id, info.provider, info.account_ref, status, info.scopes,
                                info.last_sync_at, note, problem)

    if info.status in ENDED:
        return health(info.status, problem=info.last_error)
    vendor_label = label(info.provider)
    again = f"run `coachloop connect {info.provider}` again"
    if info.status == "broken":  # the vault will not use it until an admin reconnects
        return health("broken", problem=f"{info.last_error}; {again}")
    try:
        return health("active", vendor(info.provider).load("probe")(info.id, settings))
    except Exception as exc:  # classified just below; nothing escapes as a traceback
        if classify(exc) is Resolution.TRANSIENT:
            origin = api_origin(info.provider, settings, info.instance_url)
            reason = user_message(exc)
            log.info("connection %s unreachable: %s (%s)", info.id, reason,
                     getattr(exc, "detail", None))
            # Network failures say "reach"; a vendor that answers 429/5xx is up but busy.
            busy = "" if "reach" in reason.lower() else f" right now ({reason})"
            return health("unreachable", problem=(
                f"the {vendor_label} connection {info.id} ({origin}) cannot be reached{busy}: check "
                f"the instance URL or {again}"))
        if not isinstance(exc, CoachloopError):
            log.exception("checking connection %s", info.id)
        message = user_message(exc)
        if isinstance(exc, (ConnectionBroken, AuthRefused)):
            mark_broken(info.id, message)  # the vendor said no: admins see it everywhere
            if "coachloop connect" not in message:
                message += f"; {again}"
        return health("broken", problem=message)


def check_connections(org_id: int, settings: Settings) -> list[ConnectionHealth]:
    """Every connection of the org, each checked live (ended ones only listed)."""
    from core.connections import list_connections
    from core.db import session_scope

    with session_scope() as session:
        infos = list_connections(session, org_id)
    return [check_connection(info, settings) for info in infos]


@dataclass(frozen=True)
class Ended:
    """A connection we ended: whether the vendor revoked its grant, and what it said."""

    id: int
    provider: str
    account: str
    revoked: bool
    note: str


def end_connections(org_id: int, provider: str, settings: Settings, *,
                    status: str = "disconnected", keep: int | None = None) -> list[Ended]:
    """Revoke each live connection of the org to `provider` (but `keep`) at the vendor (best
    effort), then delete its tokens and mark it `status` (disconnected | replaced), keeping
    the row."""
    from core.connections import ENDED, TokenVault, end_connection, list_connections, stored_tokens
    from core.crypto import cipher_from_settings
    from core.db import session_scope
    from core.errors import CoachloopError, user_message
    from core.oauth import revoke

    vendor_label = label(provider)
    cipher = cipher_from_settings(settings)
    with session_scope() as session:
        infos = [c for c in list_connections(session, org_id, provider)
                 if c.status not in ENDED and c.id != keep]
    ended = []
    for info in infos:
        if vendor(provider).on_disconnect and info.status == "active":
            try:  # while its tokens still work (Teams: delete its subscriptions at Graph)
                vendor(provider).load("on_disconnect")(info.id, settings)
            except Exception:  # noqa: BLE001 - disconnecting goes on regardless
                log.warning("connection %s: clean-up before disconnecting failed", info.id,
                            exc_info=True)
        tokens = stored_tokens(info.id, cipher)
        revoked, note = False, "it held no tokens"
        spec = vendor(provider).oauth
        if info.auth_kind == "delegated":  # no grant of ours to revoke: an admin's delegation
            note = ("a service account's access ends when an admin removes its domain-wide "
                    f"delegation in {vendor_label}'s admin console")
        elif tokens is not None and spec is not None and spec.revoke_url is None:
            note = f"{vendor_label} offers no revocation call" + (
                f": {spec.revoke_hint}" if spec.revoke_hint else "")
        elif tokens is not None:
            try:
                oauth = oauth_provider(provider, settings)
                if oauth.revoke_token == "access_token" and not tokens.fresh(timedelta(0)):
                    try:  # the vendor wants a live access token: refresh one if we can
                        tokens = TokenVault(lambda _: oauth, cipher).access_token(info.id)
                    except CoachloopError:
                        pass  # try with the stored one; the vendor decides
                revoke(oauth, tokens)
                revoked, note = True, f"revoked at {vendor_label}"
            except Exception as exc:  # whatever happened there, our tokens still go
                if not isinstance(exc, CoachloopError):
                    log.exception("revoking connection %s", info.id)
                note = f"not revoked at {vendor_label}: {user_message(exc)}"
        end_connection(info.id, status, note)
        ended.append(Ended(info.id, provider, info.account_ref, revoked, note))
    return ended


def replace_directly(provider: str, org_id: int, settings: Settings
                     ) -> tuple[ConnectionInfo, list[Ended]]:
    """Connect `provider` without anyone's consent (its descriptor's `direct_connect`, while
    its settings allow it: a Google service account) as the org's only connection to that
    vendor, ending whatever it had first."""
    from core.errors import InputError

    found = vendor(provider)
    if not found.connects_directly(settings):
        raise InputError(f"{found.label} connects through its sign-in page")
    ended = end_connections(org_id, provider, settings, status="replaced")
    return found.load("direct_connect")(org_id, settings), ended


def replace_connection(provider: str, org_id: int, settings: Settings,
                       callback_url: str | None = None) -> tuple[ConnectionInfo, list[Ended]]:
    """Connect `provider` for the org as its only connection to that vendor: end (revoke,
    drop tokens, mark `replaced`) whatever it had, then run the connect flow. The old grant
    goes first because Zoom's revocation deauthorizes the app for that user, which would
    also end a new grant for the same user."""
    oauth_provider(provider, settings)  # unconfigured: say so before ending anything
    ended = end_connections(org_id, provider, settings, status="replaced")
    return connect_following_consent(provider, org_id, settings, callback_url), ended
