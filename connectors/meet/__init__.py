"""Google Meet: its descriptor (`vendor.yaml`: a user's OAuth consent with offline access,
source, poll), whose account a token is, the probe, the poll, and connecting a Workspace
through a service account with domain-wide delegation (no one signs in). Credentials are
`connectors.meet.auth`; the source is `connectors.meet.source`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.vendors import Vendor

if TYPE_CHECKING:
    from core.connections import ConnectionInfo
    from core.settings import Settings

VENDOR = Vendor.from_file(__file__)


def account_of(access_token: str, settings: Settings) -> str:
    """The e-mail of the Google account a user token is for (People API `people/me`)."""
    import httpx

    from core.errors import TransientError
    from core.oauth import tls_verify

    root = (settings.meet.api_root or "https://people.googleapis.com").rstrip("/")
    try:
        answer = httpx.get(f"{root}/v1/people/me", params={"personFields": "emailAddresses"},
                           headers={"Authorization": f"Bearer {access_token}"},
                           verify=tls_verify(settings.ca_bundle or True), timeout=30,
                           trust_env=False)
    except httpx.HTTPError as exc:
        raise TransientError(f"Google could not be reached ({type(exc).__name__})") from None
    if answer.status_code >= 400:
        from connectors.meet.source import google_error

        raise google_error(answer.status_code, answer.content, answer.headers,
                           "GET people/me")
    addresses = answer.json().get("emailAddresses") or []
    primary = next((a for a in addresses if (a.get("metadata") or {}).get("primary")),
                   addresses[0] if addresses else {})
    return str(primary.get("value") or "").lower()


def connect_delegated(org_id: int, settings: Settings) -> ConnectionInfo:
    """Connect the org's Workspace through the configured service account: a token is
    minted as one of the org's reps (the first that is a user there) to prove the
    delegation covers the scopes, then the connection (account: the reps' domain) is
    stored. No one signs in."""
    from datetime import UTC

    from google.auth.exceptions import GoogleAuthError

    from connectors.connected import rep_emails
    from connectors.meet.auth import (
        UnknownUser,
        delegated_credentials,
        refresh_error,
        service_account_info,
    )
    from connectors.meet.settings import READ_SCOPES
    from connectors.meet.source import PROOF_TRIES
    from core.connections import store_connection
    from core.crypto import cipher_from_settings
    from core.errors import ConfigError
    from core.oauth import TokenSet

    service_account_info(settings)  # unconfigured: say which setting
    reps = rep_emails(org_id)
    if not reps:
        raise ConfigError("the org has no reps yet: add them (`coachloop team import`) so "
                          "coachloop knows whom to read through the service account")
    for rep in reps[:PROOF_TRIES]:
        credentials = delegated_credentials(settings, rep, READ_SCOPES)
        try:
            credentials.refresh(_token_request(settings))
            break
        except GoogleAuthError as exc:
            refused = refresh_error(exc, rep)
            if not isinstance(refused, UnknownUser):
                raise refused from None  # the delegation itself: no other rep will do
    else:
        raise refused from None  # none of them is a user of the Workspace
    domain = rep.rsplit("@", 1)[-1].lower()
    expires = credentials.expiry.replace(tzinfo=UTC) if credentials.expiry else None
    tokens = TokenSet(credentials.token, None, expires, tuple(READ_SCOPES), None, domain)
    return store_connection("meet", org_id, tokens, cipher_from_settings(settings),
                            "delegated")


def _token_request(settings: Settings):
    """google-auth's transport for token requests, trusting the configured CA bundle only
    (requests lets REQUESTS_CA_BUNDLE override a session's own `verify`)."""
    import requests
    from google.auth.transport.requests import Request

    session = requests.Session()
    session.trust_env = False
    session.verify = settings.ca_bundle or True
    return Request(session)


def probe(connection_id: int, settings: Settings) -> str:
    """One cheap authenticated call (a one-item conference list) as the connection's
    identity; says whose meetings are read."""
    from connectors.meet.source import MeetSource
    from connectors.meet.subscriptions import subscription_states

    source = MeetSource.for_connection(connection_id, settings)
    try:
        source.check()
        said = [f"Workspace {source.account} through a service account "
                f"({len(source.identities())} reps impersonated)" if source.delegated
                else f"{source.account}'s conferences"]
        states = subscription_states(connection_id)
        said += [str(state) for state in states] if states else [
            "events off (no COACHLOOP_MEET__PUBSUB_TOPIC): the poll reads new conferences"]
        return " · ".join(said)
    finally:
        source.close()


def poll(org_id: int, *, since=None, progress=None, on_item=None) -> list[int]:
    """Keep the event subscriptions alive (renew, reactivate, recreate), then ingest the
    org's Meet conferences since each identity's last sync (or `since`); returns the ids of
    meetings created or updated (to transcribe)."""
    from connectors import poll_source
    from connectors.meet.source import MeetSource
    from connectors.meet.subscriptions import ensure_subscriptions

    source = MeetSource.for_org(org_id)
    ensure_subscriptions(source)
    return poll_source(source, org_id, since=since, progress=progress, on_item=on_item)


def subscribe(connection_id: int, settings: Settings) -> None:
    """On connect: subscribe to the identities' Meet events (when a topic is configured)."""
    from connectors.meet.source import MeetSource
    from connectors.meet.subscriptions import ensure_subscriptions

    source = MeetSource.for_connection(connection_id, settings)
    try:
        ensure_subscriptions(source)
    finally:
        source.close()


def unsubscribe(connection_id: int, settings: Settings) -> None:
    """Before disconnecting: delete the event subscriptions at Google."""
    from connectors.meet.source import MeetSource
    from connectors.meet.subscriptions import end_subscriptions

    source = MeetSource.for_connection(connection_id, settings)
    try:
        end_subscriptions(source)
    finally:
        source.close()
