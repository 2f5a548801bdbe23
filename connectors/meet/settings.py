"""Google Meet's settings: `COACHLOOP_MEET__…`."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

# Read-only scopes the connector asks for (README: Google Meet); a service account's
# domain-wide delegation must list the same ones.
MEET_READ = "https://www.googleapis.com/auth/meetings.space.readonly"
DRIVE_MEET_READ = "https://www.googleapis.com/auth/drive.meet.readonly"
CALENDAR_EVENTS_READ = "https://www.googleapis.com/auth/calendar.events.readonly"
DIRECTORY_READ = "https://www.googleapis.com/auth/directory.readonly"
READ_SCOPES = (MEET_READ, DRIVE_MEET_READ, CALENDAR_EVENTS_READ, DIRECTORY_READ)


class MeetSettings(BaseModel):
    """A Google Cloud OAuth client (user connections) and/or a service account with
    domain-wide delegation (every rep of a Workspace), and where Google's APIs live."""

    client_id: str | None = Field(None, description="the OAuth client's id (Google Cloud "
                                  "console → APIs & Services → Credentials)")
    client_secret: SecretStr | None = None
    service_account_file: str | None = Field(
        None, description="a service account's JSON key with domain-wide delegation: "
                          "coachloop then reads every rep's meetings by impersonating them, "
                          "no one signs in")
    accounts_base: str = Field("https://accounts.google.com", description="where people "
                               "consent (the OAuth authorize page)")
    oauth2_base: str = Field("https://oauth2.googleapis.com", description="token and "
                             "revocation endpoints")
    api_root: str | None = Field(
        None, description="one origin serving every Google API used (an emulator, a "
                          "private endpoint); unset: each API's own host")
    scopes: list[str] = Field(default_factory=lambda: [*READ_SCOPES, "openid", "email"])
    backfill_days: int = Field(30, description="how far back the first sync reaches (Meet "
                               "deletes conference records 30 days after they end)")
    poll_minutes: int = Field(15, description="how often `celery beat` polls for what "
                              "events missed")
    lookback_days: int = Field(2, description="each sync re-reads this many days before where "
                               "the last one stopped")
    pubsub_topic: str | None = Field(
        None, description="the Cloud Pub/Sub topic Google Workspace Events publishes Meet "
                          "events to (projects/<project>/topics/<topic>); unset: no events, "
                          "the poll alone reads new conferences")
    push_service_account: str | None = Field(
        None, description="the service account e-mail the Pub/Sub push subscription "
                          "authenticates as: push requests must carry a Google-signed token "
                          "for it (setting it turns the /webhooks/meet endpoint on)")
    push_audience: str | None = Field(
        None, description="the audience the push tokens are for (the push subscription's "
                          "'audience'); unset: the endpoint's URL, <public_url>/webhooks/meet")
    jwks_url: str = Field("https://www.googleapis.com/oauth2/v3/certs",
                          description="Google's signing keys for the push tokens")
    token_issuers: list[str] = Field(
        default_factory=lambda: ["https://accounts.google.com", "accounts.google.com"])
    renew_before_hours: float = Field(
        24.0, description="renew an event subscription when it has less than this left")
    artifact_wait_hours: float = Field(
        24.0, description="how long a conference whose transcript or recording is not yet "
                          "generated holds the sync cursor; after that it is reported and "
                          "passed over")

    @property
    def api_origin(self) -> str:
        """Where the Meet API is reached (for messages)."""
        return self.api_root or "https://meet.googleapis.com"
