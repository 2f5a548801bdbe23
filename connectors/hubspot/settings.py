"""HubSpot's settings: `COACHLOOP_HUBSPOT__…`."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class HubSpotSettings(BaseModel):
    """A HubSpot public app (developer account → Apps → your app → Auth) and where HubSpot
    lives."""

    client_id: str | None = None
    client_secret: SecretStr | None = Field(None, description="also the key HubSpot signs "
                                            "webhooks with (X-HubSpot-Signature-v3)")
    app_base: str = Field("https://app.hubspot.com", description="where admins consent")
    api_base: str = "https://api.hubapi.com"
    scopes: list[str] = Field(default_factory=lambda: [
        "oauth",
        "crm.objects.deals.read", "crm.objects.deals.write",
        "crm.objects.contacts.read", "crm.objects.contacts.write",
        "crm.objects.companies.read", "crm.objects.owners.read",
        "crm.schemas.deals.read", "crm.schemas.deals.write"])
    optional_scopes: list[str] = Field(default_factory=lambda: [
        "crm.objects.custom.read", "crm.objects.custom.write",
        "crm.schemas.custom.read", "crm.schemas.custom.write"],
        description="asked for but not required: custom objects exist on Enterprise portals "
                    "only, and HubSpot refuses a required scope the portal cannot grant")
    mapping: str = Field("hubspot-meddic", description="a built-in mapping's name, or the "
                         "path of your own mapping file")
    webhook_tolerance_s: int = Field(300, description="reject signatures older than this")
    quota_slow_share: float = Field(0.5, description="past this share of the portal's daily "
                                    "API calls, write-back runs at most every "
                                    "quota_slow_minutes")
    quota_slow_minutes: float = 30.0
    quota_stop_share: float = Field(0.8, description="past this share, write-back stops until "
                                    "the next UTC day (what it has not written waits)")
