"""The HubSpot CRM writer, through hubspot-api-client.

Records are written in batches of at most 100 (HubSpot's limit): by id with `batch/update`,
by our key with `batch/upsert` on a unique-value property, so a retry never makes a second
record. A batch HubSpot refuses as a whole (one bad value fails all 100) is split in halves
until the bad record stands alone. Links to deals and contacts are v4 associations, made
after the records exist; creating one again is harmless.

HubSpot's answers are translated here into the core error types (`HUBSPOT_ERRORS`): a 401 is
refreshed once, `TEN_SECONDLY_ROLLING` waits out the burst window, `DAILY` waits for the
next day. The rate-limit headers of every answer feed the write-back quota governor.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict, deque
from datetime import UTC, date, datetime, timedelta
from typing import Any

import urllib3

from connectors.base import CallForCrm, CrmWriter, DealMatch, RecordWrite, WriteResult
from connectors.deal_matching import CrmContact, CrmDeal, by_name, match_call, name_key
from core.connections import ConnectionBroken
from core.domain import DealRecord, TeamMember
from core.errors import CoachloopError, ErrorRule, ErrorTable, NotFound, TransientError
from core.retry import call_with_retries
from mappings import FieldInfo, ObjectInfo

log = logging.getLogger("coachloop.hubspot")

BATCH = 100  # objects and associations: at most 100 inputs per batch call
ASSOCIATION_READS = 1000  # v4 batch read: at most 1,000 ids
SEARCH_PAGE = 200
SEARCH_WINDOW = 10_000  # a search cannot page past this many results
SEARCH_GROUPS = 5  # filter groups per search request
SEARCHES_PER_SECOND = 5
CALL_RETRIES = 3
MAX_INLINE_WAIT_S = 12.0
TIMEOUT_S = 30
BURST_WINDOW_S = 10.0
BUILTIN_OBJECTS = {"contacts": "contacts", "companies": "companies", "deals": "deals",
                   "calls": "calls", "notes": "notes", "meetings": "meetings",
                   "tasks": "tasks", "0-1": "contacts", "0-2": "companies", "0-3": "deals",
                   "0-48": "calls", "0-46": "notes"}
DEAL_PROPERTIES = ["dealname", "amount", "dealstage", "pipeline", "closedate", "hs_is_closed",
                   "hs_is_closed_won", "hubspot_owner_id", "hs_lastmodifieddate"]
HUBSPOT_ERRORS = ErrorTable("HubSpot", (
    ErrorRule(code="MISSING_SCOPES", error=ConnectionBroken,
              message="HubSpot refused: the app was not granted the scopes this needs "
                      "({message}); reconnect HubSpot and approve every scope"),
    ErrorRule(status=range(400, 500), error=CoachloopError,
              message="HubSpot refused the request: {code}: {message}"),
))


def _api_exceptions() -> tuple[type[BaseException], ...]:
    """hubspot-api-client generates one ApiException class per API package."""
    from hubspot.crm.associations.v4.exceptions import ApiException as Associations
    from hubspot.crm.objects.exceptions import ApiException as Objects
    from hubspot.crm.owners.exceptions import ApiException as Owners
    from hubspot.crm.pipelines.exceptions import ApiException as Pipelines
    from hubspot.crm.properties.exceptions import ApiException as Properties
    from hubspot.crm.schemas.exceptions import ApiException as Schemas

    return (Associations, Objects, Owners, Pipelines, Properties, Schemas)


def _until_tomorrow(now: datetime | None = None) -> float:
    now = now or datetime.now(UTC)
    tomorrow = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return (tomorrow - now).total_seconds() + 60


def _body(exc: Any) -> dict:
    try:
        body = json.loads(exc.body or b"{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def to_millis(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def parse_time(value: Any) -> datetime | None:
    """A HubSpot datetime (ISO 8601 or epoch milliseconds) as an aware datetime."""
    if value in (None, ""):
        return None
    text = str(value)
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _field_type(prop: Any) -> str:
    """HubSpot's (type, fieldType) in the neutral words mappings use."""
    kind, field_type = prop.type, prop.field_type
    if kind == "string":
        return "textarea" if field_type in ("textarea", "html") else "string"
    if kind == "enumeration":
        if field_type == "booleancheckbox":
            return "boolean"
        return "multipicklist" if field_type == "checkbox" else "picklist"
    return {"number": "double", "bool": "boolean"}.get(kind, kind)


class HubSpotWriter(CrmWriter):
    """Writes to one HubSpot portal through the connection's OAuth tokens."""

    name = "hubspot"
    associates = True  # links are associations, not fields

    def __init__(self, tokens: Any, *, api_base: str, refresh: Any = None,
                 verify: str | bool = True, sleep: Any = time.sleep):
        self._api_base = api_base.rstrip("/")
        self._refresh = refresh
        self._verify = verify
        self._sleep = sleep
        self.calls = 0  # API requests made, for benchmarks
        self.api_usage: tuple[int, int] | None = None  # (used today, daily limit), last seen
        self.call_retries = CALL_RETRIES
        self.search_page, self.search_window = SEARCH_PAGE, SEARCH_WINDOW
        self._burst: tuple[int, int, float] | None = None  # (remaining, max, window seconds)
        self._searches: deque[float] = deque()  # when our last searches went out
        self._types: dict[str, str] = {}  # object name as mapped (lower) → path object type
        self._owners: list | None = None
        self._connect(tokens)

    @classmethod
    def for_connection(cls, connection_id: int, vault: Any, *, api_base: str,
                       verify: str | bool = True) -> HubSpotWriter:
        writer = cls(vault.access_token(connection_id), api_base=api_base, verify=verify,
                     refresh=lambda rejected: vault.access_token(connection_id,
                                                                 rejected=rejected))
        writer.connection_id = connection_id
        return writer

    def _connect(self, tokens: Any) -> None:
        from hubspot import HubSpot

        self._token = tokens.access_token
        options: dict[str, Any] = {"host": self._api_base}
        if isinstance(self._verify, str):
            options["ssl_ca_cert"] = self._verify
        self.client = HubSpot(access_token=tokens.access_token, **options)
        self._apis: dict[str, Any] = {}

    def _api(self, path: str) -> Any:
        """One generated API (e.g. "crm.objects.batch_api"), built once: each owns its HTTP
        connection pool."""
        api = self._apis.get(path)
        if api is None:
            api = self.client
            for part in path.split("."):
                api = getattr(api, part)
            self._apis[path] = api
        return api

    # ---- one place where HubSpot's answers become core errors ------------------------------

    def _call(self, path: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """One API call; brief outages and the burst limit are retried here (every call we
        make is a read, an update by id, an upsert by key or an association: all
        idempotent), longer ones reach the task."""
        return call_with_retries(lambda: self._call_once(path, method, args, kwargs),
                                 retries=self.call_retries, base=0.5, cap=MAX_INLINE_WAIT_S,
                                 give_up_after=MAX_INLINE_WAIT_S, sleep=self._sleep)

    def _call_once(self, path: str, method: str, args: tuple, kwargs: dict) -> Any:
        refreshed = False
        while True:
            self._pace(searching=method == "do_search")
            api = self._api(path)
            try:
                self.calls += 1
                result = getattr(api, method)(*args, _request_timeout=TIMEOUT_S, **kwargs)
            except _api_exceptions() as exc:
                self._observe(exc.headers or {})
                if exc.status == 401:
                    if refreshed or self._refresh is None:
                        raise ConnectionBroken("HubSpot rejected a freshly refreshed token; "
                                               "reconnect HubSpot") from None
                    self._connect(self._refresh(self._token))
                    refreshed = True
                    continue
                raise self._error(exc) from None
            except urllib3.exceptions.HTTPError as exc:
                raise TransientError(f"cannot reach HubSpot ({type(exc).__name__})") from None
            last = api.api_client.last_response
            if last is not None:
                self._observe(last.getheaders())
            return result

    def _error(self, exc: Any) -> CoachloopError:
        body = _body(exc)
        message = str(body.get("message") or exc.reason or "")[:300]
        detail = f"HubSpot {exc.status} {body.get('category')} {body.get('correlationId')}"
        if exc.status == 429:
            if body.get("policyName") == "DAILY":
                return TransientError("HubSpot's daily API limit for this portal is used up; "
                                      "write-back resumes tomorrow", retry_after=_until_tomorrow(),
                                      detail=detail)
            if body.get("policyName") == "SECONDLY":  # search: 5 requests a second
                return TransientError("HubSpot's search rate limit was reached; trying again "
                                      "in a second", retry_after=1.0, detail=detail)
            window = (self._burst[2] if self._burst else BURST_WINDOW_S)
            return TransientError("HubSpot's burst limit was reached; trying again shortly",
                                  retry_after=window, detail=detail)
        return HUBSPOT_ERRORS.error(exc.status, body.get("category"), message, detail=detail)

    def _observe(self, headers: Any) -> None:
        """X-HubSpot-RateLimit-*: the portal's calls today, and what is left of the app's
        burst window (search answers carry none)."""
        lower = {k.lower(): v for k, v in dict(headers).items()}
        try:
            daily = int(lower["x-hubspot-ratelimit-daily"])
            left = int(lower["x-hubspot-ratelimit-daily-remaining"])
            self.api_usage = (daily - left, daily)
        except (KeyError, ValueError):
            pass
        try:
            self._burst = (int(lower["x-hubspot-ratelimit-remaining"]),
                           int(lower["x-hubspot-ratelimit-max"]),
                           int(lower["x-hubspot-ratelimit-interval-milliseconds"]) / 1000)
        except (KeyError, ValueError):
            pass

    def _pace(self, searching: bool) -> None:
        """With the burst window spent, wait one share of it rather than collect a 429
        (HubSpot asks apps to keep errors under 5% of their calls); searches, which carry no
        rate-limit headers, keep to HubSpot's 5 a second by our own count."""
        if searching:
            now = time.monotonic()
            while self._searches and now - self._searches[0] >= 1.0:
                self._searches.popleft()
            if len(self._searches) >= SEARCHES_PER_SECOND:
                self._sleep(max(0.0, 1.0 - (now - self._searches[0])) + 0.05)
                self._searches.popleft()
            self._searches.append(time.monotonic())
        if self._burst and self._burst[0] <= 0:
            _, most, window = self._burst
            self._sleep(window / max(most, 1) * 2)
            self._burst = (1, most, window)

    def skill_scores_as(self) -> str:
        from connectors.hubspot.portal import DEAL_PROPERTIES, skill_target

        mode = skill_target(self.connection_id).mode
        return "deal_properties" if mode == DEAL_PROPERTIES else "object"

    # ---- object types -----------------------------------------------------------------------

    def object_type(self, name: str) -> str:
        """The path type of an object as a mapping names it: a built-in name, or a custom
        object's schema name resolved to its objectTypeId."""
        key = name.lower()
        if key in BUILTIN_OBJECTS:
            return BUILTIN_OBJECTS[key]
        if key not in self._types:
            for schema in self.custom_schemas():
                self._types[schema.name.lower()] = schema.object_type_id
                self._types[schema.fully_qualified_name.lower()] = schema.object_type_id
        if key not in self._types:
            raise NotFound(f"HubSpot has no object {name!r} in this portal")
        return self._types[key]

    def custom_schemas(self) -> list:
        """The portal's custom object schemas; none where the portal has no custom objects
        (below Enterprise) or the app was not granted the custom-object scopes."""
        try:
            return list(self._call("crm.schemas.core_api", "get_all").results or [])
        except (ConnectionBroken, CoachloopError) as exc:
            if isinstance(exc, TransientError):
                raise
            log.info("no custom objects: %s", exc.message)
            return []

    # ---- the CrmWriter contract -------------------------------------------------------------

    def check(self) -> dict:
        """One cheap call (`GET /crm/v3/owners?limit=1`); raises unless the portal answers
        with this token. Returns what the rate-limit headers said."""
        self._call("crm.owners.owners_api", "get_page", limit=1)
        used, limit = self.api_usage or (None, None)
        return {"daily_used": used, "daily_limit": limit}

    def describe(self, objects: list[str]) -> dict[str, ObjectInfo]:
        out = {}
        for name in dict.fromkeys(objects):
            try:
                object_type = self.object_type(name)
                props = self._call("crm.properties.core_api", "get_all", object_type).results
            except NotFound:
                continue
            fields = {}
            for p in props:
                meta = p.modification_metadata
                writable = not (p.calculated or (meta is not None and meta.read_only_value))
                kind = _field_type(p)
                fields[p.name.lower()] = FieldInfo(
                    p.name, kind, 65536 if kind in ("string", "textarea") else None, writable,
                    writable, tuple(o.value for o in p.options or () if not o.hidden),
                    kind in ("picklist", "multipicklist"), bool(p.has_unique_value))
            out[name.lower()] = ObjectInfo(name, fields)
        return out

    def _owner_list(self) -> list:
        """Every active owner (HubSpot's users, as records name them), paged once per
        writer: deal matching, skill rows and the roster all read it."""
        if self._owners is None:
            found, after = [], None
            while True:
                page = self._call("crm.owners.owners_api", "get_page", limit=500,
                                  archived=False, **({"after": after} if after else {}))
                found += [owner for owner in page.results or () if owner.email]
                after = page.paging.next.after if page.paging and page.paging.next else None
                if not after:
                    break
            self._owners = found
        return self._owners

    def owners(self) -> dict[str, str]:
        """Active owners' ids by lower-cased e-mail."""
        found: dict[str, str] = {}
        for owner in self._owner_list():
            found.setdefault(owner.email.lower(), str(owner.id))
        return found

    def find_users(self, emails: list[str]) -> dict[str, str]:
        owners = self.owners()
        return {e.lower(): owners[e.lower()] for e in emails if e and e.lower() in owners}

    def list_users(self) -> list[TeamMember]:
        names = {owner.email.lower(): " ".join(p for p in (owner.first_name, owner.last_name)
                                               if p) or owner.email
                 for owner in self._owner_list()}
        return [TeamMember(name=name, email=email, manager_email=None)
                for email, name in sorted(names.items())]

    def search(self, object_type: str, groups: list[list[dict]], properties: list[str], *,
               sort: str | None = None) -> list[Any]:
        """Every result of one search (OR of the filter groups), paged to the end; a query
        that reaches HubSpot's 10,000-result window is continued from the last value of
        `sort` (a datetime property), which searches that may be that large need."""
        out: dict[str, Any] = {}
        floor: str | None = None
        while True:
            extra = [{"propertyName": sort, "operator": "GTE", "value": floor}] \
                if floor is not None else []
            request: dict[str, Any] = {
                "filterGroups": [{"filters": g + extra} for g in (groups or [[]])]
                if groups or extra else [], "properties": properties,
                "limit": self.search_page}
            if sort:
                request["sorts"] = [{"propertyName": sort, "direction": "ASCENDING"}]
            seen = 0
            after: str | None = None
            last = None
            while True:
                if after:
                    request["after"] = after
                page = self._call("crm.objects.search_api", "do_search", object_type,
                                  request)
                for row in page.results or ():
                    out[row.id] = row
                    last = row
                seen += len(page.results or ())
                after = page.paging.next.after if page.paging and page.paging.next else None
                if not after or seen + self.search_page > self.search_window:
                    break
            if not after:
                return list(out.values())
            if sort is None:
                raise CoachloopError(f"a HubSpot search of {object_type} has more than "
                                     f"{self.search_window:,} results and no order to "
                                     "continue by")
            value = (last.properties or {}).get(sort) if last is not None else None
            if value is None or value == floor:
                raise CoachloopError(f"more than {self.search_window:,} HubSpot {object_type} "
                                     f"share one {sort}; the search cannot continue past them")
            floor = str(to_millis(parse_time(value)))

    def _associated(self, from_type: str, to_type: str, ids: list[str]) -> dict[str, list[str]]:
        """The ids each record is associated with (v4 batch read, 1,000 ids a call)."""
        out: dict[str, list[str]] = defaultdict(list)
        for chunk in _chunks(sorted(set(ids)), ASSOCIATION_READS):
            answer = self._call("crm.associations.v4.batch_api", "get_page", from_type, to_type,
                                {"inputs": [{"id": i} for i in chunk]})
            for row in answer.results or ():
                out[str(row._from.id)] += [str(t.to_object_id) for t in row.to or ()]
        return out

    def _read_objects(self, object_type: str, ids: list[str], properties: list[str]
                      ) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(sorted(set(ids)), BATCH):
            answer = self._call("crm.objects.batch_api", "read", object_type,
                                {"inputs": [{"id": i} for i in chunk],
                                 "properties": properties})
            for row in answer.results or ():
                out[str(row.id)] = dict(row.properties or {})
        return out

    def _deals(self, ids: list[str], account_of: dict[str, str]) -> dict[str, CrmDeal]:
        rows = self._read_objects("deals", ids, DEAL_PROPERTIES)
        missing = [i for i in rows if i not in account_of]
        for deal_id, companies in self._associated("deals", "companies", missing).items():
            if companies:
                account_of[deal_id] = companies[0]
        return {i: _deal(i, row, account_of.get(i)) for i, row in rows.items()}

    def _contacts(self, groups: list[list[dict]]) -> list[CrmContact]:
        rows = []
        for chunk in _chunks(groups, SEARCH_GROUPS):
            rows += self.search("contacts", chunk, ["email", "firstname", "lastname"])
        companies = self._associated("contacts", "companies", [r.id for r in rows])
        return [CrmContact(str(r.id), _full_name(r.properties or {}),
                           (r.properties or {}).get("email"),
                           (companies.get(str(r.id)) or [None])[0]) for r in rows]

    def find_deals(self, calls: list[CallForCrm]) -> dict[int, DealMatch]:
        emails = sorted({e.lower() for call in calls for e in call.buyer_emails})
        contacts: dict[str, list[CrmContact]] = defaultdict(list)
        for contact in self._contacts([[{"propertyName": "email", "operator": "IN",
                                         "values": chunk}] for chunk in _chunks(emails, 100)]):
            if contact.email:
                contacts[contact.email.lower()].append(contact)
        for meeting_id, found in self._contacts_by_name(calls).items():
            for contact in found:
                contacts[name_key(meeting_id, contact.by_name)].append(contact)
        everyone = {c.id: c for rows in contacts.values() for c in rows}
        roles = {k: set(v) for k, v in self._associated("contacts", "deals",
                                                        list(everyone)).items()}
        accounts = sorted({c.account_id for c in everyone.values() if c.account_id})
        account_of = {d: company for company, deals in self._associated(
            "companies", "deals", accounts).items() for d in deals}
        deal_ids = set(account_of) | {d for ids in roles.values() for d in ids}
        deals = self._deals(sorted(deal_ids), account_of)
        return {call.meeting_id: match_call(call, contacts, roles, deals, "HubSpot")
                for call in calls}

    def _contacts_by_name(self, calls: list[CallForCrm]) -> dict[int, list[CrmContact]]:
        wanted = [c for c in calls if c.unnamed_buyers and c.rep_email]
        if not wanted:
            return {}
        owners = self.find_users(sorted({c.rep_email for c in wanted}))
        if not owners:
            return {}
        rows = []
        for chunk in _chunks(sorted(set(owners.values())), 100):
            rows += self.search("deals", [[{"propertyName": "hubspot_owner_id",
                                            "operator": "IN", "values": chunk}]],
                                DEAL_PROPERTIES, sort="hs_lastmodifieddate")
        companies = self._associated("deals", "companies", [r.id for r in rows])
        owned = [_deal(str(r.id), r.properties or {}, (companies.get(str(r.id)) or [None])[0])
                 for r in rows]
        groups = []
        for name in sorted({n for c in wanted for n in c.unnamed_buyers}):
            first, _, last = name.strip().partition(" ")
            group = [{"propertyName": "firstname", "operator": "EQ", "value": first}]
            if last:
                group.append({"propertyName": "lastname", "operator": "EQ", "value": last})
            groups.append(group)
        return by_name(wanted, owners, owned, self._contacts(groups))

    def read(self, sobject: str, record_ids: list[str], fields: list[str]
             ) -> dict[str, dict[str, Any]]:
        return self._read_objects(self.object_type(sobject), record_ids, fields)

    def write(self, writes: list[RecordWrite]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(writes)
        groups: dict[tuple[str, str | None], dict[str, list[int]]] = defaultdict(dict)
        for index, item in enumerate(writes):
            key_field = item.key_field if item.record_id is None else None
            ref = item.key if key_field else item.record_id
            groups[(item.sobject, key_field)].setdefault(ref, []).append(index)
        for (sobject, key_field), by_ref in groups.items():
            object_type = self.object_type(sobject)
            # One record twice in a batch is refused: its writes go as one, later values
            # over earlier ones, and share its result.
            merged = [RecordWrite(sobject, {k: v for i in indexes for k, v in
                                            writes[i].values.items()},
                                  writes[indexes[0]].record_id, key_field, ref)
                      for ref, indexes in by_ref.items()]
            outcome: list[WriteResult | None] = [None] * len(merged)
            for chunk in _chunks(list(range(len(merged))), BATCH):
                self._write_batch(object_type, key_field, chunk, merged, outcome)
            for result, indexes in zip(outcome, by_ref.values(), strict=True):
                for i in indexes:
                    results[i] = result
        self._associate(writes, results)
        return [r or WriteResult(False, error="not attempted") for r in results]

    def _write_batch(self, object_type: str, key_field: str | None, positions: list[int],
                     writes: list[RecordWrite], results: list) -> None:
        batch = [writes[i] for i in positions]
        try:
            if key_field:
                # The key among the properties too: HubSpot echoes the properties it was
                # sent, which is how a result is matched to its input (order is not kept).
                answer = self._call("crm.objects.batch_api", "upsert", object_type, {"inputs": [
                    {"idProperty": key_field, "id": w.key,
                     "properties": _strings({**w.values, key_field: w.key})} for w in batch]})
            else:
                answer = self._call("crm.objects.batch_api", "update", object_type, {"inputs": [
                    {"id": w.record_id, "properties": _strings(w.values)} for w in batch]})
        except TransientError:
            raise
        except CoachloopError as exc:
            if len(positions) > 1:  # refused as a whole: find the record at fault
                half = len(positions) // 2
                self._write_batch(object_type, key_field, positions[:half], writes, results)
                self._write_batch(object_type, key_field, positions[half:], writes, results)
                return
            results[positions[0]] = WriteResult(False, batch[0].record_id, error=exc.message)
            return
        by_ref: dict[str, Any] = {}
        for row in answer.results or ():
            ref = (row.properties or {}).get(key_field) if key_field else str(row.id)
            if ref is not None:
                by_ref[str(ref)] = row
        for position, item in zip(positions, batch, strict=True):
            row = by_ref.get(item.key if key_field else item.record_id)
            if row is None and len(batch) == 1 and answer.results:
                row = answer.results[0]
            if row is None:
                errors = "; ".join(f"{e.category}: {e.message}"
                                   for e in getattr(answer, "errors", None) or ())
                results[position] = WriteResult(False, item.record_id,
                                                error=errors or "HubSpot returned no result")
            else:
                results[position] = WriteResult(True, str(row.id),
                                                bool(getattr(row, "new", False)))

    def _associate(self, writes: list[RecordWrite], results: list) -> None:
        """The written records' links (default association types, both directions)."""
        pending: dict[tuple[str, str], list[tuple[int, str, str]]] = defaultdict(list)
        for index, (item, result) in enumerate(zip(writes, results, strict=True)):
            if result is None or not result.ok:
                continue
            for to_object, to_id in item.links:
                pending[(self.object_type(item.sobject), self.object_type(to_object))].append(
                    (index, result.record_id, to_id))
        for (from_type, to_type), links in pending.items():
            for chunk in _chunks(links, BATCH):
                try:
                    self._call("crm.associations.v4.batch_api", "create_default", from_type,
                               to_type, {"inputs": [{"from": {"id": f}, "to": {"id": t}}
                                                    for _, f, t in chunk]})
                except TransientError:
                    raise
                except CoachloopError as exc:
                    for index, record_id, _ in chunk:
                        results[index] = WriteResult(
                            False, record_id, error=f"written, but not linked to its "
                            f"{to_type}: {exc.message}")

    def stage_labels(self) -> dict[str, tuple[str, bool, bool]]:
        """Deal stage id → (label, closed, won), over every pipeline."""
        out = {}
        for pipeline in self._call("crm.pipelines.pipelines_api", "get_all", "deals").results:
            for stage in pipeline.stages or ():
                meta = stage.metadata or {}
                closed = str(meta.get("isClosed", "")).lower() == "true"
                won = closed and float(meta.get("probability") or 0) >= 1.0
                out[stage.id] = (stage.label, closed, won)
        return out

    def pull_deals(self, since: datetime | None) -> tuple[list[DealRecord], datetime | None]:
        """Deals changed since `since` through the CRM search API, oldest change first,
        continued past the 10,000-result window from the last change seen."""
        groups = [[{"propertyName": "hs_lastmodifieddate", "operator": "GTE",
                    "value": str(to_millis(since))}]] if since else []
        rows = self.search("deals", groups, DEAL_PROPERTIES, sort="hs_lastmodifieddate")
        ids = [str(r.id) for r in rows]
        companies = self._associated("deals", "companies", ids)
        contacts = self._associated("deals", "contacts", ids)
        names = {i: p.get("name") for i, p in self._read_objects(
            "companies", [c for cs in companies.values() for c in cs[:1]], ["name"]).items()}
        emails = {i: (p.get("email") or "").lower() for i, p in self._read_objects(
            "contacts", [c for cs in contacts.values() for c in cs], ["email"]).items()}
        owner_email = {owner_id: email for email, owner_id in self.owners().items()}
        stages = self.stage_labels()
        deals, high = [], since
        for row in rows:
            p = row.properties or {}
            modified = parse_time(p.get("hs_lastmodifieddate")) or parse_time(row.updated_at)
            if modified is not None and (high is None or modified > high):
                high = modified
            label, closed, won = stages.get(p.get("dealstage") or "", (p.get("dealstage"),
                                                                      None, None))
            close = parse_time(p.get("closedate"))
            deal_id = str(row.id)
            deals.append(DealRecord(
                crm="hubspot", external_id=deal_id, name=p.get("dealname") or deal_id,
                account=names.get((companies.get(deal_id) or [None])[0]),
                owner_email=owner_email.get(p.get("hubspot_owner_id") or ""),
                stage=label, amount=float(p["amount"]) if p.get("amount") else None,
                close_date=close.date() if close else None,
                is_closed=_true(p.get("hs_is_closed")) if p.get("hs_is_closed") else bool(closed),
                is_won=_true(p.get("hs_is_closed_won")) if p.get("hs_is_closed_won")
                else bool(won),
                contact_emails=tuple(sorted({emails[c] for c in contacts.get(deal_id, ())
                                             if emails.get(c)}))))
        return deals, high

    def close(self) -> None:
        for api in self._apis.values():
            try:
                api.api_client.rest_client.pool_manager.clear()
            except AttributeError:
                pass


def _true(value: Any) -> bool:
    return str(value).lower() == "true"


def _full_name(properties: dict) -> str:
    return " ".join(p for p in (properties.get("firstname"), properties.get("lastname")) if p)


def _deal(deal_id: str, p: dict, account_id: str | None) -> CrmDeal:
    close = parse_time(p.get("closedate"))
    return CrmDeal(deal_id, p.get("dealname") or deal_id, account_id, _true(p.get("hs_is_closed")),
                   close.date().isoformat() if close else None, p.get("hubspot_owner_id"))


def _strings(values: dict[str, Any]) -> dict[str, str]:
    """HubSpot takes every property value as a string; a date as YYYY-MM-DD."""
    out = {}
    for name, value in values.items():
        if value is None:
            out[name] = ""
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, datetime):
            out[name] = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        elif isinstance(value, date):
            out[name] = value.isoformat()
        elif isinstance(value, float) and value.is_integer():
            out[name] = str(int(value))
        else:
            out[name] = str(value)
    return out


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]
