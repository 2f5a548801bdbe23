"""The Salesforce CRM writer, through simple-salesforce.

simple-salesforce has no OAuth web-server or refresh flow, so it runs in "direct" mode with
the token vault's access token and instance URL; on an expired session we refresh once and
retry. It has no Collections method either: those calls go through `restful()`. Every
Salesforce failure is translated here into the core error types, so `core.errors.classify`
decides what happens next.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from datetime import datetime
from typing import Any

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession

from connectors.base import CallForCrm, CrmWriter, DealMatch, RecordWrite, WriteResult
from connectors.deal_matching import CrmContact, CrmDeal, by_name, match_call, name_key
from core.connections import ConnectionBroken
from core.domain import DealRecord, TeamMember
from core.errors import CoachloopError, ErrorRule, ErrorTable, TransientError
from core.retry import backoff, call_with_retries, retry_after
from mappings import FieldInfo, ObjectInfo

log = logging.getLogger("coachloop.salesforce")

API_VERSION = "60.0"
BATCH = 200  # sObject Collections: at most 200 records per call
LOCK_RETRIES = 4
# 403 REQUEST_LIMIT_EXCEEDED: the daily pool is a rolling 24 h, so wait on the scale of the
# quota window; the long-running-request cap clears in seconds.
DAILY_LIMIT_BACKOFF_S = 3600.0
CONCURRENCY_BACKOFF_S = 30.0
TRANSIENT_RECORD_ERRORS = {"UNABLE_TO_LOCK_ROW"}
# Salesforce's answers, merged over the shared ones (core.errors.ErrorTable).
SALESFORCE_ERRORS = ErrorTable("Salesforce", (
    ErrorRule(code="REQUEST_LIMIT_EXCEEDED", error=TransientError,
              message="Salesforce API limit reached ({message}); retrying later",
              retry_after=DAILY_LIMIT_BACKOFF_S),
    *(ErrorRule(code=code, error=TransientError, message="Salesforce answered {status} ({code})")
      for code in sorted(TRANSIENT_RECORD_ERRORS)),
    ErrorRule(status=range(400, 500), error=CoachloopError,
              message="Salesforce refused the request: {code}: {message}"),
))
CALL_RETRIES = 3
# Schemas change rarely; describing every object on every run would triple a small run's calls.
DESCRIBE_TTL_S = 900.0
_DESCRIBED: dict[tuple[str, str], tuple[float, ObjectInfo | None]] = {}
MAX_INLINE_WAIT_S = 10.0
_API_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
CHECK_TIMEOUT_S = 15.0
OPP_FIELDS = "Id, Name, AccountId, OwnerId, IsClosed, CloseDate, StageName"


def soql_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def soql_in(values: list[str]) -> str:
    return "(" + ", ".join(soql_quote(v) for v in values) + ")"


def _first_error(content: Any) -> tuple[str, str]:
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return (str(first.get("errorCode") or first.get("statusCode") or "ERROR"),
                str(first.get("message", "")))
    return "ERROR", str(content)[:300]


class SalesforceWriter(CrmWriter):
    """Writes to one Salesforce org as the connection's integration user."""

    name = "salesforce"

    def __init__(self, tokens: Any, *, refresh: Any = None, verify: str | bool = True,
                 version: str = API_VERSION, sleep: Any = time.sleep):
        """`tokens` is a TokenSet (access token + instance URL); `refresh(rejected_token)`
        returns a valid one after a 401."""
        self._refresh = refresh
        self._verify = verify
        self._version = version
        self._sleep = sleep
        self.calls = 0  # API requests made, for benchmarks
        self.api_usage: tuple[int, int] | None = None  # (used, daily limit), last seen
        self.call_retries = CALL_RETRIES  # in-place retries of transient failures
        self._retry_after: float | None = None
        self._connect(tokens)

    @classmethod
    def for_connection(cls, connection_id: int, vault: Any, *, verify: str | bool = True,
                       version: str = API_VERSION) -> SalesforceWriter:
        tokens = vault.access_token(connection_id)
        if not tokens.instance_url:
            raise ConnectionBroken("the Salesforce connection has no instance URL; reconnect it")
        writer = cls(tokens, verify=verify, version=version,
                     refresh=lambda rejected: vault.access_token(connection_id, rejected=rejected))
        writer.connection_id = connection_id
        return writer

    def _connect(self, tokens: Any) -> None:
        session = requests.Session()
        # This machine (and many servers) set REQUESTS_CA_BUNDLE, which would override verify.
        session.trust_env = False
        session.verify = self._verify
        session.hooks["response"].append(self._observe)
        self.sf = Salesforce(instance_url=tokens.instance_url, session_id=tokens.access_token,
                             session=session, version=self._version)

    def close(self) -> None:
        self.sf.session.close()

    def _observe(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        self._retry_after = retry_after(response.headers)
        # "Sforce-Limit-Info: api-usage=18/15000": the org's calls in the last 24 hours.
        match = _API_USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        if match:
            self.api_usage = (int(match.group(1)), int(match.group(2)))

    # ---- one place where Salesforce failures become core errors -----------------------------

    def _call(self, fn: Any) -> Any:
        """Run one API call. Every call we make is idempotent (reads, updates by id, upserts
        by external id), so brief outages are retried here; longer ones reach the task."""
        return call_with_retries(lambda: self._call_once(fn), retries=self.call_retries,
                                 base=0.2, cap=MAX_INLINE_WAIT_S,
                                 give_up_after=MAX_INLINE_WAIT_S, sleep=self._sleep)

    def _call_once(self, fn: Any) -> Any:
        refreshed = False
        while True:
            try:
                return fn()
            except SalesforceExpiredSession:
                if refreshed or self._refresh is None:
                    raise ConnectionBroken("Salesforce rejected a freshly refreshed session; "
                                           "reconnect Salesforce") from None
                self._connect(self._refresh(self.sf.session_id))
                refreshed = True  # `fn` reads self.sf again, so it uses the new session
            except SalesforceError as exc:  # refused (403), bad request, server trouble…
                code, message = _first_error(exc.content)
                if code == "REQUEST_LIMIT_EXCEEDED" and "concurren" in message.lower():
                    # The long-running-request cap clears in seconds, the daily pool not.
                    raise TransientError(f"Salesforce API limit reached ({message}); "
                                         "retrying later",
                                         retry_after=CONCURRENCY_BACKOFF_S) from None
                raise SALESFORCE_ERRORS.error(exc.status, code, message,
                                              detail=f"{exc.resource_name}: {code}",
                                              retry_after=self._retry_after) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise TransientError(f"cannot reach Salesforce ({type(exc).__name__})") \
                    from None

    def _query(self, soql: str) -> list[dict]:
        return self._call(lambda: self.sf.query_all(soql))["records"]

    def _restful(self, path: str, method: str = "GET", **kwargs: Any) -> Any:
        return self._call(lambda: self.sf.restful(path, method=method, **kwargs))

    # ---- the CrmWriter contract -------------------------------------------------------------

    def check(self) -> dict:
        """`GET limits/`: raises unless the org answers with this session; returns the limits."""
        return self._restful("limits/", timeout=CHECK_TIMEOUT_S)

    def describe(self, objects: list[str]) -> dict[str, ObjectInfo]:
        out = {}
        for name in dict.fromkeys(objects):
            key = (self.sf.sf_instance, name.lower())
            cached = _DESCRIBED.get(key)
            if cached is None or cached[0] < time.monotonic():
                cached = (time.monotonic() + DESCRIBE_TTL_S, self._describe(name))
                _DESCRIBED[key] = cached
            if cached[1] is not None:
                out[cached[1].name.lower()] = cached[1]
        return out

    def _describe(self, name: str) -> ObjectInfo | None:
        try:
            body = self._restful(f"sobjects/{name}/describe")
        except CoachloopError as exc:
            if "NOT_FOUND" in exc.message or "INVALID_TYPE" in exc.message:
                return None
            raise
        fields = {}
        for f in body["fields"]:
            values = tuple(p["value"] for p in f.get("picklistValues") or ()
                           if p.get("active", True))
            fields[f["name"].lower()] = FieldInfo(
                f["name"], f["type"], f.get("length") or None, bool(f.get("updateable")),
                bool(f.get("createable")), values, bool(f.get("restrictedPicklist")),
                bool(f.get("externalId")))
        return ObjectInfo(body["name"], fields)

    def find_users(self, emails: list[str]) -> dict[str, str]:
        wanted = sorted({e.lower() for e in emails if e})
        found: dict[str, str] = {}
        for chunk in _chunks(wanted, 100):
            for row in self._query(f"SELECT Id, Email FROM User WHERE Email IN {soql_in(chunk)}"
                                   " AND IsActive = true"):
                found.setdefault(row["Email"].lower(), row["Id"])
        return found

    def list_users(self) -> list[TeamMember]:
        return [TeamMember(name=row.get("Name") or row["Email"], email=row["Email"].lower(),
                           manager_email=((row.get("Manager") or {}).get("Email") or "")
                           .lower() or None)
                for row in self._query("SELECT Id, Name, Email, Manager.Email FROM User "
                                       "WHERE IsActive = true ORDER BY Email")
                if row.get("Email")]

    def find_deals(self, calls: list[CallForCrm]) -> dict[int, DealMatch]:
        emails = sorted({e.lower() for call in calls for e in call.buyer_emails})
        contacts: dict[str, list[CrmContact]] = defaultdict(list)
        for chunk in _chunks(emails, 100):
            for row in self._query("SELECT Id, Name, Email, AccountId FROM Contact "
                                   f"WHERE Email IN {soql_in(chunk)}"):
                contacts[row["Email"].lower()].append(_contact(row))
        for meeting_id, found in self._contacts_by_name(calls).items():
            for contact in found:  # a name resolved only for its own call
                contacts[name_key(meeting_id, contact.by_name)].append(contact)
        contact_ids = sorted({c.id for rows in contacts.values() for c in rows})
        account_ids = sorted({c.account_id for rows in contacts.values() for c in rows
                              if c.account_id})
        roles: dict[str, set[str]] = defaultdict(set)  # contact id → opportunity ids
        opps: dict[str, CrmDeal] = {}
        for chunk in _chunks(contact_ids, 100):
            for row in self._query("SELECT OpportunityId, ContactId FROM OpportunityContactRole "
                                   f"WHERE ContactId IN {soql_in(chunk)}"):
                roles[row["ContactId"]].add(row["OpportunityId"])
        role_opp_ids = sorted({o for ids in roles.values() for o in ids})
        for chunk in _chunks(account_ids, 100):
            for row in self._query(f"SELECT {OPP_FIELDS} FROM Opportunity "
                                   f"WHERE AccountId IN {soql_in(chunk)}"):
                opps[row["Id"]] = _deal(row)
        missing = [o for o in role_opp_ids if o not in opps]
        for chunk in _chunks(missing, 100):
            for row in self._query(f"SELECT {OPP_FIELDS} FROM Opportunity WHERE Id IN "
                                   f"{soql_in(chunk)}"):
                opps[row["Id"]] = _deal(row)
        return {call.meeting_id: match_call(call, contacts, roles, opps, "Salesforce",
                                            "opportunity") for call in calls}

    def _contacts_by_name(self, calls: list[CallForCrm]) -> dict[int, list[CrmContact]]:
        """Guests without an e-mail, resolved by name among the accounts the call's rep had
        opportunities open on (`connectors.deal_matching.by_name`)."""
        wanted = [c for c in calls if c.unnamed_buyers and c.rep_email]
        if not wanted:
            return {}
        owners = self.find_users(sorted({c.rep_email for c in wanted}))
        owned: list[CrmDeal] = []
        for chunk in _chunks(sorted(set(owners.values())), 100):
            owned += [_deal(row) for row in self._query(
                f"SELECT {OPP_FIELDS} FROM Opportunity WHERE OwnerId IN {soql_in(chunk)}")]
        in_play = sorted({d.account_id for d in owned if d.account_id})
        names = sorted({n for c in wanted for n in c.unnamed_buyers})
        named: list[CrmContact] = []
        for accounts_chunk in _chunks(in_play, 100):
            for names_chunk in _chunks(names, 100):
                named += [_contact(row) for row in self._query(
                    "SELECT Id, Name, Email, AccountId FROM Contact WHERE "
                    f"Name IN {soql_in(names_chunk)} AND AccountId IN "
                    f"{soql_in(accounts_chunk)}")]
        return by_name(wanted, owners, owned, named)

    def read(self, sobject: str, record_ids: list[str], fields: list[str]
             ) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        columns = ", ".join(dict.fromkeys(["Id", *fields]))
        for chunk in _chunks(sorted(set(record_ids)), 200):
            for row in self._query(f"SELECT {columns} FROM {sobject} WHERE Id IN "
                                   f"{soql_in(chunk)}"):
                out[row["Id"]] = {k: v for k, v in row.items() if k != "attributes"}
        return out

    def write(self, writes: list[RecordWrite]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(writes)
        groups: dict[tuple[str, str | None], list[int]] = defaultdict(list)
        for index, item in enumerate(writes):
            groups[(item.sobject, item.key_field if item.record_id is None else None)].append(index)
        for (sobject, key_field), indexes in groups.items():
            # Rows on one parent go in one batch: fewer UNABLE_TO_LOCK_ROW between batches.
            for chunk in _chunks(indexes, BATCH):
                self._write_batch(sobject, key_field, [writes[i] for i in chunk], chunk, results)
        return [r or WriteResult(False, error="not attempted") for r in results]

    def _write_batch(self, sobject: str, key_field: str | None, batch: list[RecordWrite],
                     positions: list[int], results: list) -> None:
        pending = list(range(len(batch)))
        for attempt in range(LOCK_RETRIES + 1):
            records = []
            for i in pending:
                item = batch[i]
                record = {"attributes": {"type": sobject}, **item.values}
                if key_field:
                    record[key_field] = item.key
                else:
                    record["id"] = item.record_id
                records.append(record)
            body = {"allOrNone": False, "records": records}
            if key_field:
                answer = self._restful(f"composite/sobjects/{sobject}/{key_field}",
                                       method="PATCH", json=body)
            else:
                answer = self._restful("composite/sobjects", method="PATCH", json=body)
            retry = []
            for i, row in zip(pending, answer, strict=True):
                if row.get("success"):
                    results[positions[i]] = WriteResult(True, row.get("id"),
                                                        bool(row.get("created")))
                    continue
                errors = row.get("errors") or [{}]
                code = str(errors[0].get("statusCode", "ERROR"))
                if code in TRANSIENT_RECORD_ERRORS and attempt < LOCK_RETRIES:
                    retry.append(i)
                    continue
                results[positions[i]] = WriteResult(
                    False, row.get("id"), error=f"{code}: {errors[0].get('message', '')}")
            if not retry:
                return
            pending = retry
            self._sleep(backoff(attempt, None, base=0.25, cap=8.0))

    def pull_deals(self, since: datetime | None) -> tuple[list[DealRecord], datetime | None]:
        where = ""
        if since is not None:
            where = f" WHERE LastModifiedDate > {since.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        rows = self._query("SELECT Id, Name, Account.Name, Owner.Email, StageName, Amount, "
                           "CloseDate, IsClosed, IsWon, LastModifiedDate FROM Opportunity"
                           f"{where} ORDER BY LastModifiedDate")
        emails: dict[str, list[str]] = defaultdict(list)
        for chunk in _chunks([r["Id"] for r in rows], 100):
            for role in self._query("SELECT OpportunityId, Contact.Email FROM "
                                    f"OpportunityContactRole WHERE OpportunityId IN "
                                    f"{soql_in(chunk)}"):
                email = (role.get("Contact") or {}).get("Email")
                if email:
                    emails[role["OpportunityId"]].append(email.lower())
        deals, high = [], since
        for row in rows:
            modified = _parse_datetime(row["LastModifiedDate"])
            high = modified if high is None or modified > high else high
            deals.append(DealRecord(
                crm="salesforce", external_id=row["Id"], name=row["Name"],
                account=(row.get("Account") or {}).get("Name"),
                owner_email=((row.get("Owner") or {}).get("Email") or "").lower() or None,
                stage=row.get("StageName"), amount=row.get("Amount"),
                close_date=datetime.fromisoformat(row["CloseDate"]).date()
                if row.get("CloseDate") else None,
                is_closed=bool(row.get("IsClosed")), is_won=bool(row.get("IsWon")),
                contact_emails=tuple(sorted(set(emails[row["Id"]])))))
        return deals, high


def _parse_datetime(value: str) -> datetime:
    value = value.replace("Z", "+00:00")
    if len(value) > 5 and value[-5] in "+-" and value[-3] != ":":
        value = value[:-2] + ":" + value[-2:]  # Salesforce writes +0000
    return datetime.fromisoformat(value)


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _contact(row: dict) -> CrmContact:
    return CrmContact(row["Id"], row.get("Name") or "", row.get("Email"), row.get("AccountId"))


def _deal(row: dict) -> CrmDeal:
    return CrmDeal(row["Id"], row.get("Name") or row["Id"], row.get("AccountId"),
                   bool(row.get("IsClosed")), row.get("CloseDate"), row.get("OwnerId"))
