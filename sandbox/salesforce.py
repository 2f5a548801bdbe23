"""A wire-accurate Salesforce REST emulator: OAuth, describe, records, collections, SOQL, limits.

`SalesforceSandbox` keeps an in-memory org (User, Account, Contact, Opportunity with MEDDIC and
AI shadow fields, OpportunityContactRole, Task, Rep_Skill_Score__c), enforces field types,
lengths, restricted picklists, lookups and unique external ids on every write, and answers with
Salesforce's status codes and error bodies. `create_app()` builds the FastAPI app that
`sandbox.server.serve` puts on HTTPS, so simple-salesforce talks to it unchanged.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import random
import re
import secrets
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, unquote, urlencode

from fastapi import Request  # module level: FastAPI resolves the handlers' string annotations

from sandbox import salesforce_soql as soql

API_VERSION = "59.0"
ORG_ID = "00D5g00000SbxOrgEAA"
DEFAULT_CLIENT_ID = "coachloop-sandbox-client"
DEFAULT_CLIENT_SECRET = "coachloop-sandbox-secret"


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SField:
    """One field as describe reports it."""

    name: str
    label: str
    type: str
    length: int = 0
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    external_id: bool = False
    unique: bool = False
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    default: Any = None
    auto_number: str | None = None  # display format, e.g. "RSS-{000000}": set on insert

    def describe(self) -> dict:
        """The field's entry in `GET /sobjects/{obj}/describe`."""
        return {
            "name": self.name, "label": self.label, "type": self.type, "length": self.length,
            "picklistValues": [{"value": v, "label": v, "active": True, "defaultValue": False,
                                "validFor": None} for v in self.picklist],
            "restrictedPicklist": self.restricted, "externalId": self.external_id,
            "unique": self.unique, "idLookup": self.external_id or self.type == "id",
            "updateable": self.updateable, "createable": self.createable,
            "nillable": self.nillable, "defaultedOnCreate": self.default is not None,
            "referenceTo": list(self.reference_to), "relationshipName": self.relationship_name,
            "custom": self.name.endswith("__c"), "calculated": False,
            "autoNumber": self.auto_number is not None,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "precision": 18 if self.type in ("double", "currency") else 0,
            "scale": 2 if self.type in ("double", "currency") else 0,
        }


_SOAP_TYPES = {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean",
               "double": "xsd:double", "currency": "xsd:double", "date": "xsd:date",
               "datetime": "xsd:dateTime"}


@dataclass(frozen=True)
class SObject:
    """One sObject type: key prefix and fields (looked up case-insensitively, as Salesforce does)."""

    name: str
    label: str
    key_prefix: str
    fields: tuple[SField, ...]
    custom: bool = False

    def field(self, name: str) -> SField | None:
        return self._by_lower.get(name.lower())

    @property
    def _by_lower(self) -> dict[str, SField]:
        cache = self.__dict__.get("_cache")
        if cache is None:
            cache = {f.name.lower(): f for f in self.fields}
            object.__setattr__(self, "_cache", cache)
        return cache

    def relationship(self, name: str) -> SField | None:
        for f in self.fields:
            if f.relationship_name and f.relationship_name.lower() == name.lower():
                return f
        return None


def _s(name: str, label: str, length: int = 255, **kw: Any) -> SField:
    return SField(name, label, "string", length, **kw)


def _text(name: str, label: str, length: int = 32768, **kw: Any) -> SField:
    return SField(name, label, "textarea", length, **kw)


def _num(name: str, label: str, type_: str = "double", **kw: Any) -> SField:
    return SField(name, label, type_, **kw)


def _ref(name: str, label: str, to: tuple[str, ...], rel: str, **kw: Any) -> SField:
    return SField(name, label, "reference", 18, reference_to=to, relationship_name=rel, **kw)


def _pick(name: str, label: str, values: Iterable[str], restricted: bool = True,
          **kw: Any) -> SField:
    return SField(name, label, "picklist", 255, picklist=tuple(values), restricted=restricted,
                  **kw)


def _system(owner: bool = True) -> tuple[SField, ...]:
    readonly = {"createable": False, "updateable": False}
    out = [SField("Id", "Record ID", "id", 18, nillable=False, **readonly),
           SField("CreatedDate", "Created Date", "datetime", nillable=False, **readonly),
           SField("LastModifiedDate", "Last Modified Date", "datetime", nillable=False,
                  **readonly),
           SField("SystemModstamp", "System Modstamp", "datetime", nillable=False, **readonly),
           SField("IsDeleted", "Deleted", "boolean", nillable=False, **readonly),
           _ref("CreatedById", "Created By ID", ("User",), "CreatedBy", nillable=False,
                **readonly),
           _ref("LastModifiedById", "Last Modified By ID", ("User",), "LastModifiedBy",
                nillable=False, **readonly)]
    if owner:
        out.append(_ref("OwnerId", "Owner ID", ("User",), "Owner", nillable=False,
                        default="current-user"))
    return tuple(out)


STAGES = ("Prospecting", "Qualification", "Discovery", "Needs Analysis", "Value Proposition",
          "Id. Decision Makers", "Perception Analysis", "Proposal", "Proposal/Price Quote",
          "Negotiation", "Negotiation/Review", "Closed Won", "Closed Lost")
MEDDIC_FIELDS = (("Metrics__c", "Metrics"), ("Economic_Buyer__c", "Economic Buyer"),
                 ("Decision_Criteria__c", "Decision Criteria"),
                 ("Decision_Process__c", "Decision Process"),
                 ("Identify_Pain__c", "Identify Pain"), ("Champion__c", "Champion"),
                 ("Competition__c", "Competition"))
_SHORT_MEDDIC = {"Economic_Buyer__c", "Champion__c", "Competition__c"}


def _meddic_fields() -> list[SField]:
    out = []
    for name, label in MEDDIC_FIELDS:
        out.append(_s(name, label) if name in _SHORT_MEDDIC else _text(name, label))
    for name, label in MEDDIC_FIELDS:
        out.append(_text("AI_" + name, "AI " + label, 32768))
    out += [_pick("MEDDIC_Confidence__c", "MEDDIC Confidence", ("High", "Medium", "Low")),
            SField("AI_MEDDIC_Updated_At__c", "AI MEDDIC Updated At", "datetime"),
            SField("AI_MEDDIC_Source_Url__c", "AI MEDDIC Source URL", "url", 255)]
    return out


def default_schema() -> dict[str, SObject]:
    """The org's objects: standard ones plus coachloop's custom fields and object."""
    objs = [
        SObject("User", "User", "005", _system(owner=False) + (
            _s("Username", "Username", 80, nillable=False, unique=True),
            _s("FirstName", "First Name", 40), _s("LastName", "Last Name", 80, nillable=False),
            _s("Name", "Full Name", 121, createable=False, updateable=False),
            SField("Email", "Email", "email", 128, nillable=False),
            SField("IsActive", "Active", "boolean", nillable=False, default=True),
            _s("Title", "Title", 80),
            _ref("ManagerId", "Manager ID", ("User",), "Manager"))),
        SObject("Account", "Account", "001", _system() + (
            _s("Name", "Account Name", 255, nillable=False),
            _pick("Industry", "Industry", ("Technology", "Finance", "Healthcare", "Insurance",
                                           "Manufacturing", "Retail", "Logistics", "Other"),
                  restricted=False),
            SField("Website", "Website", "url", 255),
            _text("Description", "Account Description", 32000))),
        SObject("Contact", "Contact", "003", _system() + (
            _s("FirstName", "First Name", 40), _s("LastName", "Last Name", 80, nillable=False),
            _s("Name", "Full Name", 121, createable=False, updateable=False),
            SField("Email", "Email", "email", 80), _s("Title", "Title", 128),
            _ref("AccountId", "Account ID", ("Account",), "Account"))),
        SObject("Opportunity", "Opportunity", "006", _system() + (
            _s("Name", "Name", 120, nillable=False),
            _ref("AccountId", "Account ID", ("Account",), "Account"),
            _pick("StageName", "Stage", STAGES, nillable=False),
            _num("Amount", "Amount", "currency"),
            SField("CloseDate", "Close Date", "date", nillable=False),
            SField("IsClosed", "Closed", "boolean", nillable=False, createable=False,
                   updateable=False),
            SField("IsWon", "Won", "boolean", nillable=False, createable=False,
                   updateable=False),
            _num("Probability", "Probability (%)", "percent"),
            _s("NextStep", "Next Step", 255), _text("Description", "Description", 32000),
            _s("Coachloop_Deal_Key__c", "Coachloop Deal Key", 80, external_id=True,
               unique=True),
            *_meddic_fields())),
        SObject("OpportunityContactRole", "Opportunity Contact Role", "00K", _system(False) + (
            _ref("OpportunityId", "Opportunity ID", ("Opportunity",), "Opportunity",
                 nillable=False),
            _ref("ContactId", "Contact ID", ("Contact",), "Contact", nillable=False),
            _pick("Role", "Role", ("Business User", "Decision Maker", "Economic Buyer",
                                   "Economic Decision Maker", "Evaluator", "Executive Sponsor",
                                   "Influencer", "Technical Buyer", "Champion", "Other"),
                  restricted=False),
            SField("IsPrimary", "Primary", "boolean", nillable=False, default=False))),
        SObject("Task", "Task", "00T", _system() + (
            _s("Subject", "Subject", 255),
            _ref("WhatId", "Related To ID", ("Opportunity", "Account"), "What"),
            _ref("WhoId", "Name ID", ("Contact",), "Who"),
            SField("ActivityDate", "Due Date Only", "date"),
            _text("Description", "Description", 32000),
            _pick("Status", "Status", ("Not Started", "In Progress", "Completed",
                                       "Waiting on someone else", "Deferred"),
                  nillable=False, default="Not Started"),
            _pick("Priority", "Priority", ("High", "Normal", "Low"), nillable=False,
                  default="Normal"),
            _s("Coachloop_Meeting_Key__c", "Coachloop Meeting Key", 255, external_id=True,
               unique=True))),
        SObject("Rep_Skill_Score__c", "Rep Skill Score", "a0X", _system() + (
            _s("Name", "Rep Skill Score Name", 80, default="record-id"),
            _s("Score_Key__c", "Score Key", 255, external_id=True, unique=True),
            _ref("User__c", "Rep", ("User",), "User__r"),
            _ref("Opportunity__c", "Opportunity", ("Opportunity",), "Opportunity__r"),
            _s("Skill__c", "Skill", 80),
            _num("Window_Days__c", "Window (days)"),
            SField("As_Of__c", "As Of", "date"),
            _num("Score__c", "Score"), _num("Interval_Low__c", "Interval Low"),
            _num("Interval_High__c", "Interval High"), _num("Percentile__c", "Percentile"),
            _num("N_Calls__c", "Calls"),
            _pick("State__c", "State", ("ok", "insufficient_data"))), custom=True),
    ]
    return {o.name.lower(): o for o in objs}


# --------------------------------------------------------------------------------------------
# Ids, values, errors
# --------------------------------------------------------------------------------------------

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def id_suffix(id15: str) -> str:
    """Salesforce's 3-character case-safety suffix for a 15-character Id."""
    out = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")
        out += _SUFFIX[bits]
    return out


def normalize_id(value: Any) -> str | None:
    """The 18-character form of a well-formed Id, or None if it is malformed."""
    if not isinstance(value, str) or len(value) not in (15, 18) or not value.isalnum():
        return None
    if len(value) == 15:
        return value + id_suffix(value)
    return value if id_suffix(value[:15]) == value[15:] else None


class SalesforceError(Exception):
    """One Salesforce error: statusCode/errorCode, message and fields."""

    def __init__(self, code: str, message: str, fields: Iterable[str] = (), status: int = 400):
        super().__init__(message)
        self.code, self.message, self.fields, self.status = code, message, list(fields), status

    def top_level(self) -> list[dict]:
        """The REST body: `[{"message", "errorCode", "fields"}]`."""
        body: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields:
            body["fields"] = self.fields
        return [body]

    def record_error(self) -> dict:
        """The sObject Collections per-record form, with `statusCode`."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


def _format_datetime(value: datetime) -> str:
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return _format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _coerce(fdef: SField, value: Any) -> Any:
    """A JSON value converted to the stored Python value for the field's type."""
    if value is None:
        return None

    def parser_error(kind: str) -> SalesforceError:
        shown = json.dumps(value) if not isinstance(value, str) else value
        return SalesforceError(
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of {kind} from VALUE_STRING value {shown} or "
            f"request may be missing a required field at [line:1, column:1]")

    kind = fdef.type
    if kind in ("double", "currency", "percent"):
        if isinstance(value, bool):
            raise parser_error(kind)
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise parser_error(kind) from None
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise parser_error("boolean")
    if kind == "date":
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise parser_error("date") from None
    if kind == "datetime":
        try:
            return soql.parse_datetime(str(value))
        except ValueError:
            raise parser_error("datetime") from None
    if isinstance(value, (dict, list)):
        raise parser_error(kind)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if not isinstance(value, str) else value


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------

@dataclass
class _Client:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...] | None  # None: any


@dataclass
class _Token:
    value: str
    kind: str  # "access" | "refresh"
    family: str
    user_id: str
    client_id: str
    issued_at: datetime
    last_used: datetime
    revoked: bool = False
    rotated: bool = False  # a refresh token already exchanged (rotation)


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str | None
    method: str
    user_id: str
    expires: datetime
    used: bool = False


@dataclass
class _Cursor:
    records: list[dict]
    total: int
    created: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


# --------------------------------------------------------------------------------------------
# The sandbox
# --------------------------------------------------------------------------------------------

class SalesforceSandbox:
    """An in-memory Salesforce org served over HTTP by `create_app()`; thread-safe."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None,
                 session_timeout: timedelta = timedelta(hours=2),
                 daily_limit: int = 100_000, query_page_size: int = 2000,
                 rotate_refresh_tokens: bool = True, seed: int = 0):
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.session_timeout = session_timeout
        self.daily_limit = daily_limit
        self.query_page_size = query_page_size
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.schema = default_schema()
        self.requests: Counter[str] = Counter()
        self.collection_writes: Counter[str] = Counter()  # sObject Collections calls per object
        self.error_rate = 0.0
        self.latency = 0.0
        self._random = random.Random(seed)
        self._lock = threading.RLock()
        self._records: dict[str, dict[str, dict]] = {o: {} for o in self.schema}
        self._serial = 0
        self._usage: deque[datetime] = deque()
        self._lock_errors = 0
        self._clients: dict[str, _Client] = {}
        self._tokens: dict[str, _Token] = {}
        self._codes: dict[str, _Code] = {}
        self._cursors: dict[str, _Cursor] = {}
        self.add_client(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
        self.admin_user_id = self.create("User", {
            "Username": "admin@coachloop-sandbox.example", "FirstName": "Sandbox",
            "LastName": "Admin", "Email": "admin@coachloop-sandbox.example"})
        self.login_user_id = self.admin_user_id

    # ---- configuration and fault injection -------------------------------------------------

    def use_auto_number_name(self, sobject: str, display_format: str = "A-{000000}") -> None:
        """Make the object's Name an Auto Number, as many orgs define custom objects:
        read-only (not createable, not updateable), numbered by Salesforce on insert."""
        from dataclasses import replace

        with self._lock:
            obj = self.schema[sobject.lower()]
            fields = tuple(replace(f, createable=False, updateable=False, nillable=False,
                                   default=None, auto_number=display_format)
                           if f.name == "Name" else f for f in obj.fields)
            self.schema[sobject.lower()] = replace(obj, fields=fields)

    def add_client(self, client_id: str, client_secret: str,
                   redirect_uris: Iterable[str] | None = None) -> None:
        """Register a connected app; `redirect_uris=None` accepts any callback."""
        with self._lock:
            self._clients[client_id] = _Client(
                client_id, client_secret, tuple(redirect_uris) if redirect_uris else None)

    def inject_lock_errors(self, n: int) -> None:
        """Make the next `n` record writes fail with UNABLE_TO_LOCK_ROW."""
        with self._lock:
            self._lock_errors = n

    def set_faults(self, *, error_rate: float = 0.0, latency: float = 0.0,
                   seed: int | None = None) -> None:
        """Fail that share of API calls with 503/500 (seeded), and delay every call."""
        with self._lock:
            self.error_rate, self.latency = error_rate, latency
            if seed is not None:
                self._random = random.Random(seed)

    def expire_sessions(self) -> None:
        """Every access token's session times out now (idle past the org's session timeout);
        refresh tokens stay good."""
        with self._lock:
            idle = self.clock() - self.session_timeout - timedelta(seconds=1)
            for token in self._tokens.values():
                if token.kind == "access":
                    token.last_used = idle

    def revoke_all_tokens(self) -> None:
        """Revoke every access and refresh token (as an admin's "revoke all" would)."""
        with self._lock:
            for token in self._tokens.values():
                token.revoked = True

    def issue_token(self, user_id: str | None = None,
                    client_id: str = DEFAULT_CLIENT_ID) -> str:
        """An access token minted directly, for tests and `coachloop demo` (no OAuth dance)."""
        with self._lock:
            return self._issue(user_id or self.login_user_id, client_id, secrets.token_hex(8),
                               "access").value

    @property
    def api_usage(self) -> int:
        """API calls counted in the rolling 24 hours."""
        with self._lock:
            self._expire_usage()
            return len(self._usage)

    def set_api_usage(self, used: int) -> None:
        """Pretend `used` calls were already made in the last 24 hours."""
        with self._lock:
            now = self.clock()
            self._usage = deque([now] * used)

    # ---- records (also the Python API for seeding and assertions) --------------------------

    def _obj(self, name: str) -> SObject:
        sobject = self.schema.get(name.lower())
        if sobject is None:
            raise SalesforceError("NOT_FOUND", "The requested resource does not exist",
                                  status=404)
        return sobject

    def _new_id(self, sobject: SObject) -> str:
        self._serial += 1
        n, digits = self._serial, ""
        while n or len(digits) < 7:
            n, r = divmod(n, 62)
            digits = _B62[r] + digits
        id15 = sobject.key_prefix + "5g00" + digits[-8:].rjust(8, "0")
        return id15 + id_suffix(id15)

    def create(self, obj: str, values: dict) -> str:
        """Insert one record through the same validation as the API; returns its Id."""
        with self._lock:
            return self._insert(self._obj(obj), values, count_lock=False)

    def update(self, obj: str, record_id: str, values: dict) -> None:
        """Change one record as a user in the Salesforce UI would (validated, not counted)."""
        with self._lock:
            self._update(self._obj(obj), normalize_id(record_id), values)

    def get(self, obj: str, record_id: str) -> dict | None:
        """A copy of a stored record (API names → JSON values), or None."""
        with self._lock:
            record = self._records[self._obj(obj).name.lower()].get(normalize_id(record_id) or "")
            return {k: _to_json(v) for k, v in record.items()} if record else None

    def records(self, obj: str) -> list[dict]:
        """Copies of every record of a type, in creation order."""
        with self._lock:
            return [{k: _to_json(v) for k, v in r.items()}
                    for r in self._records[self._obj(obj).name.lower()].values()]

    def find(self, obj: str, **criteria: Any) -> list[dict]:
        """Records whose fields equal all the given values."""
        return [r for r in self.records(obj)
                if all(r.get(k) == v for k, v in criteria.items())]

    def _check_lock(self, sobject: SObject, record_id: str | None) -> None:
        if self._lock_errors > 0:
            self._lock_errors -= 1
            raise SalesforceError(
                "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 1 "
                f"records: {record_id or sobject.key_prefix + '000000000000AAA'}")

    def _validate(self, sobject: SObject, values: dict, existing: dict | None) -> dict:
        if not isinstance(values, dict):
            raise SalesforceError("JSON_PARSER_ERROR", "Expected a JSON object")
        clean: dict[str, Any] = {}
        readonly: list[str] = []
        for key, value in values.items():
            if key == "attributes":
                continue
            fdef = sobject.field(key)
            if fdef is None:
                raise SalesforceError("INVALID_FIELD", f"No such column '{key}' on sobject of "
                                                       f"type {sobject.name}")
            if not (fdef.updateable if existing is not None else fdef.createable):
                if fdef.name == "Id" and existing is not None and \
                        normalize_id(value) == existing["Id"]:
                    continue
                readonly.append(fdef.name)
                continue
            clean[fdef.name] = (fdef, value)
        if readonly:
            raise SalesforceError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(readonly)}. Please check the "
                "security settings of this field and verify that it is read/write for your "
                "profile or permission set.", readonly)
        out: dict[str, Any] = {}
        for name, (fdef, raw) in clean.items():
            value = _coerce(fdef, raw)
            if isinstance(value, str) and value == "" and fdef.type != "boolean":
                value = None
            if value is None and not fdef.nillable and fdef.type != "boolean":
                raise SalesforceError("REQUIRED_FIELD_MISSING",
                                      f"Required fields are missing: [{name}]", [name])
            if isinstance(value, str) and fdef.length and len(value) > fdef.length:
                raise SalesforceError(
                    "STRING_TOO_LONG", f"{fdef.label}: data value too large: "
                    f"{value[:40]}{'...' if len(value) > 40 else ''} (max length={fdef.length})",
                    [name])
            if fdef.type == "picklist" and fdef.restricted and value is not None \
                    and value not in fdef.picklist:
                raise SalesforceError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                      f"{fdef.label}: bad value for restricted picklist field: "
                                      f"{value}", [name])
            if fdef.type == "reference" and value is not None:
                value = self._check_reference(fdef, value)
            out[name] = value
        for name, value in out.items():
            fdef = sobject.field(name)
            if fdef.unique and value is not None:
                for other in self._records[sobject.name.lower()].values():
                    if other is existing:
                        continue
                    theirs = other.get(name)
                    if isinstance(theirs, str) and theirs.lower() == str(value).lower():
                        raise SalesforceError(
                            "DUPLICATE_VALUE", f"duplicate value found: {name} duplicates value "
                            f"on record with id: {other['Id']}", [])
        return out

    def _check_reference(self, fdef: SField, value: str) -> str:
        rid = normalize_id(value)
        targets = {self.schema[t.lower()].key_prefix: t for t in fdef.reference_to}
        if rid is None:
            raise SalesforceError("MALFORMED_ID", f"{fdef.label}: id value of incorrect type: "
                                                  f"{value}", [fdef.name])
        if rid[:3] not in targets:
            raise SalesforceError("FIELD_INTEGRITY_EXCEPTION", f"{fdef.label}: id value of "
                                  f"incorrect type: {value}", [fdef.name])
        if rid not in self._records[targets[rid[:3]].lower()]:
            raise SalesforceError("INVALID_CROSS_REFERENCE_KEY",
                                  "invalid cross reference id", [fdef.name])
        return rid

    def _derive(self, sobject: SObject, record: dict) -> None:
        for f in sobject.fields:
            if f.auto_number and not record.get(f.name):
                width = len(f.auto_number.split("{", 1)[1].split("}", 1)[0])
                number = sum(1 for r in self._records[sobject.name.lower()].values()
                             if r.get(f.name)) + 1
                record[f.name] = re.sub(r"\{0+\}", str(number).zfill(width), f.auto_number)
        if sobject.name == "Opportunity":
            stage = record.get("StageName")
            record["IsClosed"] = stage in ("Closed Won", "Closed Lost")
            record["IsWon"] = stage == "Closed Won"
        if sobject.name in ("User", "Contact"):
            record["Name"] = " ".join(p for p in (record.get("FirstName"),
                                                  record.get("LastName")) if p)

    def _insert(self, sobject: SObject, values: dict, count_lock: bool = True) -> str:
        if count_lock:
            self._check_lock(sobject, None)
        if isinstance(values, dict) and any(k.lower() == "id" for k in values):
            raise SalesforceError("INVALID_FIELD", "Cannot specify Id in an insert call",
                                  ["Id"])
        clean = self._validate(sobject, values, None)
        missing = [f.name for f in sobject.fields
                   if not f.nillable and f.createable and f.type != "boolean"
                   and f.default is None and clean.get(f.name) is None]
        if missing:
            raise SalesforceError("REQUIRED_FIELD_MISSING",
                                  f"Required fields are missing: [{', '.join(missing)}]", missing)
        now = self.clock()
        record_id = self._new_id(sobject)
        user = getattr(self, "_acting_user", None) or getattr(self, "admin_user_id", None) \
            or record_id
        record: dict[str, Any] = {"Id": record_id}
        for f in sobject.fields:
            if f.name == "Id":
                continue
            if f.default == "current-user":
                record[f.name] = user
            elif f.default == "record-id":
                record[f.name] = record_id
            elif f.type == "boolean":
                record[f.name] = bool(f.default)
            else:
                record[f.name] = f.default
        record.update({"CreatedDate": now, "LastModifiedDate": now, "SystemModstamp": now,
                       "IsDeleted": False, "CreatedById": user, "LastModifiedById": user})
        record.update(clean)
        self._derive(sobject, record)
        self._records[sobject.name.lower()][record_id] = record
        return record_id

    def _update(self, sobject: SObject, record_id: str, values: dict) -> None:
        rid = normalize_id(record_id)
        if rid is None:
            raise SalesforceError("MALFORMED_ID", f"{sobject.label} ID: id value of incorrect "
                                                  f"type: {record_id}", ["Id"])
        record = self._records[sobject.name.lower()].get(rid)
        if record is None:
            raise SalesforceError("NOT_FOUND", "The requested resource does not exist",
                                  status=404)
        self._check_lock(sobject, rid)
        clean = self._validate(sobject, values, record)
        record.update(clean)
        now = self.clock()
        user = getattr(self, "_acting_user", None) or self.admin_user_id
        record.update({"LastModifiedDate": now, "SystemModstamp": now,
                       "LastModifiedById": user})
        self._derive(sobject, record)

    def _find_by(self, sobject: SObject, field_name: str, value: str) -> tuple[SField, list]:
        fdef = sobject.field(field_name)
        if fdef is None or not (fdef.external_id or fdef.type == "id"):
            raise SalesforceError("NOT_FOUND", f"Provided external ID field does not exist or "
                                  f"is not accessible: {field_name}", status=404)
        if fdef.type == "id":
            rid = normalize_id(value)
            hit = self._records[sobject.name.lower()].get(rid or "")
            return fdef, [hit] if hit else []
        matches = [r for r in self._records[sobject.name.lower()].values()
                   if isinstance(r.get(fdef.name), str)
                   and r[fdef.name].lower() == value.lower()]
        return fdef, matches

    def _upsert(self, sobject: SObject, field_name: str, value: str, values: dict,
                update_only: bool = False) -> tuple[str, bool]:
        fdef, matches = self._find_by(sobject, field_name, value)
        if len(matches) > 1:
            raise SalesforceError("MULTIPLE_CHOICES", "More than one record found", status=300)
        body = {k: v for k, v in values.items() if k.lower() != fdef.name.lower()} \
            if isinstance(values, dict) else values
        if matches:
            self._update(sobject, matches[0]["Id"], body)
            return matches[0]["Id"], False
        if update_only or fdef.type == "id":
            raise SalesforceError("NOT_FOUND", "The requested resource does not exist",
                                  status=404)
        if not value:
            raise SalesforceError("MISSING_ARGUMENT", f"{fdef.name} not specified", [])
        return self._insert(sobject, {**body, fdef.name: value}), True

    def _delete(self, sobject: SObject, record_id: str) -> None:
        rid = normalize_id(record_id)
        table = self._records[sobject.name.lower()]
        if rid is None or rid not in table:
            raise SalesforceError("NOT_FOUND", "The requested resource does not exist",
                                  status=404)
        self._check_lock(sobject, rid)
        del table[rid]

    # ---- seeding ---------------------------------------------------------------------------

    def seed(self, *, users: Iterable[dict] = (), accounts: Iterable[dict] = (),
             contacts: Iterable[dict] = (), opportunities: Iterable[dict] = (),
             contact_roles: Iterable[dict] = ()) -> dict[str, list[str]]:
        """Insert records (API field names) in dependency order; returns the new Ids by kind."""
        out: dict[str, list[str]] = {}
        with self._lock:
            for key, obj, rows in (("users", "User", users), ("accounts", "Account", accounts),
                                   ("contacts", "Contact", contacts),
                                   ("opportunities", "Opportunity", opportunities),
                                   ("contact_roles", "OpportunityContactRole", contact_roles)):
                out[key] = [self.create(obj, dict(row)) for row in rows]
        return out

    # ---- HTTP ------------------------------------------------------------------------------

    def create_app(self):
        """The FastAPI app: /services/oauth2/* and /services/data/vXX.X/*."""
        from fastapi import FastAPI
        from fastapi.responses import JSONResponse, RedirectResponse, Response

        app = FastAPI(title="coachloop Salesforce sandbox", docs_url=None, redoc_url=None,
                      openapi_url=None)

        @app.get("/services/oauth2/authorize")
        def authorize(request: Request):
            status, payload = self.authorize(dict(request.query_params))
            if status == 302:
                return RedirectResponse(payload, status_code=302)
            return JSONResponse(payload, status_code=status)

        @app.post("/services/oauth2/token")
        async def token(request: Request):
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            status, payload = self.token(form, str(request.base_url).rstrip("/"))
            return JSONResponse(payload, status_code=status,
                                headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

        @app.post("/services/oauth2/revoke")
        async def revoke(request: Request):
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            form.update(dict(request.query_params))
            with self._lock:
                self.requests["POST /services/oauth2/revoke"] += 1
                tok = self._tokens.get(form.get("token", ""))
                # A revoked token is gone at Salesforce: revoking it again is an error too.
                if tok is None or tok.revoked:
                    return JSONResponse({"error": "unsupported_token_type",
                                         "error_description": "this token type is not "
                                                              "supported"}, status_code=400)
                if tok.kind == "refresh":
                    self._revoke_family(tok.family)
                else:
                    tok.revoked = True
            return Response(status_code=200)

        @app.api_route("/services/data/{rest:path}", methods=["GET", "POST", "PATCH", "DELETE"])
        @app.api_route("/services/data", methods=["GET"])
        async def data(request: Request):
            raw = request.scope.get("raw_path") or request.url.path.encode()
            parts = [unquote(p) for p in raw.decode().split("?")[0].split("/") if p][2:]
            body = await request.body()
            if self.latency:
                import asyncio
                await asyncio.sleep(self.latency)
            status, payload, headers = self.handle(
                request.method, parts, dict(request.query_params), body,
                request.headers.get("authorization", ""), str(request.base_url).rstrip("/"))
            if status == 204 or payload is None:
                return Response(status_code=status, headers=headers)
            return Response(json.dumps(payload), status_code=status, headers=headers,
                            media_type="application/json;charset=UTF-8")

        return app

    # ---- OAuth -----------------------------------------------------------------------------

    def _issue(self, user_id: str, client_id: str, family: str, kind: str) -> _Token:
        prefix = ORG_ID[:15] + "!" if kind == "access" else "5Aep861"
        value = prefix + secrets.token_urlsafe(72 if kind == "access" else 60)
        now = self.clock()
        token = _Token(value, kind, family, user_id, client_id, now, now)
        self._tokens[value] = token
        return token

    def _revoke_family(self, family: str) -> None:
        for token in self._tokens.values():
            if token.family == family:
                token.revoked = True

    def authorize(self, params: dict) -> tuple[int, Any]:
        """The consent step, auto-approved: (302, redirect URL) or (400, error body)."""
        with self._lock:
            self.requests["GET /services/oauth2/authorize"] += 1
            client = self._clients.get(params.get("client_id", ""))
            if client is None:
                return 400, {"error": "invalid_client_id",
                             "error_description": "client identifier invalid"}
            redirect = params.get("redirect_uri", "")
            if not redirect or (client.redirect_uris is not None
                                and redirect not in client.redirect_uris):
                return 400, {"error": "redirect_uri_mismatch",
                             "error_description": "redirect_uri must match configuration"}
            state = {"state": params["state"]} if "state" in params else {}
            sep = "&" if "?" in redirect else "?"
            if params.get("response_type") != "code":
                return 302, redirect + sep + urlencode(
                    {"error": "unsupported_response_type",
                     "error_description": "response type not supported", **state})
            method = params.get("code_challenge_method", "S256")
            if params.get("code_challenge") and method != "S256":
                return 302, redirect + sep + urlencode(
                    {"error": "invalid_request",
                     "error_description": "invalid code_challenge_method", **state})
            code = "aPrx" + secrets.token_urlsafe(40) + "=="
            self._codes[code] = _Code(client.client_id, redirect, params.get("code_challenge"),
                                      method, self.login_user_id,
                                      self.clock() + timedelta(minutes=15))
            return 302, redirect + sep + urlencode({"code": code, **state})

    def token(self, form: dict, base_url: str | None = None) -> tuple[int, dict]:
        """`POST /services/oauth2/token`: authorization_code and refresh_token grants."""
        def fail(error: str, description: str) -> tuple[int, dict]:
            return 400, {"error": error, "error_description": description}

        with self._lock:
            self._base_url = base_url or getattr(self, "_base_url", "https://127.0.0.1")
            self.requests["POST /services/oauth2/token"] += 1
            client = self._clients.get(form.get("client_id", ""))
            if client is None:
                return fail("invalid_client_id", "client identifier invalid")
            if "client_secret" in form and not hmac.compare_digest(
                    form["client_secret"], client.client_secret):
                return fail("invalid_client", "invalid client credentials")
            grant = form.get("grant_type")
            now = self.clock()
            if grant == "authorization_code":
                code = self._codes.get(form.get("code", ""))
                if code is None or code.client_id != client.client_id:
                    return fail("invalid_grant", "invalid authorization code")
                if code.used or now > code.expires:
                    return fail("invalid_grant", "expired authorization code")
                if form.get("redirect_uri") != code.redirect_uri:
                    return fail("invalid_grant", "redirect_uri must match configuration")
                if code.challenge:
                    verifier = form.get("code_verifier")
                    if not verifier:
                        return fail("invalid_grant", "invalid code verifier")
                    digest = base64.urlsafe_b64encode(
                        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                    if not hmac.compare_digest(digest, code.challenge):
                        return fail("invalid_request", "invalid code verifier")
                elif "client_secret" not in form:
                    return fail("invalid_client", "invalid client credentials")
                code.used = True
                family = secrets.token_hex(8)
                access = self._issue(code.user_id, client.client_id, family, "access")
                refresh = self._issue(code.user_id, client.client_id, family, "refresh")
                return 200, self._token_body(client, access, refresh)
            if grant == "refresh_token":
                refresh = self._tokens.get(form.get("refresh_token", ""))
                if refresh is None or refresh.kind != "refresh" or refresh.revoked \
                        or refresh.client_id != client.client_id:
                    return fail("invalid_grant", "expired access/refresh token")
                if refresh.rotated:
                    self._revoke_family(refresh.family)
                    return fail("invalid_grant", "expired access/refresh token")
                access = self._issue(refresh.user_id, client.client_id, refresh.family,
                                     "access")
                new_refresh = None
                if self.rotate_refresh_tokens:
                    refresh.rotated = True
                    new_refresh = self._issue(refresh.user_id, client.client_id,
                                              refresh.family, "refresh")
                return 200, self._token_body(client, access, new_refresh)
            return fail("unsupported_grant_type", "grant type not supported")

    def _token_body(self, client: _Client, access: _Token, refresh: _Token | None) -> dict:
        base = getattr(self, "_base_url", "https://127.0.0.1")
        issued = str(int(access.issued_at.timestamp() * 1000))
        identity = f"{base}/id/{ORG_ID}/{access.user_id}"
        signature = base64.b64encode(hmac.new(client.client_secret.encode(),
                                              (identity + issued).encode(),
                                              hashlib.sha256).digest()).decode()
        body = {"access_token": access.value, "signature": signature,
                "scope": "refresh_token api", "instance_url": base, "id": identity,
                "token_type": "Bearer", "issued_at": issued}
        if refresh is not None:
            body["refresh_token"] = refresh.value
        return body

    # ---- REST dispatch ---------------------------------------------------------------------

    def _expire_usage(self) -> None:
        horizon = self.clock() - timedelta(hours=24)
        while self._usage and self._usage[0] <= horizon:
            self._usage.popleft()

    def _authenticate(self, authorization: str) -> str:
        value = authorization[7:].strip() if authorization.lower().startswith("bearer ") \
            else authorization.removeprefix("OAuth ").strip()
        token = self._tokens.get(value)
        now = self.clock()
        if token is None or token.kind != "access" or token.revoked \
                or now - token.last_used > self.session_timeout:
            raise SalesforceError("INVALID_SESSION_ID", "Session expired or invalid",
                                  status=401)
        token.last_used = now  # Salesforce sessions time out on inactivity
        return token.user_id

    def handle(self, method: str, parts: list[str], params: dict, body: bytes,
               authorization: str, base_url: str) -> tuple[int, Any, dict]:
        """Serve one `/services/data/...` request: (status, JSON body or None, headers)."""
        with self._lock:
            self._base_url = base_url
            if not parts:
                self.requests["GET /services/data"] += 1
                return 200, [{"label": "Winter '24", "url": f"/services/data/v{API_VERSION}",
                              "version": API_VERSION}], {}
            version = parts[0]
            if not (version.startswith("v") and version[1:].replace(".", "", 1).isdigit()):
                return 404, [{"errorCode": "NOT_FOUND",
                              "message": "The requested resource does not exist"}], {}
            rest = parts[1:]
            template = self._template(method, rest)
            self.requests[f"{method} {template}"] += 1
            headers: dict[str, str] = {}
            try:
                if self.error_rate and self._random.random() < self.error_rate:
                    if self._random.random() < 0.5:
                        raise SalesforceError("SERVER_UNAVAILABLE",
                                              "Server temporarily unavailable", status=503)
                    raise SalesforceError(
                        "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include "
                        f"this ErrorId if you contact support: {self._random.randint(10**8, 10**9)}"
                        "-4711 (-1204883471)", status=500)
                self._acting_user = self._authenticate(authorization)
                self._expire_usage()
                if len(self._usage) >= self.daily_limit:
                    headers["Sforce-Limit-Info"] = f"api-usage={len(self._usage)}/" \
                                                   f"{self.daily_limit}"
                    raise SalesforceError("REQUEST_LIMIT_EXCEEDED",
                                          "TotalRequests Limit exceeded.", status=403)
                self._usage.append(self.clock())
                headers["Sforce-Limit-Info"] = f"api-usage={len(self._usage)}/{self.daily_limit}"
                payload = json.loads(body) if body else None
                status, result = self._route(method, rest, params, payload, version,
                                             template)
                return status, result, headers
            except json.JSONDecodeError as exc:
                return 400, [{"message": f"Unexpected character: {exc.msg} at [line:{exc.lineno}"
                                         f", column:{exc.colno}]",
                              "errorCode": "JSON_PARSER_ERROR"}], headers
            except SalesforceError as exc:
                return exc.status, exc.top_level(), headers
            finally:
                self._acting_user = None

    @staticmethod
    def _template(method: str, rest: list[str]) -> str:
        if not rest:
            return "/"
        head, n = rest[0], len(rest)
        if head == "sobjects":
            shapes = {1: "/sobjects", 2: "/sobjects/{obj}",
                      3: "/sobjects/{obj}/describe" if n == 3 and rest[2] == "describe"
                      else "/sobjects/{obj}/{id}", 4: "/sobjects/{obj}/{field}/{value}"}
            return shapes.get(n, "/sobjects/...")
        if head == "composite" and n >= 2 and rest[1] == "sobjects":
            return {2: "/composite/sobjects", 4: "/composite/sobjects/{obj}/{field}"}.get(
                n, "/composite/sobjects/...")
        if head in ("query", "queryAll"):
            return f"/{head}" if n == 1 else f"/{head}/{{locator}}"
        return "/" + "/".join(rest)

    def _route(self, method: str, rest: list[str], params: dict, payload: Any, version: str,
               template: str) -> tuple[int, Any]:
        n = len(rest)
        if template == "/" and method == "GET":
            return 200, {k: f"/services/data/{version}/{k}" for k in
                         ("sobjects", "query", "queryAll", "composite", "limits")}
        if template == "/limits" and method == "GET":
            used = len(self._usage)
            return 200, {"DailyApiRequests": {"Max": self.daily_limit,
                                              "Remaining": self.daily_limit - used}}
        if template == "/sobjects" and method == "GET":
            return 200, {"encoding": "UTF-8", "maxBatchSize": 200,
                         "sobjects": [self._describe_global(o, version)
                                      for o in self.schema.values()]}
        if template in ("/query", "/queryAll") and method == "GET":
            return 200, self._query(params.get("q", ""), version)
        if template in ("/query/{locator}", "/queryAll/{locator}") and method == "GET":
            return 200, self._query_more(rest[1], version)
        if rest[0] == "sobjects" and n >= 2:
            sobject = self._obj(rest[1])
            if template == "/sobjects/{obj}/describe" and method == "GET":
                return 200, self._describe(sobject, version)
            if template == "/sobjects/{obj}" and method == "GET":
                return 200, {"objectDescribe": self._describe_global(sobject, version),
                             "recentItems": []}
            if template == "/sobjects/{obj}" and method == "POST":
                record_id = self._insert(sobject, payload if payload is not None else {})
                return 201, {"id": record_id, "success": True, "errors": []}
            if template == "/sobjects/{obj}/{id}":
                if method == "GET":
                    rid = normalize_id(rest[2])
                    record = self._records[sobject.name.lower()].get(rid or "")
                    if record is None:
                        raise SalesforceError("NOT_FOUND", "The requested resource does not "
                                                           "exist", status=404)
                    fields = [f.strip() for f in params["fields"].split(",")] \
                        if params.get("fields") else None
                    return 200, self._render(sobject, record, version, fields)
                if method == "PATCH":
                    self._update(sobject, rest[2], payload if payload is not None else {})
                    return 204, None
                if method == "DELETE":
                    self._delete(sobject, rest[2])
                    return 204, None
            if template == "/sobjects/{obj}/{field}/{value}":
                if method == "GET":
                    _, hits = self._find_by(sobject, rest[2], rest[3])
                    if not hits:
                        raise SalesforceError("NOT_FOUND", "The requested resource does not "
                                                           "exist", status=404)
                    if len(hits) > 1:
                        return 300, [f"/services/data/{version}/sobjects/{sobject.name}/"
                                     f"{h['Id']}" for h in hits]
                    return 200, self._render(sobject, hits[0], version)
                if method == "PATCH":
                    record_id, created = self._upsert(
                        sobject, rest[2], rest[3], payload if payload is not None else {},
                        update_only=params.get("updateOnly") == "true")
                    if not created and float(version[1:]) < 46:
                        return 204, None  # before v46.0 an update answered 204, no body
                    return (201 if created else 200), {"id": record_id, "success": True,
                                                       "errors": [], "created": created}
        if template == "/composite/sobjects":
            if method in ("POST", "PATCH"):
                for name in {(r.get("attributes") or {}).get("type")
                             for r in (payload or {}).get("records") or ()}:
                    self.collection_writes[name] += 1
                return 200, self._collection(method, None, None, payload)
            if method == "DELETE":
                return 200, self._collection_delete(params)
        if template == "/composite/sobjects/{obj}/{field}" and method == "PATCH":
            sobject = self._obj(rest[2])
            self.collection_writes[sobject.name] += 1
            return 200, self._collection("UPSERT", sobject, rest[3], payload)
        raise SalesforceError("NOT_FOUND", "The requested resource does not exist", status=404)

    # ---- describe --------------------------------------------------------------------------

    def _describe_global(self, sobject: SObject, version: str) -> dict:
        base = f"/services/data/{version}/sobjects/{sobject.name}"
        return {"name": sobject.name, "label": sobject.label, "keyPrefix": sobject.key_prefix,
                "custom": sobject.custom, "createable": True, "updateable": True,
                "deletable": True, "queryable": True, "retrieveable": True,
                "urls": {"sobject": base, "describe": base + "/describe",
                         "rowTemplate": base + "/{ID}"}}

    def _describe(self, sobject: SObject, version: str) -> dict:
        return {**self._describe_global(sobject, version),
                "fields": [f.describe() for f in sobject.fields],
                "childRelationships": [], "recordTypeInfos": []}

    # ---- rendering and SOQL ----------------------------------------------------------------

    def _attributes(self, sobject: SObject, record_id: str, version: str) -> dict:
        return {"type": sobject.name,
                "url": f"/services/data/{version}/sobjects/{sobject.name}/{record_id}"}

    def _render(self, sobject: SObject, record: dict, version: str,
                fields: list[str] | None = None) -> dict:
        out: dict[str, Any] = {"attributes": self._attributes(sobject, record["Id"], version)}
        if fields is None:
            names = [f.name for f in sobject.fields]
        else:
            names = []
            for name in fields:
                fdef = sobject.field(name)
                if fdef is None:
                    raise SalesforceError("INVALID_FIELD", f"No such column '{name}' on sobject "
                                                           f"of type {sobject.name}")
                names.append(fdef.name)
        for name in names:
            out[name] = _to_json(record.get(name))
        return out

    def _parent(self, sobject: SObject, record: dict, rel: str) -> tuple[SObject, dict | None]:
        fdef = sobject.relationship(rel)
        if fdef is None:
            raise SalesforceError("INVALID_FIELD", f"Didn't understand relationship '{rel}' in "
                                                   f"field path. If you are attempting to use a "
                                                   f"custom relationship, be sure to append the "
                                                   f"'__r' after the custom relationship name.")
        target_id = record.get(fdef.name)
        for name in fdef.reference_to:
            target = self.schema[name.lower()]
            if target_id and target_id.startswith(target.key_prefix):
                return target, self._records[name.lower()].get(target_id)
        return self.schema[fdef.reference_to[0].lower()], None

    def _resolve_path(self, sobject: SObject, path: str) -> tuple[str, SField, SObject]:
        """(canonical path, field, object owning the field) for `Name` or `Account.Name`."""
        pieces = path.split(".")
        if len(pieces) == 1:
            fdef = sobject.field(path)
            if fdef is None:
                raise SalesforceError("INVALID_FIELD", f"No such column '{path}' on entity "
                                      f"'{sobject.name}'. If you are attempting to use a custom "
                                      "field, be sure to append the '__c' after the custom field "
                                      "name. Please reference your WSDL or the describe call "
                                      "for the appropriate names.")
            return fdef.name, fdef, sobject
        if len(pieces) != 2:
            raise SalesforceError("MALFORMED_QUERY", "only one-level relationship fields are "
                                                     "supported by the sandbox")
        rel = sobject.relationship(pieces[0])
        if rel is None:
            self._parent(sobject, {}, pieces[0])  # raises INVALID_FIELD
        target = self.schema[rel.reference_to[0].lower()]
        canonical, fdef, _ = self._resolve_path(target, pieces[1])
        return f"{rel.relationship_name}.{canonical}", fdef, target

    def _value(self, sobject: SObject, record: dict, path: str) -> Any:
        if "." not in path:
            return record.get(path)
        rel, name = path.split(".")
        _, parent = self._parent(sobject, record, rel)
        return parent.get(name) if parent else None

    def _check_literal(self, path: str, fdef: SField, cond: soql.Condition) -> None:
        literals = cond.value if isinstance(cond.value, tuple) else (cond.value,)
        want = {"date": "date", "datetime": "datetime", "boolean": "boolean", "double": "number",
                "currency": "number", "percent": "number"}.get(fdef.type, "string")
        for lit in literals:
            if lit.kind != "null" and lit.kind != want:
                quoted = "and should not be enclosed in quotes" if lit.kind == "string" else \
                    "and should be enclosed in quotes" if want == "string" else ""
                raise SalesforceError(
                    "INVALID_FIELD", f"value of filter criterion for field '{path}' must be of "
                    f"type {fdef.type} {quoted}".rstrip())

    def _query(self, text: str, version: str) -> dict:
        try:
            query = soql.parse(text)
        except soql.SoqlError as exc:
            raise SalesforceError("MALFORMED_QUERY", str(exc)) from None
        sobject = self.schema.get(query.sobject.lower())
        if sobject is None:
            raise SalesforceError("INVALID_TYPE", f"sObject type '{query.sobject}' is not "
                                                  "supported. If you are attempting to use a "
                                                  "custom object, be sure to append the '__c' "
                                                  "after the entity name.")
        selected = [self._resolve_path(sobject, f)[0] for f in query.fields]
        canonical_of: dict[str, str] = {}
        for cond in soql.conditions(query.where):
            canonical, fdef, _ = self._resolve_path(sobject, cond.field)
            self._check_literal(canonical, fdef, cond)
            canonical_of[cond.field] = canonical
        order = []
        for item in query.order_by:
            order.append(soql.OrderItem(self._resolve_path(sobject, item.field)[0],
                                        item.descending, item.nulls_last))
        rows = [r for r in self._records[sobject.name.lower()].values()
                if soql.matches(query.where,
                                lambda p, r=r: self._value(sobject, r, canonical_of[p]))]
        for item in reversed(order):
            rows.sort(key=lambda r, i=item: soql.sort_key(i, self._value(sobject, r, i.field)),
                      reverse=item.descending)
        rows = rows[query.offset:]
        if query.limit is not None:
            rows = rows[:query.limit]
        if query.count_only:
            return {"totalSize": len(rows), "done": True, "records": []}
        records = [self._project(sobject, r, selected, version) for r in rows]
        cursor_id = "01g5g00000" + secrets.token_hex(4).upper()[:5] + "AAA"
        self._cursors[cursor_id] = _Cursor(records, len(records))
        return self._page(cursor_id, 0, version)

    def _project(self, sobject: SObject, record: dict, selected: list[str], version: str) -> dict:
        out: dict[str, Any] = {"attributes": self._attributes(sobject, record["Id"], version)}
        for path in selected:
            if "." not in path:
                out[path] = _to_json(record.get(path))
                continue
            rel, name = path.split(".")
            target, parent = self._parent(sobject, record, rel)
            if parent is None:
                out[rel] = None
                continue
            nested = out.get(rel) or {"attributes": self._attributes(target, parent["Id"],
                                                                     version)}
            nested[name] = _to_json(parent.get(name))
            out[rel] = nested
        return out

    def _page(self, cursor_id: str, offset: int, version: str) -> dict:
        cursor = self._cursors[cursor_id]
        end = offset + self.query_page_size
        body: dict[str, Any] = {"totalSize": cursor.total, "done": end >= cursor.total,
                                "records": cursor.records[offset:end]}
        if end < cursor.total:
            body["nextRecordsUrl"] = f"/services/data/{version}/query/{cursor_id}-{end}"
        else:
            self._cursors.pop(cursor_id, None)
        return body

    def _query_more(self, locator: str, version: str) -> dict:
        cursor_id, _, offset = locator.rpartition("-")
        if cursor_id not in self._cursors or not offset.isdigit():
            raise SalesforceError("INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(cursor_id, int(offset), version)

    # ---- sObject Collections ---------------------------------------------------------------

    def _collection(self, op: str, sobject: SObject | None, ext_field: str | None,
                    payload: Any) -> list[dict]:
        if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
            raise SalesforceError("JSON_PARSER_ERROR", "Expected {\"records\": [...]} in the "
                                                       "request body")
        records = payload["records"]
        all_or_none = bool(payload.get("allOrNone", False))
        if len(records) > 200:
            raise SalesforceError("EXCEEDED_ID_LIMIT", "record limit reached. cannot submit "
                                                       "more than 200 records into this call")
        if op == "UPSERT":
            fdef = sobject.field(ext_field)
            if fdef is None or not (fdef.external_id or fdef.type == "id"):
                raise SalesforceError("INVALID_FIELD", f"Field name provided, {ext_field} is "
                                      f"not an External ID or indexed field for {sobject.name}")
            values = [_ext_value(r, fdef.name) for r in records]
            dupes = {v.lower() for v in values if v and
                     sum(1 for w in values if w.lower() == v.lower()) > 1}
        snapshot = copy.deepcopy(self._records) if all_or_none else None
        serial = self._serial
        results: list[dict] = []
        failed = False
        for index, record in enumerate(records):
            result: dict[str, Any] = {"id": None, "success": False, "errors": []}
            if op == "UPSERT":
                result["created"] = False
            try:
                if not isinstance(record, dict):
                    raise SalesforceError("JSON_PARSER_ERROR", "Expected a JSON object")
                attrs = record.get("attributes") or {}
                type_name = attrs.get("type") if isinstance(attrs, dict) else None
                if not type_name:
                    raise SalesforceError("INVALID_TYPE", "Must send a concrete entity type.")
                target = self._obj(type_name) if op != "UPSERT" else sobject
                if op == "UPSERT" and type_name.lower() != sobject.name.lower():
                    raise SalesforceError("INVALID_TYPE", f"Cannot upsert {type_name} records "
                                                          f"at the {sobject.name} endpoint")
                body = {k: v for k, v in record.items() if k != "attributes"}
                if op == "POST":
                    result["id"] = self._insert(target, body)
                elif op == "PATCH":
                    rid = next((v for k, v in body.items() if k.lower() == "id"), None)
                    if not rid:
                        raise SalesforceError("MISSING_ARGUMENT", "Id not specified in an update "
                                                                  "call", [])
                    self._update(target, rid, {k: v for k, v in body.items()
                                               if k.lower() != "id"})
                    result["id"] = normalize_id(rid)
                else:
                    value = values[index]
                    if value.lower() in dupes:
                        raise SalesforceError("DUPLICATE_EXTERNAL_ID", "Duplicate external id "
                                              f"specified: {value}", [fdef.name])
                    if not value:
                        raise SalesforceError("MISSING_ARGUMENT", f"{fdef.name} not specified",
                                              [fdef.name])
                    result["id"], result["created"] = self._upsert(target, fdef.name, value,
                                                                   body)
                result["success"] = True
            except SalesforceError as exc:
                if exc.status == 404:
                    exc = SalesforceError("ENTITY_IS_DELETED" if op == "PATCH" else exc.code,
                                          "entity is deleted" if op == "PATCH" else exc.message)
                result["errors"] = [exc.record_error()]
                result["id"] = None
                failed = True
            results.append(result)
        if all_or_none and failed:
            self._records, self._serial = snapshot, serial
            for result in results:
                if result["success"] or not result["errors"]:
                    result.update({"id": None, "success": False, "errors": [{
                        "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                        "message": "Record rolled back because not all records were valid and "
                                   "the request was using AllOrNone header", "fields": []}]})
                    if "created" in result:
                        result["created"] = False
        return results

    def _collection_delete(self, params: dict) -> list[dict]:
        ids = [i for i in params.get("ids", "").split(",") if i]
        if len(ids) > 200:
            raise SalesforceError("EXCEEDED_ID_LIMIT", "record limit reached. cannot submit "
                                                       "more than 200 records into this call")
        all_or_none = params.get("allOrNone") == "true"
        snapshot = copy.deepcopy(self._records) if all_or_none else None
        results, failed = [], False
        for rid in ids:
            norm = normalize_id(rid) or ""
            sobject = next((o for o in self.schema.values() if norm.startswith(o.key_prefix)),
                           None)
            try:
                if sobject is None:
                    raise SalesforceError("MALFORMED_ID", f"malformed id {rid}", [])
                self._delete(sobject, norm)
                results.append({"id": norm, "success": True, "errors": []})
            except SalesforceError as exc:
                code = "ENTITY_IS_DELETED" if exc.status == 404 else exc.code
                results.append({"id": None, "success": False, "errors": [
                    SalesforceError(code, "entity is deleted" if exc.status == 404
                                    else exc.message).record_error()]})
                failed = True
        if all_or_none and failed:
            self._records = snapshot
            for result in results:
                if result["success"]:
                    result.update({"id": None, "success": False, "errors": [{
                        "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                        "message": "Record rolled back because not all records were valid and "
                                   "the request was using AllOrNone header", "fields": []}]})
        return results


# --------------------------------------------------------------------------------------------
# Demo data
# --------------------------------------------------------------------------------------------

def _ext_value(record: Any, field_name: str) -> str:
    if not isinstance(record, dict):
        return ""
    value = next((v for k, v in record.items() if k.lower() == field_name.lower()), None)
    return "" if value is None else str(value)


def _split_name(name: str) -> tuple[str, str]:
    first, _, last = name.strip().rpartition(" ")
    return (first, last) if first else ("", last)


def demo_seed(sandbox: SalesforceSandbox, demo_dir: str | Path) -> dict[str, dict[str, str]]:
    """Load demo/team.yaml and demo/deals.yaml into the org; returns Ids keyed by e-mail,
    account name and deal external id (`users`, `accounts`, `contacts`, `opportunities`)."""
    import yaml

    demo_dir = Path(demo_dir)
    team = yaml.safe_load((demo_dir / "team.yaml").read_text())
    deals = yaml.safe_load((demo_dir / "deals.yaml").read_text()).get("deals", [])
    ids: dict[str, dict[str, str]] = {"users": {}, "accounts": {}, "contacts": {},
                                      "opportunities": {}}
    users = team.get("users", [])
    for person in sorted(users, key=lambda u: u.get("role") != "manager"):
        first, last = _split_name(person["name"])
        values = {"Username": person["email"], "FirstName": first, "LastName": last,
                  "Email": person["email"],
                  "Title": "Sales Manager" if person.get("role") == "manager"
                  else "Account Executive"}
        if person.get("manager") in ids["users"]:
            values["ManagerId"] = ids["users"][person["manager"]]
        ids["users"][person["email"]] = sandbox.create("User", values)
    for deal in deals:
        owner = ids["users"].get(deal.get("owner"), sandbox.admin_user_id)
        account = deal["account"]
        if account not in ids["accounts"]:
            ids["accounts"][account] = sandbox.create("Account", {"Name": account,
                                                                  "OwnerId": owner})
        opp = sandbox.create("Opportunity", {
            "Name": deal["name"], "AccountId": ids["accounts"][account], "OwnerId": owner,
            "StageName": deal["stage"], "Amount": deal.get("amount"),
            "CloseDate": str(deal["close_date"]), "Coachloop_Deal_Key__c": deal["external_id"]})
        ids["opportunities"][deal["external_id"]] = opp
        for position, email in enumerate(deal.get("contacts", [])):
            if email not in ids["contacts"]:
                local = email.split("@")[0].replace(".", " ").title()
                first, last = _split_name(local)
                ids["contacts"][email] = sandbox.create("Contact", {
                    "FirstName": first, "LastName": last, "Email": email,
                    "AccountId": ids["accounts"][account], "OwnerId": owner})
            sandbox.create("OpportunityContactRole", {
                "OpportunityId": opp, "ContactId": ids["contacts"][email],
                "Role": "Decision Maker" if position == 0 else "Influencer",
                "IsPrimary": position == 0})
    return ids
