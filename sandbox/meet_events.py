"""Google Workspace Events (subscriptions to Meet spaces and users) and the Pub/Sub push
delivery behind them, for the Meet + Workspace emulator (`sandbox.meet`).

`WorkspaceEvents` is a part of `MeetSandbox`: it keeps its state on the sandbox, under the
sandbox's lock and clock. Meet activity seeded with `add_conference` becomes a timeline of
happenings (conference started/ended, participant joined/left, recording and transcript files
generated); each happening is published, as a CloudEvent in a Pub/Sub message, to the topic of
every ACTIVE subscription covering it once the emulator's clock has passed it. Messages wait
in their topic until `deliver_events()` pushes them to the endpoint `configure_push` set, with
an OIDC token as Pub/Sub signs it; a failed push leaves the message for the next call, under
the same messageId.
"""

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sandbox.meet_oauth import GOOGLE_ISSUER, Person
from sandbox.meet_wire import (
    Comparison,
    GoogleError,
    b64url,
    comparisons,
    error_info,
    evaluate,
    invalid_argument,
    make_page_token,
    page_size,
    parse_duration,
    parse_filter,
    parse_rfc3339,
    proto_time,
    read_page_token,
    scope_of,
)

MEET_EVENT_TYPES = ("google.workspace.meet.conference.v2.started",
                    "google.workspace.meet.conference.v2.ended",
                    "google.workspace.meet.participant.v2.joined",
                    "google.workspace.meet.participant.v2.left",
                    "google.workspace.meet.recording.v2.fileGenerated",
                    "google.workspace.meet.transcript.v2.fileGenerated")
LIFECYCLE_EVENT_TYPES = {
    "expirationReminder": "google.workspace.events.subscription.v1.expirationReminder",
    "suspended": "google.workspace.events.subscription.v1.suspended",
    "expired": "google.workspace.events.subscription.v1.expired"}
SUSPENSION_REASONS = ("USER_SCOPE_REVOKED", "APP_SCOPE_REVOKED", "RESOURCE_DELETED",
                      "USER_AUTHORIZATION_FAILURE", "APP_AUTHORIZATION_FAILURE",
                      "ENDPOINT_PERMISSION_DENIED", "ENDPOINT_NOT_FOUND",
                      "ENDPOINT_RESOURCE_EXHAUSTED", "OTHER")
MEET_SCOPES = ("https://www.googleapis.com/auth/meetings.space.readonly",
               "https://www.googleapis.com/auth/meetings.space.created")
# Without resource data in the payload (Meet never includes it) a subscription lives at most
# 7 days (google.apps.events.subscriptions.v1 Subscription.expiration).
MAX_TTL = timedelta(days=7)
REMINDERS = (timedelta(hours=12), timedelta(hours=1))
LIST_PAGE, LIST_MAX_PAGE = 50, 100
TYPE_PREFIX = "type.googleapis.com/google.apps.events.subscriptions.v1."
PUSH_SUCCESS = (102, 200, 201, 202, 204)     # what Pub/Sub push takes as an ack
PUSH_TIMEOUT_S = 10.0                        # the default acknowledgement deadline
PUSH_USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"
SPACE_TARGET = re.compile(r"^//meet\.googleapis\.com/spaces/([^/]+)$")
USER_TARGET = re.compile(r"^//cloudidentity\.googleapis\.com/users/([^/]+)$")
TOPIC = re.compile(r"^projects/[a-z][a-z0-9\-]{4,28}[a-z0-9]/topics/[A-Za-z][\w\-.~+%]{2,254}$")


@dataclass
class Subscription:
    id: str
    uid: str
    target: str
    event_types: list
    topic: str
    payload_options: dict | None
    person: Person
    via_delegation: bool
    created: datetime
    updated: datetime
    expires: datetime
    state: str = "ACTIVE"
    reason: str | None = None
    reminded: set = field(default_factory=set)     # reminder offsets already sent

    @property
    def name(self) -> str:
        return f"subscriptions/{self.id}"


@dataclass
class Happening:
    """Something Meet does at `when` that subscriptions may hear about."""

    when: datetime
    seeded: datetime
    event_type: str
    data_key: str                 # "conferenceRecord" | "participantSession" | ...
    resource: str                 # its resource name
    space_id: str
    organizer_id: str
    done: bool = False


@dataclass
class Message:
    """A Pub/Sub message waiting in its topic."""

    id: str
    topic: str
    attributes: dict
    data: bytes
    published: datetime


@dataclass(frozen=True)
class PushConfig:
    endpoint: str
    audience: str
    email: str
    subscription: str


def _ssl_verify(verify):
    if isinstance(verify, (str, Path)):
        import ssl

        return ssl.create_default_context(cafile=str(verify))
    return verify


class WorkspaceEvents:
    """The workspaceevents.googleapis.com and Pub/Sub part of `MeetSandbox`."""

    def _init_events(self) -> None:
        self._subscriptions: dict[str, Subscription] = {}
        self._operations: dict[str, dict] = {}
        self._timeline: list[Happening] = []
        self._messages: list[Message] = []
        self._push: dict[str, PushConfig] = {}
        self._sequence = 0
        self.push_log: list[tuple[str, dict, int]] = []

    # ------------------------------------------------------------------ public

    def configure_push(self, topic: str, endpoint: str, *, audience: str | None = None,
                       service_account_email: str | None = None,
                       subscription: str = "coachloop-push") -> None:
        """A push subscription on `topic` ("projects/{p}/topics/{t}") delivering to
        `endpoint` (HTTPS, as Pub/Sub requires) with an OIDC token for `audience` (default:
        the endpoint) minted for
        `service_account_email` (default coachloop-push@{project}.iam.gserviceaccount.com)."""
        if not TOPIC.match(topic):
            raise ValueError(f"topic must read projects/{{project}}/topics/{{topic}}: {topic!r}")
        if not endpoint.lower().startswith("https://"):
            raise ValueError(f"Pub/Sub pushes to HTTPS endpoints only: {endpoint!r}")
        email = service_account_email or \
            f"coachloop-push@{self.project_id}.iam.gserviceaccount.com"
        with self._lock:
            self._push[topic] = PushConfig(endpoint, audience or endpoint, email,
                                           f"projects/{self.project_id}/subscriptions/"
                                           f"{subscription}")

    def deliver_events(self) -> list[tuple[int, str]]:
        """Publish what is due (Meet happenings the clock has passed, lifecycle events),
        then POST every message waiting in a topic with a push configuration. Returns
        (status, messageId) per push (status 0: no connection). A message that was not
        acknowledged with a 2xx stays for the next call, under the same messageId."""
        import httpx

        with self._lock:
            self._tick_events()
            due = [(m, self._push[m.topic]) for m in self._messages if m.topic in self._push]
        results: list[tuple[int, str]] = []
        if not due:
            return results
        with httpx.Client(verify=_ssl_verify(self.receiver_ca), timeout=PUSH_TIMEOUT_S) \
                as client:
            for message, config in due:
                published = proto_time(message.published)
                body = {"message": {"attributes": message.attributes,
                                    "data": base64.b64encode(message.data).decode(),
                                    "messageId": message.id, "message_id": message.id,
                                    "publishTime": published, "publish_time": published},
                        "subscription": config.subscription}
                token = self._push_jwt(config.audience, config.email)
                try:
                    reply = client.post(config.endpoint, content=json.dumps(body).encode(),
                                        headers={"content-type": "application/json",
                                                 "authorization": f"Bearer {token}",
                                                 "user-agent": PUSH_USER_AGENT})
                    status = reply.status_code
                except httpx.HTTPError:
                    status = 0
                with self._lock:
                    self.push_log.append((config.endpoint, body, status))
                    if status in PUSH_SUCCESS and message in self._messages:
                        self._messages.remove(message)
                results.append((status, message.id))
        return results

    def pending_events(self) -> int:
        """How many Pub/Sub messages wait to be pushed (after publishing what is due)."""
        with self._lock:
            self._tick_events()
            return len(self._messages)

    def published_events(self) -> list[dict]:
        """The waiting messages as CloudEvents (attributes and decoded data), oldest first:
        what a pull subscriber would read (no side effects on them)."""
        with self._lock:
            return [{"messageId": m.id, "topic": m.topic, "attributes": dict(m.attributes),
                     "data": json.loads(m.data)} for m in self._messages]

    def subscriptions(self) -> list[dict]:
        """Every subscription not yet deleted, as the API shows it."""
        with self._lock:
            return [self._subscription_json(s) for s in self._subscriptions.values()]

    def lifecycle_event(self, subscription_name: str, kind: str, *,
                        reason: str = "USER_AUTHORIZATION_FAILURE") -> str:
        """Google sends a lifecycle event now: "expirationReminder", "suspended" (the
        subscription turns SUSPENDED with `reason`: nothing is published to it until it is
        reactivated) or "expired" (it is deleted). Returns the message id."""
        if kind not in LIFECYCLE_EVENT_TYPES:
            raise ValueError(f"kind is one of {sorted(LIFECYCLE_EVENT_TYPES)}")
        if reason not in SUSPENSION_REASONS:
            raise ValueError(f"reason is one of {SUSPENSION_REASONS}")
        sub_id = subscription_name.removeprefix("subscriptions/")
        with self._lock:
            self._tick_events()
            sub = self._subscriptions.get(sub_id)
            if sub is None:
                raise KeyError(subscription_name)
            if kind == "suspended":
                sub.state, sub.reason, sub.updated = "SUSPENDED", reason, self.now()
            elif kind == "expired":
                sub.state = "DELETED"
                del self._subscriptions[sub_id]
            return self._publish_lifecycle(sub, kind).id

    def push_token(self, audience: str, *, email: str | None = None, expired: bool = False,
                   issuer: str = GOOGLE_ISSUER, foreign_key: bool = False) -> str:
        """An OIDC token as Pub/Sub push sends, for tests to forge bad ones: `expired`, a
        foreign `issuer`, or `foreign_key` (signed by a key the JWKS does not hold, under a
        `kid` it does)."""
        from sandbox.meet_wire import new_signing_key

        email = email or f"coachloop-push@{self.project_id}.iam.gserviceaccount.com"
        now = int(self.wall_clock()) - (7200 if expired else 0)
        claims = self._push_claims(audience, email, now)
        claims["iss"] = issuer
        key = self._signing_key()
        if foreign_key:
            return new_signing_key().sign(claims, kid=key.kid)
        return key.sign(claims)

    # -------------------------------------------------------------- internals

    def _push_claims(self, audience: str, email: str, now: int) -> dict:
        import hashlib

        unique_id = "1" + str(int(hashlib.sha256(email.encode()).hexdigest(), 16))[:20]
        return {"aud": audience, "azp": unique_id, "email": email, "email_verified": True,
                "exp": now + 3600, "iat": now, "iss": GOOGLE_ISSUER, "sub": unique_id}

    def _push_jwt(self, audience: str, email: str) -> str:
        return self._signing_key().sign(self._push_claims(audience, email,
                                                          int(self.wall_clock())))

    def _next_id(self, width: int = 16) -> str:
        self._sequence += 1
        if self.stable_ids:
            return str(10 ** (width - 1) + self._sequence * 7919)
        import secrets

        return str(10 ** (width - 1) + secrets.randbelow(9 * 10 ** (width - 1)))

    def _publish(self, sub: Subscription, event_type: str, data: dict, subject: str,
                 when: datetime) -> Message:
        import uuid

        event_id = str(uuid.UUID(int=int(self._next_id(30)) % (1 << 128), version=4)) \
            if self.stable_ids else str(uuid.uuid4())
        attributes = {"ce-datacontenttype": "application/json", "ce-id": event_id,
                      "ce-source": f"//workspaceevents.googleapis.com/{sub.name}",
                      "ce-specversion": "1.0", "ce-subject": subject,
                      "ce-time": proto_time(when), "ce-type": event_type}
        message = Message(self._next_id(), sub.topic, attributes,
                          json.dumps(data, separators=(",", ":")).encode(), self.now())
        self._messages.append(message)
        return message

    def _publish_lifecycle(self, sub: Subscription, kind: str) -> Message:
        return self._publish(sub, LIFECYCLE_EVENT_TYPES[kind],
                             {"subscription": self._subscription_json(sub)},
                             f"//workspaceevents.googleapis.com/{sub.name}", self.now())

    def _schedule(self, happenings: list[Happening]) -> None:
        self._timeline.extend(happenings)
        self._timeline.sort(key=lambda h: h.when)

    def _covers(self, sub: Subscription, happening: Happening) -> bool:
        if sub.state != "ACTIVE" or happening.event_type not in sub.event_types:
            return False
        if sub.created > max(happening.when, happening.seeded):
            return False       # subscribed after it happened
        return sub.target in (f"//meet.googleapis.com/spaces/{happening.space_id}",
                              f"//cloudidentity.googleapis.com/users/{happening.organizer_id}")

    def _tick_events(self) -> None:
        """Publish the happenings the clock has passed, the expiration reminders due, and
        delete (with an `expired` event) what has expired. Call under the lock."""
        now = self.now()
        for happening in self._timeline:
            if happening.when > now:
                break
            if happening.done:
                continue
            happening.done = True
            for sub in list(self._subscriptions.values()):
                if self._covers(sub, happening):
                    self._publish(sub, happening.event_type,
                                  {happening.data_key: {"name": happening.resource}},
                                  sub.target, happening.when)
        self._timeline = [h for h in self._timeline if not h.done]
        for sub in list(self._subscriptions.values()):
            if sub.expires <= now:
                sub.state = "DELETED"
                del self._subscriptions[sub.id]
                self._publish_lifecycle(sub, "expired")
                continue
            for before in REMINDERS:
                moment = sub.expires - before
                if sub.state == "ACTIVE" and before not in sub.reminded \
                        and moment <= now and moment >= sub.updated:
                    sub.reminded.add(before)
                    self._publish_lifecycle(sub, "expirationReminder")

    def _consent_revoked(self, person: Person) -> None:
        with self._lock:
            for sub in self._subscriptions.values():
                if sub.person is person and not sub.via_delegation and sub.state == "ACTIVE":
                    sub.state, sub.reason, sub.updated = "SUSPENDED", "USER_SCOPE_REVOKED", \
                        self.now()
                    self._publish_lifecycle(sub, "suspended")

    def _subscription_json(self, sub: Subscription) -> dict:
        import hashlib

        body = {"name": sub.name, "uid": sub.uid, "targetResource": sub.target,
                "eventTypes": list(sub.event_types)}
        if sub.payload_options:
            body["payloadOptions"] = dict(sub.payload_options)
        body["notificationEndpoint"] = {"pubsubTopic": sub.topic}
        body["state"] = sub.state
        if sub.reason and sub.state == "SUSPENDED":
            body["suspensionReason"] = sub.reason
        body["authority"] = body["userAuthority"] = f"users/{sub.person.id}"
        body["createTime"] = proto_time(sub.created)
        body["updateTime"] = proto_time(sub.updated)
        body["etag"] = b64url(hashlib.sha256(
            f"{sub.id}|{sub.updated.isoformat()}|{sub.state}|{sub.expires.isoformat()}|"
            f"{','.join(sub.event_types)}".encode()).digest()[:12])
        body["expireTime"] = proto_time(sub.expires)
        return body

    def _operation(self, kind: str, response: dict | None, *, store: bool = True) -> dict:
        import secrets

        suffix = self._next_id(20) if self.stable_ids else b64url(secrets.token_bytes(15))
        op = {"name": f"operations/{kind.lower()}-subscription-{suffix}",
              "metadata": {"@type": f"{TYPE_PREFIX}{kind}SubscriptionMetadata"},
              "done": True,
              "response": response if response is not None else {
                  "@type": "type.googleapis.com/google.protobuf.Empty"}}
        if store:
            self._operations[op["name"]] = op
        return op

    def _typed(self, sub: Subscription) -> dict:
        return {"@type": f"{TYPE_PREFIX}Subscription", **self._subscription_json(sub)}

    def _expiry(self, body: dict, now: datetime) -> datetime:
        if body.get("ttl") not in (None, "") and body.get("expireTime") not in (None, ""):
            raise invalid_argument("Only one of ttl and expire_time can be set.", "expiration")
        if body.get("expireTime") not in (None, ""):
            try:
                moment = parse_rfc3339(str(body["expireTime"]))
            except ValueError:
                raise invalid_argument(f"Invalid value at 'subscription.expire_time' "
                                       f"(type.googleapis.com/google.protobuf.Timestamp), "
                                       f"Field 'expireTime', Invalid time format: "
                                       f"{body['expireTime']}", "subscription.expire_time") \
                    from None
            if moment <= now or moment - now > MAX_TTL:
                raise invalid_argument("The expiration time must be in the future and at "
                                       f"most {int(MAX_TTL.total_seconds())} seconds from "
                                       "now.", "subscription.expire_time")
            return moment
        ttl = body.get("ttl")
        if ttl in (None, ""):
            return now + MAX_TTL
        try:
            duration = parse_duration(str(ttl))
        except ValueError:
            raise invalid_argument(f"Invalid value at 'subscription.ttl' "
                                   f"(type.googleapis.com/google.protobuf.Duration), "
                                   f"Field 'ttl', Illegal duration format; duration must end "
                                   f"with 's': {ttl}", "subscription.ttl") from None
        if duration < timedelta(0) or duration > MAX_TTL:
            raise invalid_argument("The TTL must be between 0s (the maximum) and "
                                   f"{int(MAX_TTL.total_seconds())}s.", "subscription.ttl")
        return now + (MAX_TTL if duration == timedelta(0) else duration)

    def _check_event_types(self, event_types) -> list[str]:
        if not isinstance(event_types, list) or not event_types:
            raise invalid_argument("At least one event type is required.",
                                   "subscription.event_types")
        for event_type in event_types:
            if event_type not in MEET_EVENT_TYPES:
                raise invalid_argument(f"Invalid event type: {event_type}. It isn't supported "
                                       "for the target resource.", "subscription.event_types")
        return list(dict.fromkeys(event_types))

    def _check_target(self, call, target: str) -> None:
        """The caller must be able to see the target: its own user, or a space it owns or
        joined."""
        person = call.person
        user = USER_TARGET.match(target)
        if user:
            if user.group(1) != person.id:
                raise GoogleError(403, "The caller does not have permission")
            return
        space = self._space_named(SPACE_TARGET.match(target).group(1))
        if space is None:
            raise GoogleError(404, "Requested entity was not found.")
        if not self._space_visible(space, person):
            raise GoogleError(403, "The caller does not have permission")

    def _own_subscription(self, call, raw_id: str) -> Subscription:
        sub = self._subscriptions.get(raw_id)
        if sub is None or sub.person is not call.person:
            raise GoogleError(404, "Requested entity was not found.")
        return sub

    # --------------------------------------------------------------- handlers

    def _create_subscription(self, call, body: dict) -> dict:
        import secrets

        target = str(body.get("targetResource") or "")
        if not target:
            raise invalid_argument("The target resource is required.",
                                   "subscription.target_resource")
        topic = str((body.get("notificationEndpoint") or {}).get("pubsubTopic") or "")
        if not TOPIC.match(topic):
            raise invalid_argument("The notification endpoint must be a Pub/Sub topic: "
                                   "projects/{project}/topics/{topic}.",
                                   "subscription.notification_endpoint.pubsub_topic")
        if not (SPACE_TARGET.match(target) or USER_TARGET.match(target)):
            raise invalid_argument(f"Invalid target resource: {target}. Supported targets are "
                                   "//meet.googleapis.com/spaces/{space} and "
                                   "//cloudidentity.googleapis.com/users/{user}.",
                                   "subscription.target_resource")
        event_types = self._check_event_types(body.get("eventTypes"))
        options = body.get("payloadOptions") or None
        if options and options.get("includeResource"):
            raise invalid_argument("Payload options that include the resource aren't "
                                   "supported for Google Meet events.",
                                   "subscription.payload_options")
        if not call.token.scopes & set(MEET_SCOPES):
            raise self._scope_error(call.method)
        now = self.now()
        expires = self._expiry(body, now)
        validate_only = (call.query.get("validateOnly") or "").lower() == "true"
        with self._lock:
            self._tick_events()
            self._check_target(call, target)
            existing = next((s for s in self._subscriptions.values()
                             if s.target == target and s.person is call.person), None)
            if existing is not None:
                raise GoogleError(409, "A subscription for the target resource already exists "
                                  "for this user and app.", details=[error_info(
                                      "SUBSCRIPTION_ALREADY_EXISTS",
                                      "workspaceevents.googleapis.com",
                                      {"current_subscription": existing.name})])
            kind = "meet-space" if SPACE_TARGET.match(target) else "cloudidentity-user"
            if self.stable_ids:
                ident = b64url(f"{target}|{call.person.id}|{self._next_id()}".encode())[-24:]
                uid = self._next_id(32)
            else:
                ident, uid = b64url(secrets.token_bytes(18)), secrets.token_hex(16)
            sub = Subscription(f"{kind}-{ident}", uid, target, event_types, topic, options,
                               call.person, call.token.account is not None, now, now, expires)
            if validate_only:
                return self._operation("Create", self._typed(sub), store=False)
            self._subscriptions[sub.id] = sub
            return self._operation("Create", self._typed(sub))

    def _get_subscription(self, call, raw_id: str) -> dict:
        with self._lock:
            self._tick_events()
            return self._subscription_json(self._own_subscription(call, raw_id))

    def _list_subscriptions(self, call) -> dict:
        raw = call.query.get("filter") or ""
        if not raw.strip():
            raise invalid_argument("The filter is required and must name at least one "
                                   "event type.", "filter")
        try:
            tree = parse_filter(raw)
        except ValueError as exc:
            raise invalid_argument(f"Invalid filter: {exc}", "filter") from None
        names = comparisons(tree)
        for c in names:
            if (c.name, c.op) not in (("event_types", ":"), ("target_resource", "=")):
                raise invalid_argument(f"Invalid filter: unsupported comparison {c.name} "
                                       f"{c.op}", "filter")
        if not any(c.name == "event_types" for c in names):
            raise invalid_argument("The filter must name at least one event type.", "filter")
        size = page_size(call.query.get("pageSize"), LIST_PAGE, LIST_MAX_PAGE)

        def test(sub: Subscription):
            def check(c: Comparison) -> bool:
                if c.name == "event_types":
                    return c.value in sub.event_types
                return sub.target == c.value
            return check

        with self._lock:
            self._tick_events()
            found = sorted((s for s in self._subscriptions.values()
                            if s.person is call.person and evaluate(tree, test(s))),
                           key=lambda s: (s.created, s.id))
            scope = scope_of("subscriptions", call.person.id, raw)
            offset = self._page_offset(call, scope)
            page = found[offset:offset + size]
            body: dict = {}
            if page:
                body["subscriptions"] = [self._subscription_json(s) for s in page]
            if offset + size < len(found):
                body["nextPageToken"] = make_page_token(scope, offset + size)
            return body

    def _page_offset(self, call, scope: str) -> int:
        token = call.query.get("pageToken")
        if not token:
            return 0
        try:
            return int(read_page_token(token, scope))
        except (ValueError, TypeError):
            raise invalid_argument("The page token is invalid.", "page_token") from None

    def _patch_subscription(self, call, raw_id: str, body: dict) -> dict:
        mask = call.query.get("updateMask")
        validate_only = (call.query.get("validateOnly") or "").lower() == "true"
        names = {"ttl": "ttl", "expire_time": "expireTime", "expireTime": "expireTime",
                 "event_types": "eventTypes", "eventTypes": "eventTypes"}
        if mask:
            paths = [p.strip() for p in mask.split(",") if p.strip()]
            if "*" in paths:
                paths = ["ttl" if body.get("ttl") else "expire_time", "event_types"]
            unknown = [p for p in paths if p not in names]
            if unknown:
                raise invalid_argument(f"Invalid update mask path(s): {', '.join(unknown)}. "
                                       "Only expire_time, ttl and event_types can be updated.",
                                       "update_mask")
            fields = {names[p] for p in paths}
        else:
            fields = {names[k] for k in body if k in names}
        with self._lock:
            self._tick_events()
            sub = self._own_subscription(call, raw_id)
            for immutable, value in (("targetResource", sub.target),
                                     ("notificationEndpoint", {"pubsubTopic": sub.topic})):
                if immutable in body and body[immutable] != value and not mask:
                    raise invalid_argument(f"The field {immutable} is immutable.",
                                           f"subscription.{immutable}")
            now = self.now()
            expires, event_types = sub.expires, sub.event_types
            if fields & {"ttl", "expireTime"}:
                expiry_body = {k: body.get(k) for k in ("ttl", "expireTime") if k in fields}
                expires = self._expiry(expiry_body, now)
            if "eventTypes" in fields:
                event_types = self._check_event_types(body.get("eventTypes"))
            if validate_only:
                preview = Subscription(**{**sub.__dict__, "expires": expires,
                                          "event_types": event_types, "updated": now,
                                          "reminded": set(sub.reminded)})
                return self._operation("Update", self._typed(preview), store=False)
            if expires != sub.expires:
                sub.reminded = set()
            sub.expires, sub.event_types, sub.updated = expires, event_types, now
            return self._operation("Update", self._typed(sub))

    def _delete_subscription(self, call, raw_id: str) -> dict:
        allow_missing = (call.query.get("allowMissing") or "").lower() == "true"
        validate_only = (call.query.get("validateOnly") or "").lower() == "true"
        etag = call.query.get("etag")
        with self._lock:
            self._tick_events()
            sub = self._subscriptions.get(raw_id)
            if sub is None or sub.person is not call.person:
                if allow_missing:
                    return self._operation("Delete", None)
                raise GoogleError(404, "Requested entity was not found.")
            if etag and etag != self._subscription_json(sub)["etag"]:
                raise GoogleError(409, "The etag doesn't match the subscription's current "
                                  "etag.", status_name="ABORTED")
            if validate_only:
                return self._operation("Delete", None, store=False)
            sub.state = "DELETED"
            del self._subscriptions[sub.id]
            return self._operation("Delete", None)

    def _reactivate_subscription(self, call, raw_id: str) -> dict:
        with self._lock:
            self._tick_events()
            sub = self._own_subscription(call, raw_id)
            if sub.state != "SUSPENDED":
                raise GoogleError(400, "The subscription isn't suspended: only a suspended "
                                  "subscription can be reactivated.",
                                  status_name="FAILED_PRECONDITION")
            sub.state, sub.reason, sub.updated = "ACTIVE", None, self.now()
            return self._operation("Reactivate", self._typed(sub))

    def _get_operation(self, raw_id: str) -> dict:
        with self._lock:
            op = self._operations.get(f"operations/{raw_id}")
        if op is None:
            raise GoogleError(404, "Requested entity was not found.")
        return op
