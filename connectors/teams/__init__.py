"""Microsoft Teams: its descriptor (`vendor.yaml`: Entra admin consent, source, change
notifications, poll), the connection probe, the poll, and the subscriptions' follow-ups on
connect and disconnect. App-only tokens are `connectors.teams.auth`; the Graph source is
`connectors.teams.source`; notifications are `connectors.teams.webhooks`, their
subscriptions `connectors.teams.subscriptions`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.vendors import Vendor

if TYPE_CHECKING:
    from core.settings import Settings

VENDOR = Vendor.from_file(__file__)


def probe(connection_id: int, settings: Settings) -> str:
    """One cheap authenticated call (`GET /users?$top=1`) with the tenant's app-only token;
    says which of the needed application permissions the tenant has not granted, and the
    state of the change-notification subscriptions."""
    from connectors.teams.settings import REQUIRED_ROLES
    from connectors.teams.source import TeamsSource
    from connectors.teams.subscriptions import subscription_states
    from core.db import session_scope
    from core.models import Connection

    source = TeamsSource.for_connection(connection_id, settings)
    try:
        source.check()
    finally:
        source.close()
    with session_scope() as session:
        row = session.get(Connection, connection_id)
        tenant, granted = row.account_ref, set(row.scopes or ())
    said = [f"tenant {tenant}"]
    missing = [role for role in REQUIRED_ROLES if role not in granted]
    if missing:
        said.append("not granted: " + ", ".join(missing) + " (add them to the app "
                    "registration, then reconnect so an admin consents again)")
    said += [str(state) for state in subscription_states(connection_id)]
    return " · ".join(said)


def poll(org_id: int, *, since=None, progress=None, on_item=None) -> list[int]:
    """Keep the org's subscriptions alive (renew, recreate), then ingest its reps' Teams
    meetings since each one's last sync (or `since`); returns the ids of meetings created or
    updated (to transcribe)."""
    from connectors import poll_source
    from connectors.teams.source import TeamsSource

    source = TeamsSource.for_org(org_id)
    renew(source)
    return poll_source(source, org_id, since=since, progress=progress, on_item=on_item)


def renew(source) -> None:
    """Renew or recreate the source's connection's subscriptions (failures are recorded)."""
    from connectors.teams.subscriptions import ensure_subscriptions

    ensure_subscriptions(source.api, org_id=source.org_id, connection_id=source.connection_id,
                         settings=source.settings)


def subscribe(connection_id: int, settings: Settings) -> None:
    """On connect: create the tenant's change-notification subscriptions."""
    from connectors.teams.source import TeamsSource

    source = TeamsSource.for_connection(connection_id, settings)
    try:
        renew(source)
    finally:
        source.close()


def unsubscribe(connection_id: int, settings: Settings) -> None:
    """Before disconnecting: delete the subscriptions at Graph."""
    from connectors.teams.source import TeamsSource
    from connectors.teams.subscriptions import end_subscriptions

    source = TeamsSource.for_connection(connection_id, settings)
    try:
        end_subscriptions(source.api, connection_id)
    finally:
        source.close()
