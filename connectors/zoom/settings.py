"""Zoom's settings: `COACHLOOP_ZOOM__…`."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class ZoomSettings(BaseModel):
    """Zoom app credentials (Marketplace → your app) and where Zoom lives."""

    client_id: str | None = None
    client_secret: SecretStr | None = None
    account_id: str | None = Field(None, description="server-to-server apps only")
    oauth_base: str = "https://zoom.us"
    api_base: str = "https://api.zoom.us/v2"
    # An admin-managed app (installed by a Zoom admin for the account): only `:admin` scopes
    # may read the reps' recordings; a user-managed app reads its own user's alone.
    scopes: list[str] = Field(default_factory=lambda: [
        "cloud_recording:read:list_user_recordings:admin",
        "cloud_recording:read:list_recording_files:admin",
        "meeting:read:list_past_participants:admin", "user:read:user:admin"])
    webhook_secret_token: SecretStr | None = None
    webhook_tolerance_s: int = Field(300, description="reject signatures older than this")
    download_domains: list[str] = Field(
        default_factory=lambda: ["zoom.us", "zoom.com"],
        description="recordings and transcripts are fetched only from these domains (and "
                    "their subdomains) and from oauth_base/api_base: any other download URL, "
                    "or a redirect to one, is refused and no token goes there")
    backfill_days: int = Field(30, description="how far back the first sync of recordings "
                               "reaches (Zoom keeps cloud recordings about 6 months)")
    poll_minutes: int = Field(15, description="how often `celery beat` polls for recordings "
                              "webhooks missed")
    lookback_days: int = Field(2, description="each sync re-reads this many days before where "
                               "the last one stopped (late recordings, time zones)")
