"""A wire-accurate HubSpot API emulator: OAuth, CRM objects v3, properties, custom object
schemas, associations v4, search, owners, pipelines, rate limits and v3-signed webhooks.

`HubSpotSandbox` keeps one portal in memory behind a lock; `create_app()` returns the FastAPI app
that `sandbox.server.serve` puts on HTTPS, so `hubspot-api-client` talks to it unchanged
(`HubSpot(access_token=..., host=url, ssl_ca_cert=ca)`).

Checked against developers.hubspot.com (docs, changelog) and HubSpot's client issue trackers:
- OAuth: `/oauth/authorize` query (client_id, redirect_uri, scope, optional_scope, state); token
  response `token_type`/`refresh_token`/`access_token`/`expires_in` 1800, plus `hub_id` and
  `scopes` (changelog, Aug 2025). Refresh tokens do not expire and are returned unchanged on
  refresh. Deleting a refresh token leaves its access tokens working (OAuth tokens guide).
  Errors carry `status` (BAD_AUTH_CODE, BAD_REFRESH_TOKEN, ...) plus RFC 6749 `error` and
  `error_description` (changelog "standardized error responses").
- Auth errors: 401 INVALID_AUTHENTICATION "Authentication credentials not found..."; expired
  token 401 EXPIRED_AUTHENTICATION "The OAuth token used to make this call expired N
  second(s) ago." with `context["expire time"]` (bodies quoted in HubSpot client issues).
- Missing scopes: 403 MISSING_SCOPES with `errors[].context.requiredGranularScopes` and
  `links.scopes`. Calls and notes need the contacts object scopes (engagements API reference).
- Rate limits: burst per app per 10 s, `X-HubSpot-RateLimit-Interval-Milliseconds/-Max/
  -Remaining` on API responses; `-Daily/-Daily-Remaining` only for private-app tokens ("OAuth
  authenticated calls will not include X-HubSpot-RateLimit-Daily...", changelog); no headers
  on search, which has its own per-second limit. 429 body `{status, message, errorType:
  RATE_LIMIT, correlationId, policyName, groupName}` (hubspot-api-python#117).
- Objects: 100 inputs per batch; upsert `idProperty` must have unique values, else 400 "Unable
  to perform update/upsert by non-unique <objectTypeId> property <name> in portal ID <id>";
  duplicate contact e-mail 409 CONFLICT "Contact already exists. Existing ID: N"; batch read
  of missing ids 207 with OBJECT_NOT_FOUND; per-input `objectWriteTraceId` → 207 partial.
  Returned properties: hs_object_id, created/modified dates plus those asked for; unknown
  asked-for names omitted. Values are strings; `date` values must be midnight UTC.
- Search: ≤ 5 filter groups, ≤ 10 filters per group, ≤ 25 in all (Aug 2024 changelog); ≤ 200
  per page; 10,000-result window (paging past it is a 400); 5 requests/s per portal.
- Associations v4: HubSpot-defined type ids (contact→company 279, primary 1; deal→contact 3;
  deal→company 341, primary 5; call/note ↔ contact/company/deal 193/194, 181/182, 205/206,
  201/202, 189/190, 213/214); batch read ≤ 1,000 inputs; user-defined labels via
  `/crm/v4/associations/{from}/{to}/labels`.
- Object type paths: names (plural or singular), objectTypeIds, custom objects by objectTypeId,
  `p<portal>_<name>` or `p_<name>`; anything else is 400 "Unable to infer object type from: X".
- Webhooks: v3 signature = base64(HMAC-SHA256(client secret, method + URI + body + timestamp))
  with `X-HubSpot-Request-Timestamp` in ms; up to 100 events per POST.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import secrets
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlencode

from fastapi import Request  # module level: FastAPI resolves the handlers' string annotations

from sandbox import hubspot_search as hsearch

PORTAL_ID = 24681357
APP_ID = 3141592
DEFAULT_CLIENT_ID = "5f0c8b3e-2d4a-4c1e-9a7b-1c2d3e4f5a6b"
DEFAULT_CLIENT_SECRET = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
API_BASE = "https://api.hubapi.com"

_OBJECT_SCOPES = ("contacts", "companies", "deals", "custom")
ALL_SCOPES: tuple[str, ...] = (
    "oauth",
    *(f"crm.objects.{o}.{rw}" for o in _OBJECT_SCOPES for rw in ("read", "write")),
    "crm.objects.owners.read",
    *(f"crm.schemas.{o}.{rw}" for o in _OBJECT_SCOPES for rw in ("read", "write")),
)

MAX_BATCH = 100
MAX_ASSOC_BATCH_READ = 1000
MAX_SEARCH_LIMIT = 200
MAX_UNIQUE_PROPERTIES = 10
MAX_STRING = 65_536
CODE_TTL = timedelta(minutes=10)

STANDARD_TYPES = {  # objectTypeId: (plural name, singular, scope family)
    "0-1": ("contacts", "contact", "contacts"),
    "0-2": ("companies", "company", "companies"),
    "0-3": ("deals", "deal", "deals"),
    "0-48": ("calls", "call", "contacts"),
    "0-46": ("notes", "note", "contacts"),
}

# (type id, from, to, inverse type id, v3 name, label) for HubSpot-defined association types.
_DEFAULT_ASSOCIATIONS = (
    (279, "0-1", "0-2", 280, "contact_to_company_unlabeled", None),
    (1, "0-1", "0-2", 2, "contact_to_company", "Primary"),
    (3, "0-3", "0-1", 4, "deal_to_contact", None),
    (341, "0-3", "0-2", 342, "deal_to_company_unlabeled", None),
    (5, "0-3", "0-2", 6, "deal_to_company", "Primary"),
    (194, "0-48", "0-1", 193, "call_to_contact", None),
    (182, "0-48", "0-2", 181, "call_to_company", None),
    (206, "0-48", "0-3", 205, "call_to_deal", None),
    (202, "0-46", "0-1", 201, "note_to_contact", None),
    (190, "0-46", "0-2", 189, "note_to_company", None),
    (214, "0-46", "0-3", 213, "note_to_deal", None),
)

DEAL_STAGES = (  # id, label, probability, closed
    ("appointmentscheduled", "Appointment Scheduled", "0.2", False),
    ("qualifiedtobuy", "Qualified To Buy", "0.4", False),
    ("presentationscheduled", "Presentation Scheduled", "0.6", False),
    ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", False),
    ("contractsent", "Contract Sent", "0.9", False),
    ("closedwon", "Closed Won", "1.0", True),
    ("closedlost", "Closed Lost", "0.0", True),
)

_FIELD_TYPES = {"string": {"text", "textarea", "html", "phonenumber", "file"},
                "number": {"number", "calculation_equation"},
                "date": {"date"}, "datetime": {"date"},
                "enumeration": {"select", "radio", "checkbox", "booleancheckbox",
                                "calculation_equation"},
                "bool": {"booleancheckbox"}}

RATE_LIMIT_KINDS = ("TEN_SECONDLY_ROLLING", "DAILY")


# --------------------------------------------------------------------------------------------
# Errors and small helpers
# --------------------------------------------------------------------------------------------

class HubSpotError(Exception):
    """A response in HubSpot's error shape, raised inside a handler."""

    def __init__(self, status: int, category: str, message: str, *,
                 errors: list | None = None, context: dict | None = None,
                 extra: dict | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.category, self.message = status, category, message
        self.errors, self.context, self.extra = errors, context, extra or {}
        self.headers = headers or {}

    def body(self) -> dict:
        out: dict[str, Any] = {"status": "error", "message": self.message,
                               "correlationId": str(uuid.uuid4())}
        if self.errors is not None:
            out["errors"] = self.errors
        if self.context is not None:
            out["context"] = self.context
        if self.category:
            out["category"] = self.category
        out.update(self.extra)
        return out


def _validation(message: str, **kw: Any) -> HubSpotError:
    return HubSpotError(400, "VALIDATION_ERROR", message, **kw)


def _missing_objects(ids: list[str]) -> list[dict]:
    """A batch answer's error entry for the ids that do not exist (none: no entry)."""
    return [{"status": "error", "category": "OBJECT_NOT_FOUND",
             "message": "Could not get some CRM objects, they may be deleted or not exist. "
                        "Check that ids are valid.", "context": {"ids": ids}}] if ids else []


def _not_found(object_id: str) -> HubSpotError:
    return HubSpotError(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually "
                        "numeric.", context={"id": [str(object_id)]})


def _iso(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _number_text(value: float) -> str:
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(value)


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp_ms: int | str) -> str:
    """HubSpot's `X-HubSpot-Signature-v3`: base64 HMAC-SHA256 of method+URI+body+timestamp."""
    message = method.upper().encode() + uri.encode() + body + str(timestamp_ms).encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------

@dataclass
class _Prop:
    name: str
    label: str
    type: str
    field_type: str
    group: str
    description: str = ""
    options: list[dict] = field(default_factory=list)
    unique: bool = False
    calculated: bool = False
    read_only: bool = False
    hubspot_defined: bool = True
    display_order: int = -1
    hidden: bool = False
    referenced: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def to_json(self, options: list[dict] | None = None) -> dict:
        out = {"name": self.name, "label": self.label, "type": self.type,
               "fieldType": self.field_type, "description": self.description,
               "groupName": self.group,
               "options": options if options is not None else self.options,
               "displayOrder": self.display_order, "calculated": self.calculated,
               "externalOptions": self.referenced is not None,
               "hasUniqueValue": self.unique, "hidden": self.hidden,
               "modificationMetadata": {"archivable": not self.hubspot_defined,
                                        "readOnlyDefinition": self.hubspot_defined,
                                        "readOnlyValue": self.read_only or self.calculated},
               "formField": not (self.read_only or self.calculated),
               "archived": False}
        if self.hubspot_defined:
            out["hubspotDefined"] = True
        if self.referenced:
            out["referencedObjectType"] = self.referenced
        if self.created_at:
            out["createdAt"] = _iso(self.created_at)
            out["updatedAt"] = _iso(self.updated_at or self.created_at)
        return out


def _opt(value: str, label: str, order: int) -> dict:
    return {"label": label, "value": value, "displayOrder": order, "hidden": False}


def _enum(name: str, label: str, group: str, values: Iterable[tuple[str, str]],
          field_type: str = "select", **kw: Any) -> _Prop:
    options = [_opt(v, lab, i) for i, (v, lab) in enumerate(values)]
    return _Prop(name, label, "enumeration", field_type, group, options=options, **kw)


def _text(name: str, label: str, group: str, field_type: str = "text", **kw: Any) -> _Prop:
    return _Prop(name, label, "string", field_type, group, **kw)


def _num(name: str, label: str, group: str, **kw: Any) -> _Prop:
    return _Prop(name, label, "number", "number", group, **kw)


def _when(name: str, label: str, group: str, type_: str = "datetime", **kw: Any) -> _Prop:
    return _Prop(name, label, type_, "date", group, **kw)


def _owner(group: str) -> _Prop:
    return _Prop("hubspot_owner_id", "Owner", "enumeration", "select", group,
                 referenced="OWNER")


def _system(created: str, modified: str, group: str) -> list[_Prop]:
    return [_num("hs_object_id", "Record ID", group, read_only=True),
            _when(created, "Create Date", group, read_only=True),
            _when(modified, "Last Modified Date", group, read_only=True)]


@dataclass
class _ObjectType:
    type_id: str
    name: str              # plural API name, or the custom object's name
    singular: str
    scope: str             # scope family: contacts | companies | deals | custom
    created_prop: str
    modified_prop: str
    defaults: tuple[str, ...]
    props: dict[str, _Prop]
    groups: dict[str, dict]
    custom: bool = False
    labels: dict | None = None
    primary_display: str | None = None
    required: list[str] = field(default_factory=list)
    searchable: list[str] = field(default_factory=list)
    secondary: list[str] = field(default_factory=list)
    schema_id: str = ""
    created_at: datetime | None = None
    description: str | None = None

    @property
    def fqn(self) -> str:
        return f"p{PORTAL_ID}_{self.name}" if self.custom else self.name


def _group(name: str, label: str, order: int = -1) -> dict:
    return {"name": name, "label": label, "displayOrder": order, "archived": False}


def _standard_types() -> dict[str, _ObjectType]:
    stages = [(s[0], s[1]) for s in DEAL_STAGES]
    deal_props = [
        _text("dealname", "Deal Name", "dealinformation"),
        _num("amount", "Amount", "dealinformation"),
        _enum("dealstage", "Deal Stage", "dealinformation", stages, "radio"),
        _enum("pipeline", "Pipeline", "dealinformation", [("default", "Sales Pipeline")]),
        _when("closedate", "Close Date", "dealinformation"),
        _owner("dealinformation"),
        _text("description", "Deal Description", "dealinformation", "textarea"),
        _enum("dealtype", "Deal Type", "dealinformation",
              [("newbusiness", "New Business"), ("existingbusiness", "Existing Business")],
              "radio"),
        _enum("hs_priority", "Priority", "dealinformation",
              [("low", "Low"), ("medium", "Medium"), ("high", "High")]),
        _text("closed_lost_reason", "Closed Lost Reason", "dealinformation", "textarea"),
        _text("closed_won_reason", "Closed Won Reason", "dealinformation", "textarea"),
        _Prop("hs_is_closed", "Is Deal Closed?", "bool", "booleancheckbox", "dealinformation",
              calculated=True),
        _Prop("hs_is_closed_won", "Is Closed Won", "bool", "booleancheckbox",
              "dealinformation", calculated=True),
        _num("hs_deal_stage_probability", "Deal probability", "dealinformation",
             calculated=True),
        *_system("createdate", "hs_lastmodifieddate", "dealinformation")]
    lifecycle = [("subscriber", "Subscriber"), ("lead", "Lead"),
                 ("marketingqualifiedlead", "Marketing Qualified Lead"),
                 ("salesqualifiedlead", "Sales Qualified Lead"), ("opportunity", "Opportunity"),
                 ("customer", "Customer"), ("evangelist", "Evangelist"), ("other", "Other")]
    contact_props = [
        _text("email", "Email", "contactinformation"),
        _text("firstname", "First Name", "contactinformation"),
        _text("lastname", "Last Name", "contactinformation"),
        _text("company", "Company Name", "contactinformation"),
        _text("jobtitle", "Job Title", "contactinformation"),
        _text("phone", "Phone Number", "contactinformation", "phonenumber"),
        _text("website", "Website URL", "contactinformation"),
        _enum("lifecyclestage", "Lifecycle Stage", "contactinformation", lifecycle, "radio"),
        _owner("contactinformation"),
        *_system("createdate", "lastmodifieddate", "contactinformation")]
    company_props = [
        _text("name", "Company name", "companyinformation"),
        _text("domain", "Company Domain Name", "companyinformation"),
        _text("website", "Website URL", "companyinformation"),
        _text("city", "City", "companyinformation"),
        _text("phone", "Phone Number", "companyinformation", "phonenumber"),
        _text("description", "Description", "companyinformation", "textarea"),
        _num("numberofemployees", "Number of Employees", "companyinformation"),
        _owner("companyinformation"),
        *_system("createdate", "hs_lastmodifieddate", "companyinformation")]
    statuses = ["BUSY", "CALLING_CRM_USER", "CANCELED", "COMPLETED", "CONNECTING", "FAILED",
                "IN_PROGRESS", "NO_ANSWER", "QUEUED", "RINGING"]
    call_props = [
        _when("hs_timestamp", "Activity date", "callinformation"),
        _text("hs_call_title", "Call Title", "callinformation"),
        _text("hs_call_body", "Call notes", "callinformation", "html"),
        _num("hs_call_duration", "Call duration", "callinformation"),
        _enum("hs_call_status", "Call status", "callinformation",
              [(s, s.replace("_", " ").title()) for s in statuses]),
        _enum("hs_call_direction", "Call direction", "callinformation",
              [("INBOUND", "Inbound"), ("OUTBOUND", "Outbound")]),
        _text("hs_call_recording_url", "Recording URL", "callinformation"),
        _text("hs_call_from_number", "From number", "callinformation"),
        _text("hs_call_to_number", "To number", "callinformation"),
        _text("hs_call_disposition", "Call outcome", "callinformation"),
        _owner("callinformation"),
        *_system("hs_createdate", "hs_lastmodifieddate", "callinformation")]
    note_props = [
        _when("hs_timestamp", "Activity date", "noteinformation"),
        _text("hs_note_body", "Note body", "noteinformation", "html"),
        _text("hs_attachment_ids", "Attached file IDs", "noteinformation"),
        _owner("noteinformation"),
        *_system("hs_createdate", "hs_lastmodifieddate", "noteinformation")]

    def make(type_id: str, props: list[_Prop], groups: list[dict], defaults: tuple[str, ...],
             created: str, modified: str, required: list[str] = ()) -> _ObjectType:
        name, singular, scope = STANDARD_TYPES[type_id]
        return _ObjectType(type_id, name, singular, scope, created, modified, defaults,
                           {p.name: p for p in props}, {g["name"]: g for g in groups},
                           required=list(required))

    return {t.type_id: t for t in (
        make("0-3", deal_props, [_group("dealinformation", "Deal information", 0),
                                 _group("deal_activity", "Deal activity", 1)],
             ("amount", "closedate", "createdate", "dealname", "dealstage",
              "hs_lastmodifieddate", "hs_object_id", "pipeline"),
             "createdate", "hs_lastmodifieddate"),
        make("0-1", contact_props, [_group("contactinformation", "Contact information", 0),
                                    _group("contact_activity", "Contact activity", 1)],
             ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate",
              "lastname"), "createdate", "lastmodifieddate"),
        make("0-2", company_props, [_group("companyinformation", "Company information", 0)],
             ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
             "createdate", "hs_lastmodifieddate"),
        make("0-48", call_props, [_group("callinformation", "Call information", 0)],
             ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
             "hs_createdate", "hs_lastmodifieddate", ["hs_timestamp"]),
        make("0-46", note_props, [_group("noteinformation", "Note information", 0)],
             ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
             "hs_createdate", "hs_lastmodifieddate", ["hs_timestamp"]),
    )}


@dataclass
class _AssocType:
    type_id: int
    from_type: str
    to_type: str
    inverse: int
    name: str
    label: str | None
    category: str = "HUBSPOT_DEFINED"

    def spec(self) -> dict:
        return {"category": self.category, "typeId": self.type_id, "label": self.label}


# --------------------------------------------------------------------------------------------
# Records, tokens, webhooks
# --------------------------------------------------------------------------------------------

@dataclass
class _Record:
    id: str
    props: dict[str, str]
    created_at: datetime
    updated_at: datetime


@dataclass
class _Client:
    client_id: str
    secret: str
    redirect_uris: tuple[str, ...] | None


@dataclass
class _Token:
    value: str
    kind: str           # access | refresh | private
    client_id: str
    scopes: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime | None
    refresh: str | None = None
    revoked: bool = False


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    expires: datetime
    used: bool = False


@dataclass
class _Subscription:
    id: int
    target_url: str
    event_types: tuple[str, ...]
    property_name: str | None
    verify: Any
    pending: list[dict] = field(default_factory=list)


@dataclass
class _Ctx:
    method: str
    template: str
    vars: dict[str, str]
    query: dict[str, list[str]]
    body: Any
    token: _Token

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def listed(self, name: str) -> list[str] | None:
        values = self.query.get(name)
        if values is None:
            return None
        return [v for raw in values for v in raw.split(",") if v]


def _route(template: str) -> re.Pattern:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile("^" + pattern + "$")


# --------------------------------------------------------------------------------------------
# The sandbox
# --------------------------------------------------------------------------------------------

class HubSpotSandbox:
    """An in-memory HubSpot portal served over HTTP by `create_app()`; thread-safe."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None,
                 token_lifetime: timedelta = timedelta(minutes=30), tier: str = "enterprise",
                 daily_limit: int = 1_000_000, burst_limit: int = 190,
                 search_per_second: int = 5, search_window: int = 10_000, seed: int = 0):
        self.clock = clock or (lambda: datetime.now(UTC))
        self.token_lifetime = token_lifetime
        self.tier = tier
        self.daily_limit = daily_limit
        self.burst_limit = burst_limit
        self.search_per_second = search_per_second
        self.search_window = search_window
        self.requests: Counter[str] = Counter()
        self.batch_writes: Counter[str] = Counter()
        self.base_url: str | None = None
        self._random = random.Random(seed)
        self._lock = threading.RLock()
        self._types = _standard_types()
        now = self.clock()
        for otype in self._types.values():
            for prop in otype.props.values():
                prop.created_at = prop.updated_at = now
        self._records: dict[str, dict[str, _Record]] = {t: {} for t in self._types}
        self._next_id = 1000 + self._random.randint(0, 899) * 10
        self._assoc_types: dict[int, _AssocType] = {}
        for type_id, src, dst, inverse, name, label in _DEFAULT_ASSOCIATIONS:
            inv_name = "_to_".join(reversed(name.replace("_unlabeled", "").split("_to_")))
            if name.endswith("_unlabeled"):
                inv_name += "_unlabeled"
            self._assoc_types[type_id] = _AssocType(type_id, src, dst, inverse, name, label)
            self._assoc_types[inverse] = _AssocType(inverse, dst, src, type_id, inv_name, label)
        self._next_assoc_type = 1001
        self._links: dict[tuple[str, str], dict[tuple[str, str], set[int]]] = {}
        self._owners: dict[str, dict] = {}
        self._clients: dict[str, _Client] = {}
        self._tokens: dict[str, _Token] = {}
        self._codes: dict[str, _Code] = {}
        self._faults: deque[str | int] = deque()
        self._burst: dict[str, deque[datetime]] = {}
        self._search_hits: deque[datetime] = deque()
        self._daily_used = 0
        self._daily_day = self._today()
        self._custom_serial = 0
        self._subscriptions: list[_Subscription] = []
        self._event_serial = 100
        self.add_client(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)

    # ---- configuration and fault injection -------------------------------------------------

    def add_client(self, client_id: str, secret: str,
                   redirect_uris: Iterable[str] | None = None) -> None:
        """Register an app; `redirect_uris=None` accepts any redirect URI."""
        with self._lock:
            self._clients[client_id] = _Client(client_id, secret,
                                               tuple(redirect_uris) if redirect_uris else None)

    def issue_token(self, scopes: Iterable[str] = ALL_SCOPES, *,
                    client_id: str = DEFAULT_CLIENT_ID, private_app: bool = False) -> str:
        """An access token without the OAuth dance (30 minutes, like an OAuth one); with
        `private_app=True` a static `pat-na1-…` token that never expires and is subject to the
        daily limit and its headers."""
        with self._lock:
            if private_app:
                return self._mint("private", client_id, tuple(scopes)).value
            refresh = self._mint("refresh", client_id, tuple(scopes))
            return self._mint("access", client_id, tuple(scopes), refresh.value).value

    def expire_tokens(self) -> None:
        """Every OAuth access token is now past its lifetime; refresh tokens stay good."""
        with self._lock:
            past = self.clock() - timedelta(seconds=1)
            for token in self._tokens.values():
                if token.kind == "access":
                    token.expires_at = min(token.expires_at or past, past)

    def revoke_all_tokens(self) -> None:
        """Revoke every access, refresh and private-app token (as an uninstall would)."""
        with self._lock:
            for token in self._tokens.values():
                token.revoked = True

    def fail_next(self, kind: str | int, times: int = 1) -> None:
        """Fail the next `times` API calls: "TEN_SECONDLY_ROLLING" or "DAILY" (429 with
        HubSpot's rate-limit body) or an HTTP status 500/502/503/504."""
        if kind not in RATE_LIMIT_KINDS and kind not in (500, 502, 503, 504):
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self._faults.extend([kind] * times)

    def clear_faults(self) -> None:
        """Forget the faults `fail_next` queued that have not happened yet."""
        with self._lock:
            self._faults.clear()

    def get_property(self, object_type: str, name: str) -> dict | None:
        """A property's definition as the properties API shows it (None: no such property)."""
        with self._lock:
            prop = self._seed_otype(object_type).props.get(name)
            return None if prop is None else self._prop_json(prop)

    def create_property(self, object_type: str, body: dict) -> dict:
        """Define a property as an admin would in HubSpot's settings (validated as the API
        validates it)."""
        with self._lock:
            otype = self._seed_otype(object_type)
            prop = self._new_prop(otype, body)
            prop.created_at = prop.updated_at = self.clock()
            otype.props[prop.name] = prop
            return self._prop_json(prop)

    def set_daily_usage(self, used: int) -> None:
        """Pretend `used` API calls were already made today."""
        with self._lock:
            self._roll_day()
            self._daily_used = used

    @property
    def daily_used(self) -> int:
        """API calls counted today (portal-wide)."""
        with self._lock:
            self._roll_day()
            return self._daily_used

    def set_tier(self, tier: str) -> None:
        """"enterprise" (custom objects allowed) or "professional" (no custom objects)."""
        if tier not in ("enterprise", "professional"):
            raise ValueError(tier)
        with self._lock:
            self.tier = tier

    def _today(self) -> date:
        return self.clock().astimezone(UTC).date()

    def _roll_day(self) -> None:
        if self._today() != self._daily_day:
            self._daily_day, self._daily_used = self._today(), 0

    # ---- seeding and inspection (no HTTP, not counted) -------------------------------------

    def create(self, object_type: str, properties: dict) -> str:
        """Create one record through the API's validation; returns its id."""
        with self._lock:
            otype = self._seed_otype(object_type)
            return self._create(otype, properties, source="CRM_UI").id

    def update(self, object_type: str, object_id: str, properties: dict) -> None:
        """Change one record as a user in HubSpot's UI would (fires webhooks)."""
        with self._lock:
            otype = self._seed_otype(object_type)
            record = self._records[otype.type_id].get(str(object_id))
            if record is None:
                raise KeyError(object_id)
            self._apply_update(otype, record, properties, source="CRM_UI")

    def get(self, object_type: str, object_id: str) -> dict | None:
        """A copy of a record's properties, or None."""
        with self._lock:
            otype = self._seed_otype(object_type)
            record = self._records[otype.type_id].get(str(object_id))
            return dict(record.props) if record else None

    def records(self, object_type: str) -> list[dict]:
        """Every record of a type ({"id", **properties}), in id order."""
        with self._lock:
            otype = self._seed_otype(object_type)
            return [{"id": r.id, **r.props} for r in self._records[otype.type_id].values()]

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str,
                  type_id: int | None = None) -> None:
        """Link two records (both directions); `type_id=None` uses the default type."""
        with self._lock:
            src = self._seed_otype(from_type)
            dst = self._seed_otype(to_type)
            assoc = self._assoc_type(src, dst, type_id)
            self._need_record(src, str(from_id))
            self._need_record(dst, str(to_id))
            self._link(src.type_id, str(from_id), dst.type_id, str(to_id), assoc)

    def associations(self, from_type: str, from_id: str,
                     to_type: str) -> list[tuple[str, list[int]]]:
        """(to id, sorted type ids) for each record linked from this one."""
        with self._lock:
            src = self._seed_otype(from_type)
            dst = self._seed_otype(to_type)
            links = self._links.get((src.type_id, str(from_id)), {})
            return [(to_id, sorted(types)) for (t, to_id), types in sorted(links.items())
                    if t == dst.type_id and types]

    def add_owner(self, email: str, first_name: str, last_name: str) -> str:
        """Add a HubSpot user who can own records; returns the owner id."""
        with self._lock:
            owner_id = str(10_000_000 + len(self._owners) * 7919 + self._random.randint(0, 99))
            now = _iso(self.clock())
            self._owners[owner_id] = {
                "id": owner_id, "email": email, "type": "PERSON", "firstName": first_name,
                "lastName": last_name, "userId": 5_000_000 + len(self._owners),
                "userIdIncludingInactive": 5_000_000 + len(self._owners),
                "createdAt": now, "updatedAt": now, "archived": False, "teams": []}
            return owner_id

    def _seed_otype(self, name: str) -> _ObjectType:
        """An object type as the seeding and inspection helpers take it: as the API does,
        or a custom object by its bare schema name."""
        try:
            return self._otype(name, check_tier=False)
        except HubSpotError:
            for otype in self._types.values():
                if otype.custom and otype.name.lower() == str(name).lower():
                    return otype
            raise

    # ---- object types ----------------------------------------------------------------------

    def _otype(self, name: str, *, check_tier: bool = True) -> _ObjectType:
        key = unquote(str(name)).strip()
        low = key.lower()
        found = self._types.get(key)
        if found is None:
            for otype in self._types.values():
                names = (otype.fqn.lower(), f"p_{otype.name.lower()}") if otype.custom \
                    else (otype.name, otype.singular)
                if low in names:
                    found = otype
                    break
        if found is None:
            raise _validation(f"Unable to infer object type from: {key}")
        if found.custom and check_tier and self.tier != "enterprise":
            raise self._tier_error()
        return found

    @staticmethod
    def _tier_error() -> HubSpotError:
        return HubSpotError(403, "FORBIDDEN", "This portal does not have access to custom "
                            "objects. Custom objects require an Enterprise subscription.")

    def _need_record(self, otype: _ObjectType, object_id: str) -> _Record:
        record = self._records[otype.type_id].get(object_id)
        if record is None:
            raise _not_found(object_id)
        return record

    # ---- property validation ---------------------------------------------------------------

    def _unique_props(self, otype: _ObjectType) -> set[str]:
        names = {p.name for p in otype.props.values() if p.unique}
        if otype.type_id == "0-1":
            names.add("email")  # contacts deduplicate on e-mail (upsert by email is documented)
        return names

    def _coerce(self, prop: _Prop, raw: Any) -> tuple[str | None, tuple[str, str] | None]:
        """(stored value, None) or (None, (error code, message))."""
        if raw is None or raw == "":
            return None, None
        if isinstance(raw, (dict, list)):
            return None, ("INVALID_VALUE",
                          f"{json.dumps(raw)} is not a valid value for {prop.name}")
        text = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
        if prop.type == "number":
            try:
                number = float(text)
            except ValueError:
                return None, ("INVALID_DOUBLE", f"{text} is not a valid number")
            return _number_text(number), None
        if prop.type == "bool":
            if text.lower() not in ("true", "false"):
                return None, ("INVALID_BOOLEAN", f"{text} is not a valid boolean")
            return text.lower(), None
        if prop.type == "date":
            millis = hsearch.to_millis(text)
            if millis is None:
                return None, ("INVALID_DATE", f"{text} is not a valid date")
            if millis % 86_400_000:
                moment = datetime.fromtimestamp(millis / 1000, UTC)
                return None, ("INVALID_DATE", (f"{text} is at {moment.hour}:{moment.minute}:"
                              f"{moment.second}.{moment.microsecond // 1000} UTC, not midnight!"))
            return datetime.fromtimestamp(millis / 1000, UTC).date().isoformat(), None
        if prop.type == "datetime":
            millis = hsearch.to_millis(text)
            if millis is None:
                return None, ("INVALID_DATETIME", f"{text} is not a valid datetime")
            return _iso(datetime.fromtimestamp(millis / 1000, UTC)), None
        if prop.type == "enumeration":
            if prop.referenced == "OWNER":
                if text not in self._owners:
                    return None, ("INVALID_OWNER_ID", f"{text} is not a valid owner id")
                return text, None
            allowed = [o["value"] for o in prop.options]
            parts = text.split(";") if prop.field_type == "checkbox" else [text]
            for part in parts:
                if part not in allowed:
                    return None, ("INVALID_OPTION", (f"{part} was not one of the allowed "
                                  f"options: [{', '.join(allowed)}]"))
            return text, None
        if len(text) > MAX_STRING:
            return None, ("INVALID_STRING", (f"{prop.name} value is {len(text)} characters "
                          f"long; the limit is {MAX_STRING}"))
        return text, None

    def _clean(self, otype: _ObjectType, values: Any) -> dict[str, str | None]:
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise _validation("Invalid input JSON: properties must be an object")
        clean: dict[str, str | None] = {}
        problems: list[dict] = []
        for name, raw in values.items():
            prop = otype.props.get(name)
            if prop is None:
                problems.append(("PROPERTY_DOESNT_EXIST", name,
                                 f'Property "{name}" does not exist'))
                continue
            if prop.read_only or prop.calculated:
                if name == "hs_object_id":
                    continue  # echoing the record id back is harmless
                problems.append(("READ_ONLY_VALUE", name,
                                 f"{name} is a read only property; its value cannot be set."))
                continue
            value, error = self._coerce(prop, raw)
            if error:
                problems.append((error[0], name, error[1]))
            else:
                clean[name] = value
        if problems:
            raise self._property_errors(problems)
        return clean

    @staticmethod
    def _property_errors(problems: list[tuple[str, str, str]]) -> HubSpotError:
        details = [{"isValid": False, "message": msg, "error": code, "name": name,
                    "localizedErrorMessage": msg, "portalId": PORTAL_ID}
                   for code, name, msg in problems]
        return _validation("Property values were not valid: " + json.dumps(details),
                           errors=[{"message": msg, "code": code,
                                    "context": {"propertyName": [name]}}
                                   for code, name, msg in problems])

    def _check_unique(self, otype: _ObjectType, clean: dict, own_id: str | None,
                      pending: dict[tuple[str, str], str] | None = None) -> None:
        for name in self._unique_props(otype):
            value = clean.get(name)
            if value is None:
                continue
            key = value.lower() if name == "email" else value
            for record in self._records[otype.type_id].values():
                theirs = record.props.get(name)
                if theirs is None or record.id == own_id:
                    continue
                if (theirs.lower() if name == "email" else theirs) == key:
                    raise self._conflict(otype, name, value, record.id)
            if pending is not None:
                other = pending.get((name, key))
                if other is not None and other != own_id:
                    raise self._conflict(otype, name, value, other)
                pending[(name, key)] = own_id or f"new:{len(pending)}"

    @staticmethod
    def _conflict(otype: _ObjectType, name: str, value: str, existing: str) -> HubSpotError:
        if otype.type_id == "0-1" and name == "email":
            return HubSpotError(409, "CONFLICT", f"Contact already exists. Existing ID: "
                                f"{existing}")
        return HubSpotError(409, "CONFLICT", f"A {otype.singular} with {name}={value} already "
                            f"exists. Existing ID: {existing}")

    # ---- record writes ---------------------------------------------------------------------

    def _new_id(self) -> str:
        self._next_id += self._random.randint(1, 9)
        return str(self._next_id)

    def _derive(self, otype: _ObjectType, props: dict[str, str], now: datetime) -> None:
        if otype.type_id != "0-3":
            return
        stage = next((s for s in DEAL_STAGES if s[0] == props.get("dealstage")), None)
        if stage is None:
            for name in ("hs_is_closed", "hs_is_closed_won", "hs_deal_stage_probability"):
                props.pop(name, None)
            return
        props["hs_is_closed"] = "true" if stage[3] else "false"
        props["hs_is_closed_won"] = "true" if stage[0] == "closedwon" else "false"
        props["hs_deal_stage_probability"] = stage[2]
        if stage[3] and not props.get("closedate"):
            props["closedate"] = _iso(now)  # HubSpot stamps a close date when a deal closes

    def _prepare_create(self, otype: _ObjectType, values: Any,
                        pending: dict | None = None) -> dict[str, str]:
        clean = self._clean(otype, values)
        missing = [n for n in otype.required if clean.get(n) is None]
        if missing:
            raise self._property_errors([("REQUIRED_PROPERTY", n, f"{n} is required")
                                         for n in missing])
        self._check_unique(otype, clean, None, pending)
        return {k: v for k, v in clean.items() if v is not None}

    def _create(self, otype: _ObjectType, values: Any, source: str = "API",
                clean: dict[str, str] | None = None) -> _Record:
        props = clean if clean is not None else self._prepare_create(otype, values)
        now = self.clock()
        record_id = self._new_id()
        props = dict(props)
        props.update({"hs_object_id": record_id, otype.created_prop: _iso(now),
                      otype.modified_prop: _iso(now)})
        self._derive(otype, props, now)
        record = _Record(record_id, props, now, now)
        self._records[otype.type_id][record_id] = record
        self._emit(otype, record, "creation", None, source)
        return record

    def _apply_update(self, otype: _ObjectType, record: _Record, values: Any,
                      source: str = "API", clean: dict | None = None) -> _Record:
        if clean is None:
            clean = self._clean(otype, values)
            self._check_unique(otype, clean, record.id)
        before = dict(record.props)
        for name, value in clean.items():
            if value is None:
                record.props.pop(name, None)
            else:
                record.props[name] = value
        now = self.clock()
        record.updated_at = now
        record.props[otype.modified_prop] = _iso(now)
        self._derive(otype, record.props, now)
        for name in clean:
            if before.get(name) != record.props.get(name):
                self._emit(otype, record, "propertyChange", name, source)
        return record

    def _archive(self, otype: _ObjectType, record_id: str) -> None:
        record = self._records[otype.type_id].pop(record_id, None)
        if record is None:
            return
        for key in self._links.pop((otype.type_id, record_id), {}):
            self._links.get(key, {}).pop((otype.type_id, record_id), None)
        self._emit(otype, record, "deletion", None, "API")

    def _find(self, otype: _ObjectType, object_id: str, id_property: str | None) -> _Record:
        if not id_property or id_property == "hs_object_id":
            return self._need_record(otype, str(object_id))
        if id_property not in self._unique_props(otype):
            raise self._non_unique(otype, id_property)
        record = self._lookup(otype, id_property, str(object_id))
        if record is None:
            raise _not_found(object_id)
        return record

    def _lookup(self, otype: _ObjectType, prop: str, value: str) -> _Record | None:
        want = value.lower() if prop == "email" else value
        for record in self._records[otype.type_id].values():
            theirs = record.props.get(prop)
            if theirs is not None and (theirs.lower() if prop == "email" else theirs) == want:
                return record
        return None

    @staticmethod
    def _non_unique(otype: _ObjectType, prop: str) -> HubSpotError:
        return _validation(f"Unable to perform update/upsert by non-unique {otype.type_id} "
                           f"property {prop} in portal ID {PORTAL_ID}")

    def _serialize(self, otype: _ObjectType, record: _Record, wanted: list[str] | None,
                   extra: Iterable[str] = ()) -> dict:
        names = list(otype.defaults) if wanted is None else \
            ["hs_object_id", otype.created_prop, otype.modified_prop, *wanted]
        names += list(extra)
        props = {n: record.props.get(n) for n in dict.fromkeys(names) if n in otype.props}
        return {"id": record.id, "properties": props, "createdAt": _iso(record.created_at),
                "updatedAt": _iso(record.updated_at), "archived": False}

    # ---- associations ----------------------------------------------------------------------

    def _assoc_type(self, src: _ObjectType, dst: _ObjectType,
                    type_id: int | None) -> _AssocType:
        if type_id is None:
            candidates = [a for a in self._assoc_types.values()
                          if a.from_type == src.type_id and a.to_type == dst.type_id
                          and a.label is None and (a.category == "HUBSPOT_DEFINED" or src.custom
                                                   or dst.custom)]
            if not candidates:
                raise _validation(f"No default association type between {src.name} and "
                                  f"{dst.name}")
            return candidates[0]
        assoc = self._assoc_types.get(int(type_id))
        if assoc is None or assoc.from_type != src.type_id or assoc.to_type != dst.type_id:
            raise _validation(f"{type_id} is not a valid association type id from "
                              f"{src.type_id} to {dst.type_id}")
        return assoc

    def _link(self, src: str, src_id: str, dst: str, dst_id: str, assoc: _AssocType) -> None:
        self._links.setdefault((src, src_id), {}).setdefault((dst, dst_id), set()).add(
            assoc.type_id)
        self._links.setdefault((dst, dst_id), {}).setdefault((src, src_id), set()).add(
            assoc.inverse)
        # A labelled association always comes with the unlabeled one, as in HubSpot.
        if assoc.label is not None:
            plain = next((a for a in self._assoc_types.values() if a.from_type == src
                          and a.to_type == dst and a.label is None), None)
            if plain is not None:
                self._links[(src, src_id)][(dst, dst_id)].add(plain.type_id)
                self._links[(dst, dst_id)][(src, src_id)].add(plain.inverse)

    def _unlink(self, src: str, src_id: str, dst: str, dst_id: str,
                type_ids: Iterable[int] | None = None) -> None:
        forward = self._links.get((src, src_id), {}).get((dst, dst_id))
        backward = self._links.get((dst, dst_id), {}).get((src, src_id))
        if forward is None:
            return
        if type_ids is None:
            forward.clear()
            if backward is not None:
                backward.clear()
        else:
            for type_id in type_ids:
                forward.discard(int(type_id))
                if backward is not None and int(type_id) in self._assoc_types:
                    backward.discard(self._assoc_types[int(type_id)].inverse)

    def _assoc_json(self, src: str, src_id: str, dst: str) -> list[dict]:
        out = []
        for (t, to_id), types in sorted(self._links.get((src, src_id), {}).items(),
                                        key=lambda kv: int(kv[0][1])):
            if t == dst and types:
                out.append({"toObjectId": int(to_id), "associationTypes": [
                    self._assoc_types[i].spec() for i in sorted(types)]})
        return out

    def _v3_associations(self, otype: _ObjectType, record: _Record,
                         wanted: list[str]) -> dict:
        out = {}
        for name in wanted:
            try:
                dst = self._otype(name, check_tier=False)
            except HubSpotError:
                continue
            results = [{"id": to_id, "type": self._assoc_types[i].name}
                       for (t, to_id), types in sorted(
                           self._links.get((otype.type_id, record.id), {}).items())
                       if t == dst.type_id for i in sorted(types)]
            if results:
                out[dst.fqn] = {"results": results}
        return out

    # ---- webhooks --------------------------------------------------------------------------

    def subscribe(self, target_url: str, *, event_types: Iterable[str] = ("deal.propertyChange",),
                  property_name: str | None = "dealstage", verify: Any = True) -> int:
        """Deliver matching events to `target_url` on `flush_webhooks()`; returns the
        subscription id. `verify`: a CA bundle path or a bool, as httpx takes it."""
        with self._lock:
            sub = _Subscription(len(self._subscriptions) + 1, target_url, tuple(event_types),
                                property_name, verify)
            self._subscriptions.append(sub)
            return sub.id

    def _emit(self, otype: _ObjectType, record: _Record, kind: str, prop: str | None,
              source: str) -> None:
        event_type = f"{otype.singular}.{kind}"
        for sub in self._subscriptions:
            if event_type not in sub.event_types:
                continue
            if kind == "propertyChange" and sub.property_name not in (None, prop):
                continue
            self._event_serial += 1
            event = {"eventId": self._event_serial, "subscriptionId": sub.id,
                     "portalId": PORTAL_ID, "appId": APP_ID, "occurredAt": _ms(self.clock()),
                     "subscriptionType": event_type, "attemptNumber": 0,
                     "objectId": int(record.id), "changeSource": source}
            if kind == "propertyChange":
                event.update({"propertyName": prop, "propertyValue": record.props.get(prop, "")})
            sub.pending.append(event)

    def pending_webhooks(self) -> list[dict]:
        """Events queued for delivery, oldest first."""
        with self._lock:
            return [e for sub in self._subscriptions for e in sub.pending]

    def signed_delivery(self, uri: str, events: list[dict],
                        secret: str = DEFAULT_CLIENT_SECRET) -> tuple[dict, bytes]:
        """Headers and body HubSpot would POST to `uri` for these events (v3 signature)."""
        body = json.dumps(events, separators=(",", ":")).encode()
        timestamp = _ms(self.clock())
        headers = {"Content-Type": "application/json",
                   "X-HubSpot-Signature-v3": sign_v3(secret, "POST", uri, body, timestamp),
                   "X-HubSpot-Signature-Version": "v3",
                   "X-HubSpot-Request-Timestamp": str(timestamp)}
        return headers, body

    def flush_webhooks(self) -> list[int]:
        """POST every queued event (≤ 100 per request); returns the HTTP statuses received.
        Events whose delivery failed stay queued with their attemptNumber increased."""
        import httpx

        statuses: list[int] = []
        with self._lock:
            batches = []
            for sub in self._subscriptions:
                while sub.pending:
                    chunk, sub.pending = sub.pending[:100], sub.pending[100:]
                    batches.append((sub, chunk))
        for sub, chunk in batches:
            headers, body = self.signed_delivery(sub.target_url, chunk)
            verify = sub.verify
            if isinstance(verify, (str, Path)):
                import ssl

                verify = ssl.create_default_context(cafile=str(verify))
            try:
                response = httpx.post(sub.target_url, content=body, headers=headers,
                                      verify=verify, timeout=10)
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            statuses.append(status)
            if not 200 <= status < 300:
                with self._lock:
                    for event in chunk:
                        event["attemptNumber"] += 1
                    sub.pending = chunk + sub.pending
        return statuses

    # ---- HTTP ------------------------------------------------------------------------------

    def create_app(self):
        """The FastAPI app: /oauth/*, /crm/*, /crm-object-schemas/*, /account-info/*."""
        from fastapi import FastAPI
        from fastapi.responses import (
            HTMLResponse,
            JSONResponse,
            RedirectResponse,
            Response,
        )

        app = FastAPI(title="coachloop HubSpot sandbox", docs_url=None, redoc_url=None,
                      openapi_url=None)

        @app.get("/oauth/authorize")
        def authorize(request: Request):
            status, payload = self.authorize(dict(request.query_params))
            if status == 302:
                return RedirectResponse(payload, status_code=302)
            return HTMLResponse(f"<html><body><h1>Couldn't complete the connection</h1>"
                                f"<p>{payload}</p></body></html>", status_code=status)

        @app.api_route("/{path:path}", methods=["GET", "POST", "PATCH", "PUT", "DELETE"])
        async def api(path: str, request: Request):
            raw = request.scope.get("raw_path") or request.url.path.encode()
            raw_path = raw.decode().split("?")[0]
            body = await request.body()
            query = parse_qs(request.url.query, keep_blank_values=True)
            status, payload, headers = self.handle(
                request.method, raw_path, query, body, request.headers.get("authorization", ""),
                request.headers.get("content-type", ""))
            if payload is None:
                return Response(status_code=status, headers=headers)
            if isinstance(payload, str):
                return HTMLResponse(payload, status_code=status, headers=headers)
            return JSONResponse(payload, status_code=status, headers=headers)

        return app

    def start(self, tls, *, port: int = 0):
        """Serve over HTTPS on loopback; returns the `RunningServer` (URL in `base_url`)."""
        from sandbox.server import serve

        server = serve(self.create_app(), tls, port=port)
        self.base_url = server.url
        return server

    _OAUTH_ROUTES = (
        ("POST", "/oauth/v1/token", "_h_token"),
        ("POST", "/oauth/2026-03/token", "_h_token"),
        ("POST", "/oauth/2026-03/token/introspect", "_h_introspect"),
        ("POST", "/oauth/2026-03/token/revoke", "_h_revoke"),
        ("GET", "/oauth/v1/access-tokens/{token}", "_h_access_token_info"),
        ("GET", "/oauth/v1/refresh-tokens/{token}", "_h_refresh_token_info"),
        ("DELETE", "/oauth/v1/refresh-tokens/{token}", "_h_refresh_token_delete"),
    )
    _API_ROUTES = (
        ("GET", "/account-info/v3/details", "_h_account"),
        ("GET", "/account-info/v3/api-usage/daily/private-apps", "_h_usage"),
        ("GET", "/crm/v3/owners", "_h_owners"),
        ("GET", "/crm/v3/owners/{ownerId}", "_h_owner"),
        ("GET", "/crm/v3/pipelines/{objectType}", "_h_pipelines"),
        ("GET", "/crm/v3/pipelines/{objectType}/{pipelineId}", "_h_pipeline"),
        ("GET", "/crm/v3/pipelines/{objectType}/{pipelineId}/stages", "_h_stages"),
        ("POST", "/crm/v3/objects/{objectType}/search", "_h_search"),
        ("POST", "/crm/v3/objects/{objectType}/batch/read", "_h_batch_read"),
        ("POST", "/crm/v3/objects/{objectType}/batch/create", "_h_batch_create"),
        ("POST", "/crm/v3/objects/{objectType}/batch/update", "_h_batch_update"),
        ("POST", "/crm/v3/objects/{objectType}/batch/upsert", "_h_batch_upsert"),
        ("POST", "/crm/v3/objects/{objectType}/batch/archive", "_h_batch_archive"),
        ("GET", "/crm/v3/objects/{objectType}", "_h_list"),
        ("POST", "/crm/v3/objects/{objectType}", "_h_create"),
        ("GET", "/crm/v3/objects/{objectType}/{objectId}", "_h_get"),
        ("PATCH", "/crm/v3/objects/{objectType}/{objectId}", "_h_update"),
        ("DELETE", "/crm/v3/objects/{objectType}/{objectId}", "_h_delete"),
        ("POST", "/crm/v3/properties/{objectType}/batch/create", "_h_props_batch_create"),
        ("GET", "/crm/v3/properties/{objectType}/groups", "_h_groups"),
        ("POST", "/crm/v3/properties/{objectType}/groups", "_h_group_create"),
        ("GET", "/crm/v3/properties/{objectType}/groups/{groupName}", "_h_group"),
        ("PATCH", "/crm/v3/properties/{objectType}/groups/{groupName}", "_h_group_update"),
        ("GET", "/crm/v3/properties/{objectType}", "_h_props"),
        ("POST", "/crm/v3/properties/{objectType}", "_h_prop_create"),
        ("GET", "/crm/v3/properties/{objectType}/{propertyName}", "_h_prop"),
        ("PATCH", "/crm/v3/properties/{objectType}/{propertyName}", "_h_prop_update"),
        ("DELETE", "/crm/v3/properties/{objectType}/{propertyName}", "_h_prop_delete"),
        ("GET", "/crm-object-schemas/v3/schemas", "_h_schemas"),
        ("POST", "/crm-object-schemas/v3/schemas", "_h_schema_create"),
        ("GET", "/crm-object-schemas/v3/schemas/{objectType}", "_h_schema"),
        ("GET", "/crm/v3/schemas", "_h_schemas"),
        ("POST", "/crm/v3/schemas", "_h_schema_create"),
        ("GET", "/crm/v3/schemas/{objectType}", "_h_schema"),
        ("POST", "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/create",
         "_h_assoc_batch_create"),
        ("POST", "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/associate/default",
         "_h_assoc_batch_default"),
        ("POST", "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read",
         "_h_assoc_batch_read"),
        ("POST", "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/archive",
         "_h_assoc_batch_archive"),
        ("POST", "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/labels/archive",
         "_h_assoc_batch_labels_archive"),
        ("GET", "/crm/v4/associations/{fromObjectType}/{toObjectType}/labels",
         "_h_assoc_labels"),
        ("POST", "/crm/v4/associations/{fromObjectType}/{toObjectType}/labels",
         "_h_assoc_label_create"),
        ("GET", "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}",
         "_h_assoc_list"),
        ("PUT", ("/crm/v4/objects/{fromObjectType}/{fromObjectId}/associations/default/"
                 "{toObjectType}/{toObjectId}"), "_h_assoc_put_default"),
        ("PUT", ("/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}/"
                 "{toObjectId}"), "_h_assoc_put"),
        ("DELETE", ("/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}/"
                    "{toObjectId}"), "_h_assoc_delete"),
    )
    _COMPILED: ClassVar[list] = []

    @classmethod
    def _match(cls, method: str, path: str) -> tuple[str, str, dict, bool] | None:
        if not cls._COMPILED:
            cls._COMPILED = [(m, t, _route(t), h, t.startswith("/oauth"))
                             for m, t, h in cls._OAUTH_ROUTES + cls._API_ROUTES]
        for m, template, regex, handler, oauth in cls._COMPILED:
            if m != method:
                continue
            hit = regex.match(path)
            if hit:
                return template, handler, {k: unquote(v) for k, v in hit.groupdict().items()}, \
                    oauth
        return None

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: bytes,
               authorization: str, content_type: str = "") -> tuple[int, Any, dict]:
        """Serve one request: (status, JSON body or HTML text or None, headers)."""
        with self._lock:
            path = "/" + path.strip("/") if path != "/" else path
            matched = self._match(method, path)
            if matched is None:
                self.requests[f"{method} {path}"] += 1
                return 404, HubSpotError(404, "", "Not Found").body(), {}
            template, handler, variables, oauth = matched
            self.requests[f"{method} {template}"] += 1
            if oauth:
                form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
                for key, values in query.items():
                    form.setdefault(key, values[0])
                return getattr(self, handler)(form, variables)
            return self._api(method, template, handler, variables, query, body, authorization)

    def _api(self, method: str, template: str, handler: str, variables: dict,
             query: dict, body: bytes, authorization: str) -> tuple[int, Any, dict]:
        headers: dict[str, str] = {}
        is_search = template.endswith("/search")
        try:
            if self._faults:
                fault = self._faults.popleft()
                if fault in RATE_LIMIT_KINDS:
                    raise self._rate_limited(fault, headers)
                if fault == 500:
                    raise HubSpotError(500, "INTERNAL_ERROR", "internal error")
                return fault, (f"<html><head><title>{fault} error</title></head><body>"
                               f"<h1>{fault}</h1></body></html>"), {}
            token = self._authenticate(authorization)
            self._count(token, is_search, headers)
            try:
                payload = json.loads(body) if body else None
            except json.JSONDecodeError as exc:
                raise _validation(f"Invalid input JSON on line {exc.lineno}, column "
                                  f"{exc.colno}: {exc.msg}") from None
            ctx = _Ctx(method, template, variables, query, payload, token)
            status, result = getattr(self, handler)(ctx)
            return status, result, headers
        except HubSpotError as exc:
            return exc.status, exc.body(), {**headers, **exc.headers}

    # ---- auth, scopes, limits --------------------------------------------------------------

    def _authenticate(self, authorization: str) -> _Token:
        value = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
        token = self._tokens.get(value)
        if token is None or token.kind == "refresh" or token.revoked:
            raise HubSpotError(401, "INVALID_AUTHENTICATION", "Authentication credentials not "
                               "found. This API supports OAuth 2.0 authentication and you can "
                               "find more details at https://developers.hubspot.com/docs/"
                               "methods/auth/oauth-overview")
        now = self.clock()
        if token.expires_at is not None and now >= token.expires_at:
            ago = int((now - token.expires_at).total_seconds())
            for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
                if ago >= size or unit == "second":
                    amount = ago // size
                    break
            raise HubSpotError(401, "EXPIRED_AUTHENTICATION", f"The OAuth token used to make "
                               f"this call expired {amount} {unit}(s) ago.",
                               context={"expire time": [_iso(token.expires_at)]})
        return token

    def _require(self, ctx: _Ctx, *scopes: str) -> None:
        """Pass when the token holds any one of `scopes`."""
        if not any(s in ctx.token.scopes for s in scopes):
            raise HubSpotError(
                403, "MISSING_SCOPES", "This app hasn't been granted all required scopes to "
                "make this call. Read more about required scopes here: "
                "https://developers.hubspot.com/scopes.",
                errors=[{"message": "One or more of the following scopes are required.",
                         "context": {"requiredGranularScopes": list(scopes)}}],
                extra={"links": {"scopes": "https://developers.hubspot.com/scopes"}})

    def _need_objects(self, ctx: _Ctx, otype: _ObjectType, mode: str) -> None:
        self._require(ctx, f"crm.objects.{otype.scope}.{mode}")

    def _need_schema(self, ctx: _Ctx, otype: _ObjectType, mode: str) -> None:
        if otype.type_id in ("0-48", "0-46"):
            self._require(ctx, f"crm.objects.contacts.{mode}")
        else:
            self._require(ctx, f"crm.schemas.{otype.scope}.{mode}")

    def _rate_limited(self, policy: str, headers: dict) -> HubSpotError:
        text = {"TEN_SECONDLY_ROLLING": "ten_secondly_rolling", "DAILY": "daily",
                "SECONDLY": "secondly"}[policy]
        return HubSpotError(429, "", f"You have reached your {text} limit.", extra={
            "errorType": "RATE_LIMIT", "policyName": policy,
            "groupName": f"publicapi:app-id:{APP_ID}:portal-id:{PORTAL_ID}"},
            headers=dict(headers))

    def _count(self, token: _Token, is_search: bool, headers: dict) -> None:
        now = self.clock()
        self._roll_day()
        private = token.kind == "private"
        if private and self._daily_used >= self.daily_limit:
            headers.update({"X-HubSpot-RateLimit-Daily": str(self.daily_limit),
                            "X-HubSpot-RateLimit-Daily-Remaining": "0"})
            raise self._rate_limited("DAILY", headers)
        if is_search:
            while self._search_hits and (now - self._search_hits[0]).total_seconds() >= 1:
                self._search_hits.popleft()
            if len(self._search_hits) >= self.search_per_second:
                raise self._rate_limited("SECONDLY", {})
            self._search_hits.append(now)
            self._daily_used += 1
            return
        window = self._burst.setdefault(token.client_id, deque())
        while window and (now - window[0]).total_seconds() >= 10:
            window.popleft()
        base = {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                "X-HubSpot-RateLimit-Max": str(self.burst_limit)}
        if len(window) >= self.burst_limit:
            headers.update(base, **{"X-HubSpot-RateLimit-Remaining": "0"})
            raise self._rate_limited("TEN_SECONDLY_ROLLING", headers)
        window.append(now)
        self._daily_used += 1
        headers.update(base, **{"X-HubSpot-RateLimit-Remaining":
                                str(self.burst_limit - len(window))})
        if private:
            headers["X-HubSpot-RateLimit-Daily"] = str(self.daily_limit)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(
                max(0, self.daily_limit - self._daily_used))

    # ---- OAuth -----------------------------------------------------------------------------

    def _mint(self, kind: str, client_id: str, scopes: tuple[str, ...],
              refresh: str | None = None) -> _Token:
        now = self.clock()
        if kind == "access":
            value = "C" + base64.urlsafe_b64encode(secrets.token_bytes(96)).decode().rstrip("=")
            expires = now + self.token_lifetime
        elif kind == "refresh":
            value = "na1-" + "-".join(secrets.token_hex(n) for n in (2, 2, 2, 2, 6))
            expires = None
        else:
            value, expires = f"pat-na1-{uuid.UUID(int=self._random.getrandbits(128))}", None
        token = _Token(value, kind, client_id, scopes, now, expires, refresh)
        self._tokens[value] = token
        return token

    def authorize(self, params: dict) -> tuple[int, str]:
        """The install/consent step, auto-approved: (302, redirect URL) or (400, reason)."""
        with self._lock:
            self.requests["GET /oauth/authorize"] += 1
            client = self._clients.get(params.get("client_id", ""))
            if client is None:
                return 400, "The app's client ID is invalid."
            redirect = params.get("redirect_uri", "")
            if not redirect or (client.redirect_uris is not None
                                and redirect not in client.redirect_uris):
                return 400, "The redirect URL doesn't match the app's redirect URL."
            required = [s for s in re.split(r"[ +]", params.get("scope", "")) if s]
            optional = [s for s in re.split(r"[ +]", params.get("optional_scope", "")) if s]
            unknown = [s for s in required if s not in ALL_SCOPES]
            if unknown or not required:
                return 400, ("Authorization failed because the app requested scopes it does "
                             f"not have: {' '.join(unknown) or '(none)'}")
            granted = tuple(dict.fromkeys(required + [s for s in optional if s in ALL_SCOPES]))
            code = str(uuid.UUID(int=self._random.getrandbits(128)))
            self._codes[code] = _Code(client.client_id, redirect, granted,
                                      self.clock() + CODE_TTL)
            sep = "&" if "?" in redirect else "?"
            state = {"state": params["state"]} if "state" in params else {}
            return 302, redirect + sep + urlencode({"code": code, **state})

    @staticmethod
    def _oauth_error(status: str, message: str, error: str) -> tuple[int, dict, dict]:
        return 400, {"status": status, "message": message, "correlationId": str(uuid.uuid4()),
                     "error": error, "error_description": message}, {}

    def _h_token(self, form: dict, _vars: dict) -> tuple[int, Any, dict]:
        client = self._clients.get(form.get("client_id", ""))
        if client is None:
            return self._oauth_error("BAD_CLIENT_ID", "missing or invalid client id",
                                     "invalid_client")
        if not hmac.compare_digest(form.get("client_secret", ""), client.secret):
            return self._oauth_error("BAD_CLIENT_SECRET", "missing or invalid client secret",
                                     "invalid_client")
        grant = form.get("grant_type")
        now = self.clock()
        if grant == "authorization_code":
            code = self._codes.get(form.get("code", ""))
            if code is None or code.client_id != client.client_id or code.used:
                return self._oauth_error("BAD_AUTH_CODE", "missing or unknown auth code",
                                         "invalid_grant")
            if now > code.expires:
                return self._oauth_error("EXPIRED_AUTH_CODE", "auth code is expired",
                                         "invalid_grant")
            if form.get("redirect_uri") != code.redirect_uri:
                return self._oauth_error("BAD_REDIRECT_URI", "redirect_uri does not match "
                                         "initial auth request", "invalid_grant")
            code.used = True
            refresh = self._mint("refresh", client.client_id, code.scopes)
        elif grant == "refresh_token":
            refresh = self._tokens.get(form.get("refresh_token", ""))
            if refresh is None or refresh.kind != "refresh" or refresh.revoked \
                    or refresh.client_id != client.client_id:
                return self._oauth_error("BAD_REFRESH_TOKEN", "missing or unknown refresh "
                                         "token", "invalid_grant")
        else:
            return self._oauth_error("BAD_GRANT_TYPE", "missing or unknown grant type",
                                     "unsupported_grant_type")
        access = self._mint("access", client.client_id, refresh.scopes, refresh.value)
        return 200, {"token_type": "bearer", "refresh_token": refresh.value,
                     "access_token": access.value,
                     "expires_in": int(self.token_lifetime.total_seconds()),
                     "hub_id": PORTAL_ID, "scopes": list(refresh.scopes)}, \
            {"Cache-Control": "no-store"}

    def _token_user(self) -> tuple[str, int]:
        owner = next(iter(self._owners.values()), None)
        return (owner["email"], owner["userId"]) if owner else ("admin@sandbox.example", 1)

    def _h_access_token_info(self, _form: dict, variables: dict) -> tuple[int, Any, dict]:
        token = self._tokens.get(variables["token"])
        now = self.clock()
        if token is None or token.kind != "access" or token.revoked or now >= token.expires_at:
            return 404, HubSpotError(404, "OBJECT_NOT_FOUND", "Token not found").body(), {}
        user, user_id = self._token_user()
        return 200, {"token": token.value, "user": user, "hub_domain": "coachloop-sandbox.com",
                     "scopes": list(token.scopes), "hub_id": PORTAL_ID, "app_id": APP_ID,
                     "expires_in": int((token.expires_at - now).total_seconds()),
                     "user_id": user_id, "token_type": "access"}, {}

    def _h_refresh_token_info(self, _form: dict, variables: dict) -> tuple[int, Any, dict]:
        token = self._tokens.get(variables["token"])
        if token is None or token.kind != "refresh" or token.revoked:
            return 404, HubSpotError(404, "OBJECT_NOT_FOUND", "Token not found").body(), {}
        user, user_id = self._token_user()
        return 200, {"token": token.value, "user": user, "hub_domain": "coachloop-sandbox.com",
                     "scopes": list(token.scopes), "hub_id": PORTAL_ID,
                     "client_id": token.client_id, "user_id": user_id,
                     "token_type": "refresh"}, {}

    def _h_refresh_token_delete(self, _form: dict, variables: dict) -> tuple[int, Any, dict]:
        token = self._tokens.get(variables["token"])
        if token is None or token.kind != "refresh" or token.revoked:
            return 404, HubSpotError(404, "OBJECT_NOT_FOUND", "Token not found").body(), {}
        token.revoked = True  # its access tokens keep working until they expire (documented)
        return 204, None, {}

    def _h_introspect(self, form: dict, _vars: dict) -> tuple[int, Any, dict]:
        client = self._clients.get(form.get("client_id", ""))
        if client is None or form.get("client_secret") != client.secret:
            return self._oauth_error("BAD_CLIENT_ID", "missing or invalid client credentials",
                                     "invalid_client")
        token = self._tokens.get(form.get("token", ""))
        now = self.clock()
        if token is None or token.revoked or (token.expires_at and now >= token.expires_at):
            return 200, {"active": False}, {}
        out = {"active": True, "client_id": token.client_id, "scope": " ".join(token.scopes),
               "token_type": "access_token" if token.kind == "access" else "refresh_token",
               "hub_id": PORTAL_ID}
        if token.expires_at:
            out["exp"] = int(token.expires_at.timestamp())
        return 200, out, {}

    def _h_revoke(self, form: dict, _vars: dict) -> tuple[int, Any, dict]:
        token = self._tokens.get(form.get("token", ""))
        if token is not None and token.kind == "refresh":
            token.revoked = True
        return 200, None, {}

    # ---- account, owners, pipelines --------------------------------------------------------

    def _h_account(self, ctx: _Ctx) -> tuple[int, Any]:
        return 200, {"portalId": PORTAL_ID, "accountType": "STANDARD", "timeZone": "US/Eastern",
                     "companyCurrency": "USD", "additionalCurrencies": [],
                     "utcOffset": "-05:00", "utcOffsetMilliseconds": -18_000_000,
                     "uiDomain": "app.hubspot.com", "dataHostingLocation": "na1"}

    def _h_usage(self, ctx: _Ctx) -> tuple[int, Any]:
        tomorrow = datetime.combine(self._daily_day + timedelta(days=1), datetime.min.time(),
                                    UTC)
        return 200, {"results": [{"name": "api-calls-daily", "usageLimit": self.daily_limit,
                                  "currentUsage": self._daily_used,
                                  "collectedAt": _iso(self.clock()),
                                  "fetchStatus": "SUCCESS", "resetsAt": _iso(tomorrow)}]}

    def _h_owners(self, ctx: _Ctx) -> tuple[int, Any]:
        self._require(ctx, "crm.objects.owners.read")
        limit = self._int(ctx.param("limit", "100"), "limit")
        if not 1 <= limit <= 500:
            raise _validation("limit must be between 1 and 500")
        archived = (ctx.param("archived", "false") or "false").lower() == "true"
        email = (ctx.param("email") or "").lower()
        owners = [o for o in self._owners.values()
                  if o["archived"] == archived and (not email or o["email"].lower() == email)]
        start = self._int(ctx.param("after", "0"), "after")
        page = owners[start:start + limit]
        out: dict[str, Any] = {"results": page}
        if start + limit < len(owners):
            out["paging"] = {"next": {"after": str(start + limit), "link": f"{API_BASE}/crm/v3/"
                                      f"owners?after={start + limit}"}}
        return 200, out

    def _h_owner(self, ctx: _Ctx) -> tuple[int, Any]:
        self._require(ctx, "crm.objects.owners.read")
        key = ctx.vars["ownerId"]
        if ctx.param("idProperty") == "userId":
            owner = next((o for o in self._owners.values() if str(o["userId"]) == key), None)
        else:
            owner = self._owners.get(key)
        if owner is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"No owner found with id {key}")
        return 200, owner

    def _pipeline_json(self) -> dict:
        at = _iso(datetime(2020, 1, 1, tzinfo=UTC))
        stages = [{"id": sid, "label": label, "displayOrder": i, "archived": False,
                   "metadata": {"isClosed": "true" if closed else "false",
                                "probability": prob},
                   "createdAt": at, "updatedAt": at,
                   "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}
                  for i, (sid, label, prob, closed) in enumerate(DEAL_STAGES)]
        return {"id": "default", "label": "Sales Pipeline", "displayOrder": 0,
                "archived": False, "stages": stages, "createdAt": at, "updatedAt": at}

    def _deal_pipelines(self, ctx: _Ctx) -> _ObjectType:
        otype = self._otype(ctx.vars["objectType"])
        if otype.type_id != "0-3":
            raise _validation(f"Object type {ctx.vars['objectType']} does not support "
                              "pipelines in this sandbox")
        self._need_objects(ctx, otype, "read")
        return otype

    def _h_pipelines(self, ctx: _Ctx) -> tuple[int, Any]:
        self._deal_pipelines(ctx)
        return 200, {"results": [self._pipeline_json()]}

    def _h_pipeline(self, ctx: _Ctx) -> tuple[int, Any]:
        self._deal_pipelines(ctx)
        if ctx.vars["pipelineId"] != "default":
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Pipeline {ctx.vars['pipelineId']} "
                               "not found")
        return 200, self._pipeline_json()

    def _h_stages(self, ctx: _Ctx) -> tuple[int, Any]:
        status, pipeline = self._h_pipeline(ctx)
        return status, {"results": pipeline["stages"]}

    # ---- objects ---------------------------------------------------------------------------

    @staticmethod
    def _int(value: Any, name: str) -> int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise _validation(f"{name} must be an integer, got {value!r}") from None

    def _inputs(self, ctx: _Ctx, limit: int = MAX_BATCH) -> list:
        body = ctx.body if isinstance(ctx.body, dict) else {}
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise _validation("Invalid input JSON: inputs must be a list")
        if len(inputs) > limit:
            raise _validation(f"The maximum number of inputs supported in a batch request is "
                              f"{limit}. Please reduce the number of items and try again.",
                              context={"inputs": [str(len(inputs))]})
        return inputs

    def _batch_response(self, results: list, errors: list, started: datetime) -> tuple[int, Any]:
        out: dict[str, Any] = {"status": "COMPLETE", "results": results,
                               "requestedAt": _iso(started), "startedAt": _iso(started),
                               "completedAt": _iso(self.clock())}
        if errors:
            out["numErrors"] = len(errors)
            out["errors"] = errors
            return 207, out
        return 200, out

    def _h_list(self, ctx: _Ctx) -> tuple[int, Any]:
        otype = self._otype(ctx.vars["objectType"])
        self._need_objects(ctx, otype, "read")
        limit = self._int(ctx.param("limit", "10"), "limit")
        if not 1 <= limit <= 100:
            raise _validation("limit must be between 1 and 100")
        after = self._int(ctx.param("after", "0"), "after")
        rows = sorted((r for r in self._records[otype.type_id].values() if int(r.id) >= after),
                      key=lambda r: int(r.id))
        wanted, assocs = ctx.listed("properties"), ctx.listed("associations") or []
        results = []
        for record in rows[:limit]:
            item = self._serialize(otype, record, wanted)
            linked = self._v3_associations(otype, record, assocs)
            if linked:
                item["associations"] = linked
            results.append(item)
        out: dict[str, Any] = {"results": results}
        if len(rows) > limit:
            nxt = rows[limit].id
            out["paging"] = {"next": {"after": nxt, "link": f"{API_BASE}/crm/v3/objects/"
                                      f"{ctx.vars['objectType']}?after={nxt}"}}
        return 200, out

    def _h_get(self, ctx: _Ctx) -> tuple[int, Any]:
        otype = self._otype(ctx.vars["objectType"])
        self._need_objects(ctx, otype, "read")
        record = self._find(otype, ctx.vars["objectId"], ctx.param("idProperty"))
        item = self._serialize(otype, record, ctx.listed("properties"))
        linked = self._v3_associations(otype, record, ctx.listed("associations") or [])
        if linked:
            item["associations"] = linked
        return 200, item

    def _inline_associations(self, otype: _ObjectType, associations: Any) -> list[tuple]:
        out = []
        for item in associations or []:
            to_id = str((item.get("to") or {}).get("id", "")) if isinstance(item, dict) else ""
            types = item.get("types") if isinstance(item, dict) else None
            if not to_id or not isinstance(types, list) or not types:
                raise _validation("Each association needs to.id and types")
            for spec in types:
                assoc = self._assoc_types.get(self._int(spec.get("associationTypeId"),
                                                        "associationTypeId"))
                if assoc is None or assoc.from_type != otype.type_id:
                    raise _validation(f"{spec.get('associationTypeId')} is not a valid "
                                      f"association type id from {otype.type_id}")
                target = self._types[assoc.to_type]
                if to_id not in self._records[target.type_id]:
                    raise _validation(f"One or more associations are invalid: {target.singular}"
                                      f" {to_id} does not exist")
                out.append((to_id, assoc))
        return out

    def _h_create(self, ctx: _Ctx) -> tuple[int, Any]:
        otype = self._otype(ctx.vars["objectType"])
        self._need_objects(ctx, otype, "write")
        body = ctx.body if isinstance(ctx.body, dict) else {}
        links = self._inline_associations(otype, body.get("associations"))
        record = self._create(otype, body.get("properties"))
        for to_id, assoc in links:
            self._link(otype.type_id, record.id, assoc.to_type, to_id, assoc)
        return 201, self._serialize(otype, record, None,
                                    (body.get("properties") or {}).keys())

    def _h_update(self, ctx: _Ctx) -> tuple[int, Any]:
        otype = self._otype(ctx.vars["objectType"])
        self._need_objects(ctx, otype, "write")
        record = self._find(otype, ctx.vars["objectId"], ctx.param("idProperty"))
        props = (ctx.body or {}).get("properties") if isinstance(ctx.body, dict) else None
        self._apply_update(otype, record, props)
        return 200, self._serialize(otype, record, None, (props or {}).keys())

    def _h_delete(self, ctx: _Ctx) -> tuple[int, Any]:
        otype = self._otype(ctx.vars["objectType"])
        self._need_objects(ctx, otype, "write")
        self._archive(otype, str(ctx.vars["objectId"]))  # archiving a missing id is a no-op
        return 204, None

    def _h_batch_read(self, ctx: _Ctx) -> tuple[int, Any]:
        otype = self._otype(ctx.vars["objectType"])
        self._need_objects(ctx, otype, "read")
        started = self.clock()
        inputs = self._inputs(ctx)
        body = ctx.body
        id_property = body.get("idProperty")
        wanted = body.get("properties") if isinstance(body.get("properties"), list) else None
        if id_property and id_property != "hs_object_id" \
                and id_property not in self._unique_props(otype):
            raise self._non_unique(otype, id_property)
        results, missing = [], []
        for item in inputs:
            key = str((item or {}).get("id", ""))
            record = self._lookup(otype, id_property, key) \
                if id_property and id_property != "hs_object_id" \
                else self._records[otype.type_id].get(key)
            if record is None:
                missing.append(key)
            else:
                results.append(self._serialize(otype, record, wanted))
        errors = _missing_objects(missing)
        return self._batch_response(results, errors, started)

    def _batch_write(self, ctx: _Ctx) -> tuple[_ObjectType, datetime, list]:
        """A batch write's object type (scope checked), start time and inputs (≤ 100),
        counted as one batch write."""
        otype = self._otype(ctx.vars["objectType"])
        self._need_objects(ctx, otype, "write")
        started = self.clock()
        inputs = self._inputs(ctx)
        self.batch_writes[otype.name] += 1
        return otype, started, inputs

    def _h_batch_create(self, ctx: _Ctx) -> tuple[int, Any]:
        otype, started, inputs = self._batch_write(ctx)
        partial = any(isinstance(i, dict) and i.get("objectWriteTraceId") for i in inputs)
        pending: dict = {}
        prepared, errors = [], []
        for item in inputs:
            item = item if isinstance(item, dict) else {}
            try:
                clean = self._prepare_create(otype, item.get("properties"), pending)
                links = self._inline_associations(otype, item.get("associations"))
                prepared.append((clean, links, item))
            except HubSpotError as exc:
                if not partial:
                    raise
                errors.append({"status": "error", "category": exc.category,
                               "message": exc.message, "context": {
                                   "objectWriteTraceId": [str(item.get("objectWriteTraceId"))]}})
        results = []
        for clean, links, item in prepared:
            record = self._create(otype, None, clean=clean)
            for to_id, assoc in links:
                self._link(otype.type_id, record.id, assoc.to_type, to_id, assoc)
            out = self._serialize(otype, record, None, clean.keys())
            if item.get("objectWriteTraceId"):
                out["objectWriteTraceId"] = item["objectWriteTraceId"]
            results.append(out)
        status, payload = self._batch_response(results, errors, started)
        return (201 if status == 200 else status), payload

    def _h_batch_update(self, ctx: _Ctx) -> tuple[int, Any]:
        otype, started, inputs = self._batch_write(ctx)
        ids = [str((i or {}).get("id", "")) for i in inputs]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise _validation(f"Duplicate IDs found in batch input: {dupes}. IDs must be "
                              "unique", context={"ids": dupes})
        prepared, missing = [], []
        for item in inputs:
            id_property = item.get("idProperty")
            try:
                record = self._find(otype, str(item.get("id", "")), id_property)
            except HubSpotError as exc:
                if exc.status != 404:
                    raise
                missing.append(str(item.get("id", "")))
                continue
            clean = self._clean(otype, item.get("properties"))
            self._check_unique(otype, clean, record.id)
            prepared.append((record, clean))
        results = [self._serialize(otype, self._apply_update(otype, r, None, clean=c), None,
                                   c.keys()) for r, c in prepared]
        errors = _missing_objects(missing)
        return self._batch_response(results, errors, started)

    def _h_batch_upsert(self, ctx: _Ctx) -> tuple[int, Any]:
        otype, started, inputs = self._batch_write(ctx)
        keys = []
        for item in inputs:
            id_property = (item or {}).get("idProperty")
            if not id_property:
                raise _validation("idProperty is required for upsert")
            if id_property not in self._unique_props(otype):
                raise self._non_unique(otype, id_property)
            value = str(item.get("id", ""))
            if not value:
                raise _validation("id is required for upsert")
            keys.append((id_property, value.lower() if id_property == "email" else value))
        dupes = sorted({v for p, v in keys if keys.count((p, v)) > 1})
        if dupes:
            raise _validation(f"Duplicate IDs found in batch input: {dupes}. IDs must be "
                              "unique", context={"ids": dupes})
        pending: dict = {}
        plan = []
        for item, (id_property, _) in zip(inputs, keys):
            props = dict(item.get("properties") or {})
            existing = self._lookup(otype, id_property, str(item["id"]))
            if existing is None:
                props[id_property] = str(item["id"])
                plan.append((None, self._prepare_create(otype, props, pending), item))
            else:
                clean = self._clean(otype, props)
                self._check_unique(otype, clean, existing.id, pending)
                plan.append((existing, clean, item))
        results = []
        for existing, clean, item in plan:
            if existing is None:
                record, new = self._create(otype, None, clean=clean), True
            else:
                record, new = self._apply_update(otype, existing, None, clean=clean), False
            out = self._serialize(otype, record, None, clean.keys())
            out["new"] = new
            if item.get("objectWriteTraceId"):
                out["objectWriteTraceId"] = item["objectWriteTraceId"]
            results.append(out)
        return self._batch_response(results, [], started)

    def _h_batch_archive(self, ctx: _Ctx) -> tuple[int, Any]:
        otype = self._otype(ctx.vars["objectType"])
        self._need_objects(ctx, otype, "write")
        for item in self._inputs(ctx):
            self._archive(otype, str((item or {}).get("id", "")))
        return 204, None

    # ---- search ----------------------------------------------------------------------------

    def _h_search(self, ctx: _Ctx) -> tuple[int, Any]:
        otype = self._otype(ctx.vars["objectType"])
        self._need_objects(ctx, otype, "read")
        body = ctx.body if isinstance(ctx.body, dict) else {}
        limit = self._int(body.get("limit", 10), "limit")
        if not 0 <= limit <= MAX_SEARCH_LIMIT:
            raise _validation(f"limit must be between 0 and {MAX_SEARCH_LIMIT}")
        after = self._int(body.get("after") or 0, "after")
        if after >= self.search_window:
            raise _validation(f"Paging beyond {self.search_window:,} results is not supported; "
                              f"'after' was {after}. Narrow the search with filters.")

        def kind(name: str) -> str | None:
            prop = otype.props.get(name)
            return prop.type if prop else None

        try:
            groups = hsearch.parse(body.get("filterGroups"), kind)
        except hsearch.SearchError as exc:
            raise _validation(str(exc)) from None
        sorts = body.get("sorts") or []
        if not isinstance(sorts, list) or len(sorts) > 1:
            raise _validation("Only one sort is supported")
        sort_prop, descending = "hs_object_id", False
        if sorts:
            spec = sorts[0]
            if isinstance(spec, str):
                sort_prop, descending = spec.lstrip("-"), spec.startswith("-")
            elif isinstance(spec, dict):
                sort_prop = spec.get("propertyName", "")
                descending = spec.get("direction", "ASCENDING") == "DESCENDING"
            if kind(sort_prop) is None:
                raise _validation(f"Cannot sort by unknown property {sort_prop!r}")
        text = str(body.get("query") or "").strip().lower()
        rows = []
        for record in self._records[otype.type_id].values():
            if not hsearch.matches(groups, lambda n: kind(n) or "string", record.props.get):
                continue
            if text and not any(text in (record.props.get(n) or "").lower()
                                for n in self._searchable(otype)):
                continue
            rows.append(record)
        rows.sort(key=lambda r: int(r.id))
        sort_kind = kind(sort_prop) or "string"
        present = [r for r in rows if r.props.get(sort_prop) not in (None, "")]
        absent = [r for r in rows if r.props.get(sort_prop) in (None, "")]
        present.sort(key=lambda r: hsearch.sort_key(sort_kind, r.props.get(sort_prop)),
                     reverse=descending)
        rows = present + absent
        wanted = body.get("properties") if isinstance(body.get("properties"), list) else None
        end = min(after + limit, self.search_window)
        page = rows[after:end]
        out: dict[str, Any] = {"total": len(rows),
                               "results": [self._serialize(otype, r, wanted) for r in page]}
        if after + limit < len(rows) and limit:
            out["paging"] = {"next": {"after": str(after + limit)}}
        return 200, out

    @staticmethod
    def _searchable(otype: _ObjectType) -> list[str]:
        base = ["dealname", "name", "domain", "email", "firstname", "lastname", "phone",
                "hs_call_title", "hs_note_body"]
        return [n for n in base if n in otype.props] + list(otype.searchable)

    # ---- properties ------------------------------------------------------------------------

    def _prop_json(self, prop: _Prop) -> dict:
        if prop.referenced == "OWNER":
            options = [_opt(oid, f"{o['firstName']} {o['lastName']}".strip(), i)
                       for i, (oid, o) in enumerate(self._owners.items())]
            return prop.to_json(options)
        return prop.to_json()

    def _h_props(self, ctx: _Ctx) -> tuple[int, Any]:
        otype = self._otype(ctx.vars["objectType"])
        self._need_schema(ctx, otype, "read")
        return 200, {"results": [self._prop_json(p) for p in otype.props.values()]}

    def _prop_or_404(self, otype: _ObjectType, name: str) -> _Prop:
        prop = otype.props.get(name)
        if prop is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Property {name} does not exist",
                               context={"propertyName": [name]})
        return prop

    def _h_prop(self, ctx: _Ctx) -> tuple[int, Any]:
        otype = self._otype(ctx.vars["objectType"])
        self._need_schema(ctx, otype, "read")
        return 200, self._prop_json(self._prop_or_404(otype, ctx.vars["propertyName"]))

    def _options(self, raw: Any, type_: str, field_type: str) -> list[dict]:
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise _validation("options must be a list")
        if type_ == "enumeration" and not raw and field_type != "booleancheckbox":
            raise _validation("Enumeration properties need at least one option")
        options, seen = [], set()
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or not item.get("label") or item.get("value") in (
                    None, ""):
                raise _validation("Each option needs a label and a value")
            value = str(item["value"])
            if value in seen:
                raise _validation(f"Duplicate option value {value!r}: option values must be "
                                  "unique")
            seen.add(value)
            options.append({"label": str(item["label"]), "value": value,
                            "displayOrder": int(item.get("displayOrder", i)),
                            "hidden": bool(item.get("hidden", False)),
                            **({"description": item["description"]}
                               if item.get("description") else {})})
        return options

    def _new_prop(self, otype: _ObjectType, body: Any, *, schema: bool = False) -> _Prop:
        if not isinstance(body, dict):
            raise _validation("Invalid input JSON: expected an object")
        required = ("name", "label", "type", "fieldType") + (() if schema else ("groupName",))
        missing = [k for k in required if not body.get(k)]
        if missing:
            raise _validation(f"Missing required field(s): {', '.join(missing)}")
        name, type_, field_type = str(body["name"]), str(body["type"]), str(body["fieldType"])
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,99}", name):
            raise _validation(f"Property name {name!r} is invalid: use lowercase letters, "
                              "digits and underscores, starting with a letter")
        if name.startswith("hs_"):
            raise _validation(f"Property name {name!r} uses the reserved prefix hs_")
        if name in otype.props:
            raise HubSpotError(409, "OBJECT_ALREADY_EXISTS",
                               f"Property named '{name}' already exists.",
                               context={"name": [name]})
        if type_ not in _FIELD_TYPES:
            raise _validation(f"{type_!r} is not a valid property type")
        if field_type not in _FIELD_TYPES[type_]:
            raise _validation(f"fieldType {field_type!r} is not valid for type {type_!r}; "
                              f"use one of {sorted(_FIELD_TYPES[type_])}")
        group = str(body.get("groupName") or next(iter(otype.groups), ""))
        if group not in otype.groups:
            raise _validation(f"Property group {group!r} does not exist")
        unique = bool(body.get("hasUniqueValue", False))
        if unique and sum(p.unique for p in otype.props.values()) >= MAX_UNIQUE_PROPERTIES:
            raise _validation(f"You can't create more than {MAX_UNIQUE_PROPERTIES} properties "
                              f"with unique values for {otype.name}")
        now = self.clock()
        return _Prop(name, str(body["label"]), type_, field_type, group,
                     description=str(body.get("description") or ""),
                     options=self._options(body.get("options"), type_, field_type),
                     unique=unique, hubspot_defined=False,
                     display_order=int(body.get("displayOrder", -1)),
                     hidden=bool(body.get("hidden", False)), created_at=now, updated_at=now)

    def _h_prop_create(self, ctx: _Ctx) -> tuple[int, Any]:
        otype = self._otype(ctx.vars["objectType"])
        self._need_schema(ctx, otype, "write")
        prop = self._new_prop(otype, ctx.body)
        otype.props[prop.name] = prop
        return 201, self._prop_json(prop)

    def _h_props_batch_create(self, ctx: _Ctx) -> tuple[int, Any]:
        otype = self._otype(ctx.vars["objectType"])
        self._need_schema(ctx, otype, "write")
        started = self.clock()
        results, errors = [], []
        for item in self._inputs(ctx):
            try:
                prop = self._new_prop(otype, item)
            except HubSpotError as exc:
                errors.append({"status": "error", "category": exc.category,
                               "message": exc.message, "context": exc.context or {}})
                continue
            otype.props[prop.name] = prop
            results.append(self._prop_json(prop))
        status, payload = self._batch_response(results, errors, started)
        return (201 if status == 200 else status), payload

    def _h_prop_update(self, ctx: _Ctx) -> tuple[int, Any]:
        otype = self._otype(ctx.vars["objectType"])
        self._need_schema(ctx, otype, "write")
        prop = self._prop_or_404(otype, ctx.vars["propertyName"])
        body = ctx.body if isinstance(ctx.body, dict) else {}
        if prop.hubspot_defined and set(body) - {"label", "description", "displayOrder",
                                                 "hidden", "groupName"}:
            raise _validation(f"{prop.name} is a HubSpot defined property; its definition "
                              "cannot be changed.")
        type_ = body.get("type", prop.type)
        field_type = body.get("fieldType", prop.field_type)
        if type_ not in _FIELD_TYPES or field_type not in _FIELD_TYPES[type_]:
            raise _validation(f"fieldType {field_type!r} is not valid for type {type_!r}")
        if "groupName" in body and body["groupName"] not in otype.groups:
            raise _validation(f"Property group {body['groupName']!r} does not exist")
        if "options" in body:
            prop.options = self._options(body["options"], type_, field_type)
        prop.type, prop.field_type = type_, field_type
        for key, attr in (("label", "label"), ("description", "description"),
                          ("groupName", "group"), ("displayOrder", "display_order"),
                          ("hidden", "hidden")):
            if key in body:
                setattr(prop, attr, body[key])
        prop.updated_at = self.clock()
        return 200, self._prop_json(prop)

    def _h_prop_delete(self, ctx: _Ctx) -> tuple[int, Any]:
        otype = self._otype(ctx.vars["objectType"])
        self._need_schema(ctx, otype, "write")
        prop = self._prop_or_404(otype, ctx.vars["propertyName"])
        if prop.hubspot_defined:
            raise _validation(f"{prop.name} is a HubSpot defined property and cannot be "
                              "archived.")
        del otype.props[prop.name]
        for record in self._records[otype.type_id].values():
            record.props.pop(prop.name, None)
        return 204, None

    def _h_groups(self, ctx: _Ctx) -> tuple[int, Any]:
        otype = self._otype(ctx.vars["objectType"])
        self._need_schema(ctx, otype, "read")
        return 200, {"results": list(otype.groups.values())}

    def _group_or_404(self, otype: _ObjectType, name: str) -> dict:
        group = otype.groups.get(name)
        if group is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Property group {name} does not exist")
        return group

    def _h_group(self, ctx: _Ctx) -> tuple[int, Any]:
        otype = self._otype(ctx.vars["objectType"])
        self._need_schema(ctx, otype, "read")
        return 200, self._group_or_404(otype, ctx.vars["groupName"])

    def _h_group_create(self, ctx: _Ctx) -> tuple[int, Any]:
        otype = self._otype(ctx.vars["objectType"])
        self._need_schema(ctx, otype, "write")
        body = ctx.body if isinstance(ctx.body, dict) else {}
        name, label = body.get("name"), body.get("label")
        if not name or not label:
            raise _validation("Missing required field(s): name, label")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", str(name)):
            raise _validation(f"Property group name {name!r} is invalid")
        if name in otype.groups:
            raise HubSpotError(409, "OBJECT_ALREADY_EXISTS",
                               f"Property group named '{name}' already exists.")
        group = _group(str(name), str(label), int(body.get("displayOrder", -1)))
        otype.groups[group["name"]] = group
        return 201, group

    def _h_group_update(self, ctx: _Ctx) -> tuple[int, Any]:
        otype = self._otype(ctx.vars["objectType"])
        self._need_schema(ctx, otype, "write")
        group = self._group_or_404(otype, ctx.vars["groupName"])
        body = ctx.body if isinstance(ctx.body, dict) else {}
        for key in ("label", "displayOrder"):
            if key in body:
                group[key] = body[key]
        return 200, group

    # ---- custom object schemas -------------------------------------------------------------

    def _schema_json(self, otype: _ObjectType) -> dict:
        at = _iso(otype.created_at or self.clock())
        associations = [{"id": str(a.type_id), "fromObjectTypeId": a.from_type,
                         "toObjectTypeId": a.to_type, "name": a.name,
                         "createdAt": at, "updatedAt": at}
                        for a in self._assoc_types.values()
                        if a.from_type == otype.type_id and a.label is None]
        return {"id": otype.schema_id, "objectTypeId": otype.type_id,
                "fullyQualifiedName": otype.fqn, "name": otype.name, "labels": otype.labels,
                "description": otype.description,
                "primaryDisplayProperty": otype.primary_display,
                "requiredProperties": otype.required,
                "searchableProperties": otype.searchable,
                "secondaryDisplayProperties": otype.secondary,
                "properties": [self._prop_json(p) for p in otype.props.values()],
                "associations": associations, "metaType": "PORTAL_SPECIFIC",
                "archived": False, "createdAt": at, "updatedAt": at}

    def _schema_guard(self, ctx: _Ctx, mode: str) -> None:
        self._require(ctx, f"crm.schemas.custom.{mode}")
        if self.tier != "enterprise":
            raise self._tier_error()

    def _h_schemas(self, ctx: _Ctx) -> tuple[int, Any]:
        self._schema_guard(ctx, "read")
        return 200, {"results": [self._schema_json(t) for t in self._types.values()
                                 if t.custom]}

    def _h_schema(self, ctx: _Ctx) -> tuple[int, Any]:
        self._schema_guard(ctx, "read")
        try:
            otype = self._otype(ctx.vars["objectType"])
        except HubSpotError:
            otype = None
        if otype is None or not otype.custom:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Unable to find object type "
                               f"{ctx.vars['objectType']}")
        return 200, self._schema_json(otype)

    def _h_schema_create(self, ctx: _Ctx) -> tuple[int, Any]:
        self._schema_guard(ctx, "write")
        body = ctx.body if isinstance(ctx.body, dict) else {}
        name = body.get("name")
        labels = body.get("labels") or {}
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            raise _validation("name is required and may contain letters, digits and "
                              "underscores, starting with a letter")
        if not isinstance(labels, dict) or not labels.get("singular") or \
                not labels.get("plural"):
            raise _validation("labels.singular and labels.plural are required")
        taken = {t.name.lower() for t in self._types.values()} | \
            {s[1] for s in STANDARD_TYPES.values()}
        if name.lower() in taken:
            raise HubSpotError(409, "CONFLICT", f"Object type with name {name} already "
                               "exists.")
        self._custom_serial += 1
        type_id = f"2-{4_100_000 + self._custom_serial * 137}"
        now = self.clock()
        otype = _ObjectType(type_id, name, name.lower(), "custom", "hs_createdate",
                            "hs_lastmodifieddate",
                            ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
                            {}, {f"{name.lower()}_information":
                                 _group(f"{name.lower()}_information",
                                        f"{labels['singular']} information", 0)},
                            custom=True, labels={"singular": labels["singular"],
                                                 "plural": labels["plural"]},
                            schema_id=str(90_000_000 + self._custom_serial), created_at=now,
                            description=body.get("description"))
        for prop in _system("hs_createdate", "hs_lastmodifieddate", next(iter(otype.groups))):
            prop.created_at = prop.updated_at = now
            otype.props[prop.name] = prop
        owner = _owner(next(iter(otype.groups)))
        owner.created_at = owner.updated_at = now
        otype.props[owner.name] = owner
        for item in body.get("properties") or []:
            item = dict(item) if isinstance(item, dict) else {}
            item.setdefault("groupName", next(iter(otype.groups)))
            prop = self._new_prop(otype, item, schema=True)
            otype.props[prop.name] = prop
        for key in ("requiredProperties", "searchableProperties", "secondaryDisplayProperties"):
            unknown = [p for p in body.get(key) or [] if p not in otype.props]
            if unknown:
                raise _validation(f"{key} refers to undefined properties: {unknown}")
        primary = body.get("primaryDisplayProperty")
        if primary is not None and primary not in otype.props:
            raise _validation(f"primaryDisplayProperty {primary!r} is not a defined property")
        otype.required = list(body.get("requiredProperties") or [])
        otype.searchable = list(body.get("searchableProperties") or [])
        otype.secondary = list(body.get("secondaryDisplayProperties") or [])
        otype.primary_display = primary
        targets = []
        for ref in body.get("associatedObjects") or []:
            try:
                targets.append(self._otype(str(ref).lower() if not str(ref)[:1].isdigit()
                                           else str(ref), check_tier=False))
            except HubSpotError:
                raise _validation(f"associatedObjects: unknown object type {ref!r}") from None
        self._types[type_id] = otype
        self._records[type_id] = {}
        for target in targets:
            self._add_assoc_pair(otype, target, None, f"{otype.name.lower()}_to_"
                                 f"{target.singular}", category="USER_DEFINED")
        return 201, self._schema_json(otype)

    def _add_assoc_pair(self, src: _ObjectType, dst: _ObjectType, label: str | None,
                        name: str, *, inverse_label: str | None = None,
                        category: str = "USER_DEFINED") -> tuple[_AssocType, _AssocType]:
        forward_id, backward_id = self._next_assoc_type, self._next_assoc_type + 1
        self._next_assoc_type += 2
        inverse_name = "_to_".join(reversed(name.split("_to_"))) if "_to_" in name else name
        forward = _AssocType(forward_id, src.type_id, dst.type_id, backward_id, name, label,
                             category)
        backward = _AssocType(backward_id, dst.type_id, src.type_id, forward_id, inverse_name,
                              inverse_label if inverse_label is not None else label, category)
        self._assoc_types[forward_id] = forward
        self._assoc_types[backward_id] = backward
        return forward, backward

    # ---- associations v4 -------------------------------------------------------------------

    def _pair(self, ctx: _Ctx, mode: str) -> tuple[_ObjectType, _ObjectType]:
        src = self._otype(ctx.vars.get("fromObjectType") or ctx.vars["objectType"])
        dst = self._otype(ctx.vars["toObjectType"])
        self._need_objects(ctx, src, mode)
        return src, dst

    def _h_assoc_batch_create(self, ctx: _Ctx) -> tuple[int, Any]:
        src, dst = self._pair(ctx, "write")
        started = self.clock()
        results, errors = [], []
        for item in self._inputs(ctx, MAX_BATCH):
            from_id = str(((item or {}).get("from") or {}).get("id", ""))
            to_id = str(((item or {}).get("to") or {}).get("id", ""))
            types = item.get("types") or []
            missing = [i for t, i in ((src, from_id), (dst, to_id))
                       if i not in self._records[t.type_id]]
            if missing:
                errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                               "message": f"No object found with id(s) {missing}",
                               "context": {"ids": missing}})
                continue
            for spec in types:
                category = spec.get("associationCategory")
                assoc = self._assoc_type(src, dst, spec.get("associationTypeId"))
                if category != assoc.category:
                    raise _validation(f"associationTypeId {assoc.type_id} belongs to category "
                                      f"{assoc.category}, not {category}")
                self._link(src.type_id, from_id, dst.type_id, to_id, assoc)
            labels = sorted({self._assoc_types[t].label for t in self._links.get(
                (src.type_id, from_id), {}).get((dst.type_id, to_id), set())
                if self._assoc_types[t].label})
            results.append({"fromObjectTypeId": src.type_id, "fromObjectId": int(from_id),
                            "toObjectTypeId": dst.type_id, "toObjectId": int(to_id),
                            "labels": labels})
        status, payload = self._batch_response(results, errors, started)
        return (201 if status == 200 else status), payload

    def _h_assoc_batch_default(self, ctx: _Ctx) -> tuple[int, Any]:
        src, dst = self._pair(ctx, "write")
        started = self.clock()
        assoc = self._assoc_type(src, dst, None)
        results, errors = [], []
        for item in self._inputs(ctx, MAX_BATCH):
            from_id = str(((item or {}).get("from") or {}).get("id", ""))
            to_id = str(((item or {}).get("to") or {}).get("id", ""))
            missing = [i for t, i in ((src, from_id), (dst, to_id))
                       if i not in self._records[t.type_id]]
            if missing:
                errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                               "message": f"No object found with id(s) {missing}",
                               "context": {"ids": missing}})
                continue
            self._link(src.type_id, from_id, dst.type_id, to_id, assoc)
            results.append({"from": {"id": from_id}, "to": {"id": to_id}, "associationSpec": {
                "associationCategory": assoc.category, "associationTypeId": assoc.type_id}})
        return self._batch_response(results, errors, started)

    def _h_assoc_batch_read(self, ctx: _Ctx) -> tuple[int, Any]:
        src, dst = self._pair(ctx, "read")
        self._need_objects(ctx, dst, "read")
        started = self.clock()
        results, errors = [], []
        for item in self._inputs(ctx, MAX_ASSOC_BATCH_READ):
            from_id = str((item or {}).get("id", ""))
            linked = self._assoc_json(src.type_id, from_id, dst.type_id)
            if not linked:
                errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                               "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                               "message": f"No {dst.singular} is associated with "
                                          f"{src.singular} {from_id}.",
                               "context": {"fromObjectId": [from_id]}})
                continue
            results.append({"from": {"id": from_id}, "to": linked})
        return self._batch_response(results, errors, started)

    def _h_assoc_batch_archive(self, ctx: _Ctx) -> tuple[int, Any]:
        src, dst = self._pair(ctx, "write")
        for item in self._inputs(ctx, 2000):
            from_id = str(((item or {}).get("from") or {}).get("id", ""))
            for target in (item or {}).get("to") or []:
                self._unlink(src.type_id, from_id, dst.type_id, str(target.get("id", "")))
        return 204, None

    def _h_assoc_batch_labels_archive(self, ctx: _Ctx) -> tuple[int, Any]:
        src, dst = self._pair(ctx, "write")
        for item in self._inputs(ctx, 2000):
            from_id = str(((item or {}).get("from") or {}).get("id", ""))
            to_id = str(((item or {}).get("to") or {}).get("id", ""))
            ids = [self._int(t.get("associationTypeId"), "associationTypeId")
                   for t in (item or {}).get("types") or []]
            self._unlink(src.type_id, from_id, dst.type_id, to_id, ids)
        return 204, None

    def _h_assoc_labels(self, ctx: _Ctx) -> tuple[int, Any]:
        src, dst = self._pair(ctx, "read")
        return 200, {"results": [a.spec() for a in sorted(self._assoc_types.values(),
                                                          key=lambda a: a.type_id)
                                 if a.from_type == src.type_id and a.to_type == dst.type_id]}

    def _h_assoc_label_create(self, ctx: _Ctx) -> tuple[int, Any]:
        src, dst = self._pair(ctx, "write")
        body = ctx.body if isinstance(ctx.body, dict) else {}
        label, name = body.get("label"), body.get("name")
        if not label or not name:
            raise _validation("label and name are required")
        existing = [a for a in self._assoc_types.values() if a.from_type == src.type_id
                    and a.to_type == dst.type_id and a.category == "USER_DEFINED" and a.label]
        if any(a.name == name for a in existing):
            raise HubSpotError(409, "CONFLICT", f"An association label named {name} already "
                               "exists between these objects.")
        if len(existing) >= 10:
            raise _validation("You can create up to 10 association labels between each object "
                              "pairing.")
        forward, backward = self._add_assoc_pair(src, dst, str(label), str(name),
                                                 inverse_label=body.get("inverseLabel"))
        specs = [forward.spec()] if src.type_id == dst.type_id and not body.get(
            "inverseLabel") else [forward.spec(), backward.spec()]
        return 200, {"results": specs}

    def _h_assoc_list(self, ctx: _Ctx) -> tuple[int, Any]:
        src, dst = self._pair(ctx, "read")
        self._need_record(src, ctx.vars["objectId"])
        limit = self._int(ctx.param("limit", "500"), "limit")
        after = self._int(ctx.param("after", "0"), "after")
        linked = self._assoc_json(src.type_id, ctx.vars["objectId"], dst.type_id)
        out: dict[str, Any] = {"results": linked[after:after + limit]}
        if after + limit < len(linked):
            out["paging"] = {"next": {"after": str(after + limit)}}
        return 200, out

    def _h_assoc_put_default(self, ctx: _Ctx) -> tuple[int, Any]:
        src, dst = self._pair(ctx, "write")
        from_id, to_id = ctx.vars["fromObjectId"], ctx.vars["toObjectId"]
        self._need_record(src, from_id)
        self._need_record(dst, to_id)
        started = self.clock()
        assoc = self._assoc_type(src, dst, None)
        self._link(src.type_id, from_id, dst.type_id, to_id, assoc)
        return self._batch_response([{"from": {"id": from_id}, "to": {"id": to_id},
                                      "associationSpec": {"associationCategory": assoc.category,
                                                          "associationTypeId": assoc.type_id}}],
                                    [], started)

    def _h_assoc_put(self, ctx: _Ctx) -> tuple[int, Any]:
        src, dst = self._pair(ctx, "write")
        from_id, to_id = ctx.vars["objectId"], ctx.vars["toObjectId"]
        self._need_record(src, from_id)
        self._need_record(dst, to_id)
        specs = ctx.body if isinstance(ctx.body, list) else []
        if not specs:
            raise _validation("Request body must be a non-empty list of association types")
        for spec in specs:
            self._link(src.type_id, from_id, dst.type_id, to_id,
                       self._assoc_type(src, dst, spec.get("associationTypeId")))
        labels = sorted({self._assoc_types[t].label for t in self._links[(src.type_id, from_id)][
            (dst.type_id, to_id)] if self._assoc_types[t].label})
        return 201, {"fromObjectTypeId": src.type_id, "fromObjectId": int(from_id),
                     "toObjectTypeId": dst.type_id, "toObjectId": int(to_id), "labels": labels}

    def _h_assoc_delete(self, ctx: _Ctx) -> tuple[int, Any]:
        src, dst = self._pair(ctx, "write")
        self._unlink(src.type_id, ctx.vars["objectId"], dst.type_id, ctx.vars["toObjectId"])
        return 204, None


# --------------------------------------------------------------------------------------------
# Demo data
# --------------------------------------------------------------------------------------------

_STAGE_BY_LABEL = {
    "prospecting": "appointmentscheduled", "qualification": "qualifiedtobuy",
    "discovery": "qualifiedtobuy", "needs analysis": "qualifiedtobuy",
    "value proposition": "presentationscheduled", "id. decision makers": "decisionmakerboughtin",
    "perception analysis": "decisionmakerboughtin", "proposal": "presentationscheduled",
    "proposal/price quote": "presentationscheduled", "negotiation": "contractsent",
    "negotiation/review": "contractsent", "closed won": "closedwon",
    "closed lost": "closedlost",
}


def stage_id(label: str) -> str:
    """A default-pipeline stage id for a Salesforce-style stage label."""
    key = str(label).strip().lower()
    if key in _STAGE_BY_LABEL:
        return _STAGE_BY_LABEL[key]
    if key in {s[0] for s in DEAL_STAGES}:
        return key
    return "appointmentscheduled"


def _split_name(name: str) -> tuple[str, str]:
    first, _, last = name.strip().rpartition(" ")
    return (first, last) if first else ("", last)


def demo_seed(sandbox: HubSpotSandbox, demo_dir: str | Path) -> dict[str, dict[str, str]]:
    """Load demo/team.yaml and demo/deals.yaml into the portal; returns ids keyed by e-mail
    (`owners`, `contacts`), account name (`companies`) and deal external id (`deals`)."""
    import yaml

    demo_dir = Path(demo_dir)
    team = yaml.safe_load((demo_dir / "team.yaml").read_text())
    deals = yaml.safe_load((demo_dir / "deals.yaml").read_text()).get("deals", [])
    ids: dict[str, dict[str, str]] = {"owners": {}, "companies": {}, "contacts": {},
                                      "deals": {}}
    for person in sorted(team.get("users", []), key=lambda u: u.get("role") != "manager"):
        first, last = _split_name(person["name"])
        ids["owners"][person["email"]] = sandbox.add_owner(person["email"], first, last)
    for deal in deals:
        owner = ids["owners"].get(deal.get("owner"))
        account = deal["account"]
        emails = list(deal.get("contacts", []))
        if account not in ids["companies"]:
            values = {"name": account}
            if emails:
                values["domain"] = emails[0].split("@", 1)[1]
            if owner:
                values["hubspot_owner_id"] = owner
            ids["companies"][account] = sandbox.create("companies", values)
        company = ids["companies"][account]
        values = {"dealname": deal["name"], "dealstage": stage_id(deal["stage"]),
                  "pipeline": "default", "closedate": str(deal["close_date"])}
        if deal.get("amount") is not None:
            values["amount"] = deal["amount"]
        if owner:
            values["hubspot_owner_id"] = owner
        deal_id = sandbox.create("deals", values)
        ids["deals"][deal["external_id"]] = deal_id
        sandbox.associate("deals", deal_id, "companies", company)
        for email in emails:
            if email not in ids["contacts"]:
                local = email.split("@")[0].replace(".", " ").title()
                first, last = _split_name(local)
                values = {"email": email, "firstname": first, "lastname": last,
                          "company": account}
                if owner:
                    values["hubspot_owner_id"] = owner
                ids["contacts"][email] = sandbox.create("contacts", values)
                sandbox.associate("contacts", ids["contacts"][email], "companies", company)
            sandbox.associate("deals", deal_id, "contacts", ids["contacts"][email])
    return ids
