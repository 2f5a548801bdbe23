"""Salesforce: its descriptor (`vendor.yaml`: OAuth app, writer), the connection probe, and
the CRM writer and mapping for an org's connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.vendors import Vendor

if TYPE_CHECKING:
    from core.settings import Settings

VENDOR = Vendor.from_file(__file__)


def probe(connection_id: int, settings: Settings) -> str:
    """One cheap authenticated call (`GET /services/data/vXX.X/limits`) through the
    connection's tokens and the writer's own client; returns the daily API calls left."""
    from connectors.crm_sync import quota_note
    from connectors.oauth_apps import token_vault
    from connectors.salesforce.writer import SalesforceWriter

    writer = SalesforceWriter.for_connection(connection_id, token_vault(settings),
                                             verify=settings.ca_bundle or True,
                                             version=settings.salesforce.api_version)
    writer.call_retries = 0  # a status check reports what it sees; it does not wait it out
    try:
        limits = writer.check() or {}
    finally:
        writer.close()
    daily = limits.get("DailyApiRequests") or {}
    if "Remaining" in daily and daily.get("Max"):
        return quota_note((daily["Max"] - daily["Remaining"], daily["Max"]),
                          settings.salesforce)
    return ""


def writer_for_org(org_id: int, settings: Settings):
    """The Salesforce writer for the org's active connection (ConfigError if there is none)."""
    from connectors.oauth_apps import token_vault
    from connectors.salesforce.writer import SalesforceWriter
    from core.connections import active_connection_id

    connection_id = active_connection_id(org_id, "salesforce")
    return SalesforceWriter.for_connection(connection_id, token_vault(settings),
                                           verify=settings.ca_bundle or True,
                                           version=settings.salesforce.api_version)
