"""Google credentials for the Meet connector, as google-auth objects that
googleapiclient sends with each request:

- a user connection's access token comes from the token vault (`core.connections`), the
  one cache every worker shares: `VaultCredentials.refresh` asks it, passing the token
  Google rejected, so a 401 refreshes once however many workers saw it;
- a service account with domain-wide delegation signs its own JWT assertion per rep
  (`delegated_credentials`); its key file's `token_uri` is replaced by the configured token
  endpoint, so the assertion goes to Google's host (or the emulator) and nowhere the file
  names.
"""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import google.auth.credentials
from google.auth import exceptions as google_errors

from core.connections import ConnectionBroken
from core.errors import ConfigError, TransientError

if TYPE_CHECKING:
    from core.settings import Settings

# What Google's token endpoint says when a delegated subject is not a user of the domain.
UNKNOWN_USER = "Invalid email or User ID"


class VaultCredentials(google.auth.credentials.Credentials):
    """A user connection's OAuth token, kept and refreshed by the token vault."""

    def __init__(self, vault: Any, connection_id: int):
        super().__init__()
        self._vault, self._connection_id = vault, connection_id

    def refresh(self, request) -> None:  # noqa: ARG002 (the vault makes its own requests)
        tokens = self._vault.access_token(self._connection_id, rejected=self.token)
        self.token = tokens.access_token
        # google-auth compares expiries as naive UTC.
        self.expiry = tokens.expires_at.astimezone(UTC).replace(tzinfo=None) \
            if tokens.expires_at is not None else None


def service_account_info(settings: Settings) -> dict:
    """The configured service account's key (ConfigError names the setting when absent or
    unreadable; the key itself is never in a message)."""
    path = settings.meet.service_account_file
    if not path:
        raise ConfigError("no service account is configured: set "
                          "COACHLOOP_MEET__SERVICE_ACCOUNT_FILE to its JSON key (README: "
                          "Google Meet)")
    try:
        info = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"COACHLOOP_MEET__SERVICE_ACCOUNT_FILE ({path}) is not a readable "
                          f"JSON key ({type(exc).__name__})") from None
    if not isinstance(info, dict) or info.get("type") != "service_account" or \
            not info.get("client_email") or not info.get("private_key"):
        raise ConfigError(f"COACHLOOP_MEET__SERVICE_ACCOUNT_FILE ({path}) is not a service "
                          "account key (Google Cloud console → IAM → Service accounts → Keys "
                          "→ Add key → JSON)")
    return info


def delegated_credentials(settings: Settings, subject: str, scopes: tuple[str, ...]):
    """Credentials acting as `subject` (a Workspace user) through domain-wide delegation."""
    from google.oauth2 import service_account

    info = dict(service_account_info(settings))
    info["token_uri"] = f"{settings.meet.oauth2_base.rstrip('/')}/token"
    try:
        return service_account.Credentials.from_service_account_info(
            info, scopes=list(scopes), subject=subject)
    except (ValueError, google_errors.MalformedError) as exc:
        raise ConfigError(f"the service account key in COACHLOOP_MEET__SERVICE_ACCOUNT_FILE "
                          f"cannot be used ({type(exc).__name__})") from None


class UnknownUser(ConnectionBroken):
    """Google has no such user in the Workspace: one rep of the roster, not the connection."""


def refresh_error(exc: Exception, who: str) -> Exception:
    """What a failed token request means: no such user (that rep only); Google refused the
    grant (delegation or consent withdrawn, a deleted key: an admin must act); anything else
    is worth trying again."""
    if isinstance(exc, google_errors.RefreshError) and getattr(exc, "retryable", False):
        return TransientError(f"Google's token endpoint is busy ({who}); trying again later")
    if isinstance(exc, google_errors.RefreshError):
        said = str(exc.args[0] if exc.args else "no reason").splitlines()[0][:200]
        if UNKNOWN_USER in said:
            return UnknownUser(f"Google knows no Workspace user {who} ({said}): the roster "
                               "names someone who is not a user of the Workspace")
        return ConnectionBroken(
            f"Google refused a token for {who} ({said}): check the service account's "
            "domain-wide delegation in the Admin console (Security → API controls → "
            "Domain-wide delegation) lists its client id with the scopes in the README, and "
            "that its key has not been deleted")
    return TransientError(f"Google's token endpoint could not be reached "
                          f"({type(exc).__name__})")
