"""Every vendor coachloop connects to, described once: a `vendor.yaml` in the vendor's folder,
validated here, registered by one line in the `coachloop.vendors` entry-point group.

A descriptor names, as `module:attribute` strings imported only when needed, the vendor's
settings model, its meeting source, CRM writer, webhook receiver, poller and connection
probe; its OAuth provider is plain data (URL templates over its settings, how the client
authenticates, how tokens are revoked). Adding a vendor is its folder, its emulator, its
mapping file and one `pyproject.toml` line; nothing else names it.

    [project.entry-points."coachloop.vendors"]
    acme = "acme_coachloop:VENDOR"     # VENDOR = Vendor.from_file(__file__)
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib import import_module
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution, entry_points
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

ENTRY_POINT_GROUP = "coachloop.vendors"
_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_TEMPLATE_FIELD = re.compile(r"\{(\w+)\}")


def _reference(value: str | None) -> str | None:
    if value is not None and not _REFERENCE.match(value):
        raise ValueError(f"{value!r} is not a 'module:attribute' reference")
    return value


class OAuthSpec(BaseModel):
    """A vendor's OAuth 2.0 provider as data. URLs are templates over the vendor's settings
    (`{oauth_base}/oauth/token`); `client_auth`: HTTP Basic or the form body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flow: Literal["authorization_code", "admin_consent"] = Field(
        "authorization_code", description="authorization_code: a user grants and we exchange "
        "the code (then refresh); admin_consent: a tenant admin consents for the whole tenant "
        "and the app mints its own tokens (`app_token`), no refresh token")
    authorize_url: str
    token_url: str
    app_token: str | None = Field(None, description="(tenant, settings) -> TokenSet: an "
                                  "app-only token for a consented tenant (admin_consent flow)")
    revoke_url: str | None = None
    revoke_hint: str = Field("", description="how an admin ends the grant at the vendor when "
                             "it offers no revocation call")
    revoke_token: Literal["access_token", "refresh_token"] = "refresh_token"
    revoke_with_client: bool = Field(False, description="the revocation request carries the "
                                     "client id and secret in its body")
    authorize_params: dict[str, str] = Field(default_factory=dict, description="more query "
                                             "parameters of the authorize URL (Google: "
                                             "access_type=offline for a refresh token)")
    optional_scopes_setting: str | None = Field(None, description="the setting that lists "
                                                "scopes asked for but not required")
    client_auth: Literal["basic", "body"] = "body"
    pkce: bool = True
    refresh_rotates: bool = Field(False, description="a refresh answers with a new refresh "
                                  "token that replaces the old one")
    lifetime_setting: str | None = Field(None, description="the setting that holds the token "
                                         "lifetime when the token response has no expires_in")
    identify: str | None = Field(None, description="access token -> the vendor account id, "
                                 "for vendors whose token response does not say")
    credentials_hint: str = Field("", description="where an admin finds the client id and "
                                  "secret, for the 'not configured' message")

    @field_validator("identify", "app_token")
    @classmethod
    def _check_identify(cls, value: str | None) -> str | None:
        return _reference(value)

    @model_validator(mode="after")
    def _check_flow(self) -> OAuthSpec:
        if (self.flow == "admin_consent") != (self.app_token is not None):
            raise ValueError("app_token is what an admin_consent flow mints tokens with: give "
                             "both or neither")
        return self


class Vendor(BaseModel):
    """One vendor, from its `vendor.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,30}$")
    label: str
    settings: str | None = Field(None, description="its settings model (COACHLOOP_<NAME>__…)")
    oauth: OAuthSpec | None = None
    api_origin: str | None = Field(None, description="URL template of its API, for messages")
    source: str | None = Field(None, description="its MeetingSource class")
    writer: str | None = Field(None, description="(org_id, settings) -> its CrmWriter")
    webhooks: str | None = Field(None, description="(settings) -> its WebhookReceiver, or "
                                 "None while unconfigured")
    poll: str | None = Field(None, description="(org_id, *, since, progress, on_item) -> ids "
                             "of meetings to process")
    poll_minutes_setting: str | None = None
    probe: str | None = Field(None, description="(connection_id, settings) -> what one cheap "
                              "authenticated call says")
    setup: str | None = Field(None, description="(org_id, settings, *, apply) -> what the "
                              "CRM needs before write-back (fields, objects), created when "
                              "an admin approves")
    on_connect: str | None = Field(None, description="(connection_id, settings) -> None: "
                                   "what follows a new connection (push subscriptions)")
    on_disconnect: str | None = Field(None, description="(connection_id, settings) -> None: "
                                      "what goes before a connection's tokens are dropped")
    webhook_secret_setting: str | None = Field(None, description="the setting holding the "
                                               "secret its webhooks are signed with")
    webhook_setup: str | None = Field(None, description="what an admin does with the webhook "
                                      "address instead (shown on the Connections page)")
    direct_connect: str | None = Field(None, description="(org_id, settings) -> "
                                       "ConnectionInfo: connect without anyone's consent "
                                       "(Google: a service account with domain-wide "
                                       "delegation), used while `direct_connect_setting` "
                                       "is set")
    direct_connect_setting: str | None = None

    @model_validator(mode="after")
    def _check_webhook_help(self) -> Vendor:
        if self.webhooks and (self.webhook_secret_setting is None) == (self.webhook_setup is None):
            raise ValueError("a vendor with webhooks names the setting of their signing secret "
                             "(webhook_secret_setting) or says what to do instead "
                             "(webhook_setup): one of the two")
        return self

    @field_validator("settings", "source", "writer", "webhooks", "poll", "probe", "setup",
                     "on_connect", "on_disconnect", "direct_connect")
    @classmethod
    def _check_references(cls, value: str | None) -> str | None:
        return _reference(value)

    @classmethod
    def from_file(cls, module_file: str | Path, name: str = "vendor.yaml") -> Vendor:
        """The descriptor next to a vendor package's `__init__.py`."""
        path = Path(module_file).with_name(name)
        try:
            return cls.model_validate(yaml.safe_load(path.read_text()))
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            raise RuntimeError(f"vendor descriptor {path} is invalid: {exc}") from exc

    def connects_directly(self, settings) -> bool:
        """Whether connecting needs no consent here (its `direct_connect_setting` is set)."""
        return bool(self.direct_connect and self.direct_connect_setting and
                    getattr(self.settings_of(settings), self.direct_connect_setting, None))

    def load(self, what: str) -> Any:
        """The object one of the descriptor's references names (e.g. `load("source")`)."""
        reference = getattr(self, what)
        if reference is None:
            from core.errors import NotFound

            raise NotFound(f"{self.label} has no {what}")
        return load_reference(reference)

    def settings_of(self, settings) -> Any:
        """This vendor's part of the app's settings."""
        return getattr(settings, self.name)

    def expand(self, template: str, settings) -> str:
        """A URL template filled from this vendor's settings, without a trailing slash on
        any base."""
        own = self.settings_of(settings)
        return _TEMPLATE_FIELD.sub(lambda m: str(getattr(own, m.group(1))).rstrip("/"),
                                   template)


def load_reference(reference: str) -> Any:
    """The object a `module:attribute` reference names."""
    module, _, attribute = reference.partition(":")
    return getattr(import_module(module), attribute)


def _entry_points() -> list[EntryPoint]:
    found = list(entry_points(group=ENTRY_POINT_GROUP))
    try:
        distribution("coachloop")
    except PackageNotFoundError:  # a source checkout: our own table, read from pyproject.toml
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        table = tomllib.loads(pyproject.read_text())["project"]["entry-points"]
        found += [EntryPoint(name, value, ENTRY_POINT_GROUP)
                  for name, value in table.get(ENTRY_POINT_GROUP, {}).items()]
    return found


@cache
def vendors() -> dict[str, Vendor]:
    """Every registered vendor by name. A broken or doubly registered one is a startup error
    that names it, not a vendor silently missing."""
    found: dict[str, Vendor] = {}
    for entry in _entry_points():
        try:
            vendor = entry.load()
        except (ImportError, AttributeError, RuntimeError) as exc:
            raise RuntimeError(f"vendor {entry.name!r} ({entry.value}) cannot be loaded: "
                               f"{exc}") from exc
        if not isinstance(vendor, Vendor) or vendor.name != entry.name:
            raise RuntimeError(f"vendor {entry.name!r} ({entry.value}) is not a Vendor named "
                               f"{entry.name!r}")
        if entry.name in found and found[entry.name] != vendor:
            raise RuntimeError(f"vendor {entry.name!r} is registered more than once")
        found[entry.name] = vendor
    return dict(sorted(found.items()))


def vendor(name: str) -> Vendor:
    """The vendor registered as `name`; `NotFound` lists the ones there are."""
    found = vendors().get(name)
    if found is None:
        from core.errors import NotFound

        raise NotFound(f"no vendor {name!r} (registered: {', '.join(vendors()) or 'none'})")
    return found


def with_a(what: str) -> list[Vendor]:
    """The vendors that have a `what` (oauth, source, writer, webhooks, poll)."""
    return [v for v in vendors().values() if getattr(v, what) is not None]
