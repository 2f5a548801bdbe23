"""Salesforce's settings: `COACHLOOP_SALESFORCE__…`."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class SalesforceSettings(BaseModel):
    """Salesforce External Client App (or Connected App) credentials."""

    client_id: str | None = None
    client_secret: SecretStr | None = None
    login_url: str = Field("https://login.salesforce.com",
                           description="https://test.salesforce.com for sandboxes, or My Domain")
    scopes: list[str] = Field(default_factory=lambda: ["api", "refresh_token"])
    session_lifetime_s: int = Field(7200, description="your org's session timeout: Salesforce "
                                    "token responses carry no expires_in")
    api_version: str = "60.0"
    mapping: str = Field("salesforce-meddic", description="a built-in mapping's name, or the "
                         "path of your own mapping file")
    quota_slow_share: float = Field(0.5, description="past this share of the org's daily API "
                                    "calls, write-back runs at most every quota_slow_minutes")
    quota_slow_minutes: float = 30.0
    quota_stop_share: float = Field(0.8, description="past this share, write-back stops until "
                                    "the next UTC day (what it has not written waits)")
