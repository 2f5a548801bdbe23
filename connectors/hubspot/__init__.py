"""HubSpot: its descriptor (`vendor.yaml`: OAuth app, writer, portal setup, webhooks), the
connection probe, and the CRM writer for an org's connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.vendors import Vendor

if TYPE_CHECKING:
    from core.settings import Settings

VENDOR = Vendor.from_file(__file__)


def account_of(access_token: str, settings: Settings) -> str:
    """The portal (hub id) a token belongs to, from the token's own metadata
    (`GET /oauth/v1/access-tokens/{token}`): webhooks name portals."""
    import httpx

    from core.errors import TransientError
    from core.oauth import tls_verify

    try:
        answer = httpx.get(f"{settings.hubspot.api_base.rstrip('/')}/oauth/v1/access-tokens/"
                           f"{access_token}", timeout=15, trust_env=False,
                           verify=tls_verify(settings.ca_bundle or True))
    except httpx.HTTPError as exc:
        raise TransientError(f"cannot reach HubSpot to identify the portal "
                             f"({type(exc).__name__})") from None
    if answer.status_code != 200:
        return ""  # connected, but webhooks will only match it while it is the only one
    return str(answer.json().get("hub_id") or "")


def writer_for_org(org_id: int, settings: Settings):
    """The HubSpot writer for the org's active connection (ConfigError if there is none)."""
    from connectors.hubspot.writer import HubSpotWriter
    from connectors.oauth_apps import token_vault
    from core.connections import active_connection_id

    connection_id = active_connection_id(org_id, "hubspot")
    return HubSpotWriter.for_connection(connection_id, token_vault(settings),
                                        api_base=settings.hubspot.api_base,
                                        verify=settings.ca_bundle or True)


def probe(connection_id: int, settings: Settings) -> str:
    """One cheap authenticated call through the writer's own client: the portal's API calls
    left today (from HubSpot's rate-limit headers) and where skill scores go."""
    from connectors.crm_sync import quota_note
    from connectors.hubspot.portal import skill_target
    from connectors.hubspot.writer import HubSpotWriter
    from connectors.oauth_apps import token_vault

    writer = HubSpotWriter.for_connection(connection_id, token_vault(settings),
                                          api_base=settings.hubspot.api_base,
                                          verify=settings.ca_bundle or True)
    writer.call_retries = 0  # a status check reports what it sees; it does not wait it out
    try:
        writer.check()
    finally:
        writer.close()
    notes = [quota_note(writer.api_usage, settings.hubspot)]
    notes.append(skill_target(connection_id).describe())
    return "; ".join(n for n in notes if n)
