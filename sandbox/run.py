"""Start the Zoom, Salesforce and HubSpot sandboxes together, seeded with the demo org, over
HTTPS.

`coachloop sandbox` and `coachloop demo` use this; so can anyone trying coachloop before
connecting real accounts. `Sandboxes.settings()` gives the COACHLOOP_* settings that point
coachloop at them (OAuth apps, API bases, webhook secret, the local CA).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from sandbox import hubspot as hubspot_box
from sandbox.graph import GraphSandbox, teams_demo_calls
from sandbox.hubspot import HubSpotSandbox
from sandbox.meet import MeetSandbox, meet_demo_calls
from sandbox.salesforce import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SalesforceSandbox
from sandbox.salesforce import demo_seed as seed_salesforce
from sandbox.server import RunningServer, serve
from sandbox.tls import SandboxTLS, local_tls
from sandbox.zoom import ZoomSandbox
from sandbox.zoom import demo_seed as seed_zoom

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
DEMO_CRM = "salesforce"  # where `coachloop demo` writes back unless told another CRM
SANDBOX_PORTS = {"zoom": 8710, "salesforce": 8711, "hubspot": 8712, "graph": 8713,
                 "meet": 8714}
MEET_TOPIC = "projects/coachloop-sandbox/topics/coachloop-meet"
MEET_PUSH_ACCOUNT = "coachloop-push@coachloop-sandbox.iam.gserviceaccount.com"


@dataclass
class Sandboxes:
    """Running sandboxes: the emulators (for seeding and assertions) and their URLs."""

    tls: SandboxTLS
    zoom: ZoomSandbox
    salesforce: SalesforceSandbox
    hubspot: HubSpotSandbox
    zoom_server: RunningServer
    salesforce_server: RunningServer
    hubspot_server: RunningServer
    graph: GraphSandbox
    graph_server: RunningServer
    meet: MeetSandbox
    meet_server: RunningServer
    webhook_secret: str
    zoom_meetings: dict[str, str] = field(default_factory=dict)  # demo external id → uuid
    teams_calls: frozenset[str] = frozenset()  # demo calls Teams delivers (seeded later)
    meet_calls: frozenset[str] = frozenset()  # demo calls Google Meet delivers (seeded later)
    meet_key_file: Path | None = None  # a service account with domain-wide delegation
    salesforce_ids: dict[str, dict[str, str]] = field(default_factory=dict)
    hubspot_ids: dict[str, dict[str, str]] = field(default_factory=dict)

    def settings(self) -> dict[str, str]:
        """Environment settings that make coachloop use these sandboxes."""
        return {
            "COACHLOOP_ZOOM__CLIENT_ID": self.zoom.client_id,
            "COACHLOOP_ZOOM__CLIENT_SECRET": self.zoom.client_secret,
            "COACHLOOP_ZOOM__OAUTH_BASE": self.zoom_server.url,
            "COACHLOOP_ZOOM__API_BASE": f"{self.zoom_server.url}/v2",
            "COACHLOOP_ZOOM__WEBHOOK_SECRET_TOKEN": self.webhook_secret,
            "COACHLOOP_SALESFORCE__CLIENT_ID": DEFAULT_CLIENT_ID,
            "COACHLOOP_SALESFORCE__CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
            "COACHLOOP_SALESFORCE__LOGIN_URL": self.salesforce_server.url,
            "COACHLOOP_HUBSPOT__CLIENT_ID": hubspot_box.DEFAULT_CLIENT_ID,
            "COACHLOOP_HUBSPOT__CLIENT_SECRET": hubspot_box.DEFAULT_CLIENT_SECRET,
            "COACHLOOP_HUBSPOT__APP_BASE": self.hubspot_server.url,
            "COACHLOOP_HUBSPOT__API_BASE": self.hubspot_server.url,
            "COACHLOOP_TEAMS__CLIENT_ID": self.graph.client_id,
            "COACHLOOP_TEAMS__CLIENT_SECRET": self.graph.client_secret,
            "COACHLOOP_TEAMS__AUTHORITY_BASE": self.graph_server.url,
            "COACHLOOP_TEAMS__GRAPH_BASE": f"{self.graph_server.url}/v1.0",
            "COACHLOOP_MEET__CLIENT_ID": self.meet.client_id,
            "COACHLOOP_MEET__CLIENT_SECRET": self.meet.client_secret,
            "COACHLOOP_MEET__ACCOUNTS_BASE": self.meet_server.url,
            "COACHLOOP_MEET__OAUTH2_BASE": self.meet_server.url,
            "COACHLOOP_MEET__API_ROOT": self.meet_server.url,
            "COACHLOOP_MEET__JWKS_URL": f"{self.meet_server.url}/oauth2/v3/certs",
            "COACHLOOP_MEET__PUBSUB_TOPIC": MEET_TOPIC,
            "COACHLOOP_MEET__PUSH_SERVICE_ACCOUNT": MEET_PUSH_ACCOUNT,
            **({"COACHLOOP_MEET__SERVICE_ACCOUNT_FILE": str(self.meet_key_file)}
               if self.meet_key_file else {}),
            "COACHLOOP_CA_BUNDLE": str(self.tls.ca_path),
        }

    source = "zoom"  # the meeting platform the demo's calls come from

    def describe(self) -> list[str]:
        """One line per running sandbox: where it listens and what it holds."""
        return [f"Zoom sandbox:       {self.zoom_server.url}  ({len(self.zoom_meetings)} "
                "recorded demo meetings)",
                f"Salesforce sandbox: {self.salesforce_server.url}  "
                f"({len(self.salesforce_ids.get('opportunities', {}))} demo opportunities)",
                f"HubSpot sandbox:    {self.hubspot_server.url}  "
                f"({len(self.hubspot_ids.get('deals', {}))} demo deals)",
                f"Graph sandbox:      {self.graph_server.url}  (Microsoft Entra ID and "
                "Teams)",
                f"Google sandbox:     {self.meet_server.url}  (Google accounts, Meet, Drive, "
                "Calendar, People, Workspace Events and Pub/Sub push)"]

    def deliver_meetings(self, api_url: str) -> str:
        """The meeting platform's webhooks for every demo call, to coachloop's API at
        `api_url`: Zoom's URL validation first, then a signed `recording.completed` per call,
        twice each (at-least-once delivery). Returns what was validated and how the
        deliveries were answered; raises when the validation fails."""
        from core.errors import CoachloopError

        url, verify = f"{api_url}/webhooks/{self.source}", str(self.tls.ca_path)
        if not self.zoom.validate_endpoint(url, self.webhook_secret, verify=verify):
            raise CoachloopError("the webhook endpoint failed Zoom's URL validation")
        answers: dict[str, int] = {}
        for uuid in self.zoom_meetings.values():
            for response in self.zoom.deliver("recording.completed", uuid, url,
                                              self.webhook_secret, times=2, verify=verify):
                status = response.json().get("status", str(response.status_code))
                answers[status] = answers.get(status, 0) + 1
        return (f"Zoom validated the webhook endpoint {url}\nwebhook deliveries: "
                + ", ".join(f"{n} {k}" for k, n in sorted(answers.items())))

    def deliver_teams(self) -> str:
        """Seed the Teams demo calls (after coachloop subscribed: Graph notifies only
        subscriptions older than the transcript) and send Graph's change notifications;
        says how they were answered."""
        from sandbox.graph import demo_seed as seed_teams

        seeded = seed_teams(self.graph, DEMO_DIR / "calls", self.teams_calls)
        answers: dict[str, int] = {}
        for response in self.graph.deliver_notifications():
            try:
                status = response.json().get("status", str(response.status_code))
            except ValueError:
                status = str(response.status_code)
            answers[status] = answers.get(status, 0) + 1
        return (f"Teams: {len(seeded)} meetings transcribed; Graph sent change notifications "
                "for their transcripts and recordings: "
                + ", ".join(f"{n} {k}" for k, n in sorted(answers.items())))

    def deliver_meet(self, api_url: str, audience: str) -> str:
        """Seed the Google Meet demo calls (after coachloop subscribed to the reps' events)
        and push the Workspace Events to coachloop's API at `api_url` through Pub/Sub, with
        Google-signed tokens for `audience`; says how they were answered."""
        from sandbox.meet import demo_seed as seed_meet

        self.meet.configure_push(MEET_TOPIC, f"{api_url}/webhooks/meet", audience=audience,
                                 service_account_email=MEET_PUSH_ACCOUNT)
        seeded = seed_meet(self.meet, DEMO_DIR / "calls", self.meet_calls)
        answers: dict[str, int] = {}
        for status, _ in self.meet.deliver_events():
            answers[str(status)] = answers.get(str(status), 0) + 1
        return (f"Google Meet: {len(seeded)} conferences transcribed; Pub/Sub pushed their "
                "Workspace Events (HTTP " + ", ".join(f"{k}: {n}" for k, n in
                                                      sorted(answers.items())) + ")")

    def add_workspace_users(self, org_id: int) -> None:
        """Every person of the org on the org's domain becomes a user of the Google sandbox's
        Workspace (the demo's seeded history adds reps after the sandbox started)."""
        from sqlmodel import select

        from core.db import session_scope
        from core.models import User

        with session_scope() as session:
            people = session.exec(select(User.email, User.name).where(
                User.org_id == org_id)).all()
        for email, name in people:
            if email.rsplit("@", 1)[-1].lower() == self.meet.domain.lower():
                self.meet.add_user(email, name)

    def deal_names(self, crm: str) -> dict[str, str]:
        """The CRM sandbox's deals by id: their names."""
        if crm == "hubspot":
            return {r["id"]: r.get("dealname") or r["id"] for r in self.hubspot.records("deals")}
        return {o["Id"]: o["Name"] for o in self.salesforce.records("Opportunity")}

    def crm_summary(self, crm: str) -> str:
        """What coachloop's records in the CRM sandbox amount to, in one sentence."""
        if crm == "hubspot":
            calls = [c for c in self.hubspot.records("calls") if c.get("coachloop_meeting_key")]
            linked = sum(1 for c in calls if self.hubspot.associations("calls", c["id"], "deals"))
            try:
                scores = len(self.hubspot.records("coachloop_skill_score"))
            except hubspot_box.HubSpotError:  # no such custom object in this portal
                scores = 0
            on_deals = sum(1 for d in self.hubspot.records("deals")
                           if any(k.startswith("coachloop_owner_") and v not in (None, "")
                                  for k, v in d.items()))
            return (f"HubSpot now holds {len(calls)} call engagement(s) ({linked} associated "
                    f"with their deal), {scores} skill-score record(s) and owner skill scores "
                    f"on {on_deals} deal(s); {self.hubspot.daily_used} API call(s) used")
        tasks = [t for t in self.salesforce.records("Task") if t.get("Coachloop_Meeting_Key__c")]
        scores = self.salesforce.records("Rep_Skill_Score__c")
        return (f"Salesforce now holds {len(tasks)} call Task(s) "
                f"({sum(1 for t in tasks if t.get('WhatId'))} on their Opportunity) and "
                f"{len(scores)} Rep_Skill_Score__c row(s); {self.salesforce.api_usage} API "
                "call(s) used")

    def close_a_deal(self, crm: str, webhook_url: str) -> str | None:
        """Close one open demo deal as won where the CRM sandbox pushes deal changes
        (HubSpot's v3-signed webhooks to `webhook_url`); returns its id (None: this CRM
        sandbox sends no webhooks)."""
        if crm != "hubspot":
            return None
        open_deals = [d for d in self.hubspot.records("deals")
                      if d.get("dealstage") not in ("closedwon", "closedlost")]
        if not open_deals:
            return None
        deal = sorted(open_deals, key=lambda d: d["id"])[0]
        self.hubspot.subscribe(webhook_url, verify=str(self.tls.ca_path))
        self.hubspot.update("deals", deal["id"], {"dealstage": "closedwon"})
        self.hubspot.flush_webhooks()
        return deal["id"]

    def stop(self) -> None:
        self.meet_server.stop()
        self.graph_server.stop()
        self.zoom_server.stop()
        self.salesforce_server.stop()
        self.hubspot_server.stop()


def start_sandboxes(work_dir: str | Path, *, demo: bool = True,
                    ports: dict[str, int] | None = None, teams: bool = False,
                    meet: bool = False) -> Sandboxes:
    """Generate a local CA under `work_dir`, start the emulators, seed the demo org.
    `ports`: by vendor (absent or 0: any free port; `coachloop sandbox` uses
    `SANDBOX_PORTS`). With `teams`, the demo calls with a WebVTT transcript are Teams
    meetings instead of Zoom ones (seeded by `deliver_teams`, once coachloop subscribes);
    with `meet`, those with an SRT transcript are Google Meet conferences (`deliver_meet`),
    read through a service account with domain-wide delegation."""
    ports = ports or {}
    work_dir = Path(work_dir)
    tls = local_tls(work_dir / "tls")
    zoom = ZoomSandbox()
    salesforce = SalesforceSandbox()
    hubspot = HubSpotSandbox()
    zoom_meetings, salesforce_ids, hubspot_ids = {}, {}, {}
    teams_calls = teams_demo_calls(DEMO_DIR / "calls") if demo and teams else frozenset()
    meet_calls = meet_demo_calls(DEMO_DIR / "calls") if demo and meet else frozenset()
    if demo:
        zoom_meetings = seed_zoom(zoom, DEMO_DIR / "calls", work_dir / "zoom-files",
                                  skip=teams_calls | meet_calls)
        salesforce_ids = seed_salesforce(salesforce, DEMO_DIR)
        hubspot_ids = hubspot_box.demo_seed(hubspot, DEMO_DIR)
    zoom_server = zoom.start(tls, port=ports.get("zoom", 0))
    salesforce_server = serve(salesforce.create_app(), tls, port=ports.get("salesforce", 0))
    hubspot_server = hubspot.start(tls, port=ports.get("hubspot", 0))
    graph = GraphSandbox(stable_ids=True)
    graph_server = graph.start(tls, port=ports.get("graph", 0))
    # The demo's calls are months old: Meet's 30-day deletion of records would leave none.
    google = MeetSandbox(stable_ids=True, retention=None)
    if demo:
        _meet_workspace(google)
    meet_server = google.start(tls, port=ports.get("meet", 0))
    key_file = None
    if meet:
        key_file = _meet_service_account(google, work_dir / "meet-service-account.json")
    return Sandboxes(tls, zoom, salesforce, hubspot, zoom_server, salesforce_server,
                     hubspot_server, graph, graph_server, google, meet_server,
                     secrets.token_urlsafe(24), zoom_meetings, teams_calls, meet_calls,
                     key_file, salesforce_ids, hubspot_ids)


def _meet_workspace(google: MeetSandbox) -> None:
    """The demo org's Google Workspace: its team as users (the first signs in to consent)."""
    from sandbox.demo_calls import demo_team

    for user in demo_team(DEMO_DIR).users:
        if user["email"].rsplit("@", 1)[-1].lower() == google.domain:
            google.add_user(user["email"], user.get("name", ""))


def _meet_service_account(google: MeetSandbox, path: Path) -> Path:
    """A service account whose key is written to `path` (owner-only), delegated the
    connector's read scopes by the Workspace admin."""
    import json
    import os

    from connectors.meet.settings import READ_SCOPES

    key = google.add_service_account()
    google.grant_delegation(key["client_id"], READ_SCOPES)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(key, out)
    return path
