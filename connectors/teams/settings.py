"""Microsoft Teams' settings: `COACHLOOP_TEAMS__…`."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

# The Graph application permissions the connector reads with (README: Microsoft Teams).
REQUIRED_ROLES = ("OnlineMeetingTranscript.Read.All", "OnlineMeetingRecording.Read.All",
                  "OnlineMeetings.Read.All", "User.Read.All", "Calendars.Read")


class TeamsSettings(BaseModel):
    """The Entra ID app registration coachloop uses (a confidential client) and where
    Microsoft's identity platform and Graph live."""

    client_id: str | None = Field(None, description="the app registration's Application "
                                  "(client) ID")
    client_secret: SecretStr | None = None
    client_certificate: str | None = Field(
        None, description="instead of a secret: a PEM file with the certificate's private key "
                          "and the certificate uploaded to the app registration")
    tenant: str = Field("organizations", description="where admins consent: 'organizations' "
                        "(any work tenant) or one tenant's id, which then is the only one "
                        "that can be connected")
    authority_base: str = "https://login.microsoftonline.com"
    graph_base: str = "https://graph.microsoft.com/v1.0"
    # Admin consent asks for the app's configured application permissions as a whole.
    scopes: list[str] = Field(default_factory=lambda: ["https://graph.microsoft.com/.default"])
    subscription_minutes: int = Field(
        4200, description="how long each change-notification subscription asks to live "
                          "(Graph allows at most 4320 minutes for transcripts and recordings)")
    renew_before_minutes: int = Field(
        1440, description="renew a subscription when it has less than this left")
    backfill_days: int = Field(30, description="how far back the first sync reaches")
    poll_minutes: int = Field(15, description="how often `celery beat` polls for what "
                              "notifications missed (and renews subscriptions)")
    lookback_days: int = Field(2, description="each sync re-reads this many days before where "
                               "the last one stopped")
