"""Who may call what: every route declares a policy, and every route × principal × org gives
the expected answer, on SQLite and PostgreSQL. Two orgs share one database and never see each
other; a manager sees the reps they manage, a rep only themselves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

PUBLIC = {  # route → why it may be called without signing in
    ("POST", "/webhooks/{provider}"), ("GET", "/health"), ("GET", "/connect/{provider}/callback"),
    ("POST", "/auth/login"), ("POST", "/auth/accept"), ("GET", "/openapi.json"),
    ("GET", "/auth/oidc/login"), ("GET", "/auth/oidc/callback"),
    ("GET", "/docs"), ("GET", "/docs/assets/{name}"),
    ("GET", "/"), ("GET", "/static/{name:path}"), ("GET", "/app/sign-in"), ("POST", "/app/sign-in"),
}


def every_route(app):
    for route in app.routes:
        inner = getattr(route, "original_router", None)
        yield from (inner.routes if inner is not None else [route])


def test_every_route_declares_exactly_one_policy():
    from api import create_app, policy_of

    app = create_app()
    seen = set()
    for route in every_route(app):
        assert isinstance(route, APIRoute), f"{route} is not an APIRoute: it has no policy"
        policies = policy_of(route)
        for method in route.methods:
            seen.add((method, route.path))
            assert len(policies) == 1, f"{method} {route.path} declares {len(policies)} policies"
            assert policies[0].public == ((method, route.path) in PUBLIC), \
                f"{method} {route.path}: {policies[0].name}"
    assert PUBLIC <= seen


# ------------------------------------------------------------------- the world ----


@dataclass
class World:
    ids: dict  # name → id (users, meetings, proposals, tokens)
    secrets: dict  # principal name → (kind, secret, csrf)


NAMES = ("admin", "manager", "rep1", "rep2", "other_admin", "other_rep")


@pytest.fixture
def world(database, tmp_path):
    """Org A: an admin, a manager over rep1, rep1, rep2 (not the manager's); org B: an admin
    and a rep. Each rep hosts one scored meeting and owns one deal with pending CRM values."""
    from core.auth import create_token, invite, start_session
    from core.db import session_scope
    from core.models import (CallScore, CrmProposal, Deal, MediaAsset, Meeting, Org, Rubric,
                             SkillSnapshot, User)

    ids, secrets = {}, {}
    now = datetime(2026, 11, 10, tzinfo=timezone.utc)
    with session_scope() as s:
        for org_name, people in (("A", ("admin", "manager", "rep1", "rep2")),
                                 ("B", ("other_admin", "other_rep"))):
            org = Org(name=org_name, domains=[f"{org_name.lower()}.example"])
            s.add(org)
            s.flush()
            ids[f"org_{org_name}"] = org.id
            rubric = Rubric(org_id=org.id, key="meddic", version="1", name="MEDDIC")
            s.add(rubric)
            s.flush()
            for person in people:
                role = ("admin" if "admin" in person else "manager" if person == "manager"
                        else "rep")
                user = User(org_id=org.id, name=person, email=f"{person}@{org_name.lower()}"
                            ".example", role=role)
                s.add(user)
                s.flush()
                ids[person] = user.id
            for person in people:
                if "rep" not in person:
                    continue
                meeting = Meeting(org_id=org.id, source="files", external_id=person,
                                  title=f"call of {person}", started_at=now,
                                  host_id=ids[person], stage="scored")
                s.add(meeting)
                s.flush()
                ids[f"meeting_{person}"] = meeting.id
                recording = tmp_path / f"{person}.ogg"
                recording.write_bytes(b"OggS" + bytes(2000))
                s.add(MediaAsset(org_id=org.id, meeting_id=meeting.id, kind="audio",
                                 remote_ref=str(recording), local_path=str(recording)))
                s.add(CallScore(org_id=org.id, meeting_id=meeting.id, rubric_id=rubric.id,
                                rep_id=ids[person], scorer="builtin", scorer_version="1",
                                overall=50.0))
                s.add(SkillSnapshot(org_id=org.id, rep_id=ids[person], skill="discovery_depth",
                                    window_days=90, as_of=date(2026, 11, 20), n_calls=1,
                                    raw_mean=50.0, shrunk=50.0, state="ok"))
                record = f"006{person}"
                s.add(Deal(org_id=org.id, crm="salesforce", external_id=record,
                           name=f"deal of {person}", owner_id=ids[person]))
                for n in range(12):  # one per decision the matrix makes
                    p = CrmProposal(org_id=org.id, crm="salesforce", sobject="Opportunity",
                                    record_id=record, field=f"F{n}__c", source="champion",
                                    proposed="Dana Ruiz, COO", evidence_key=f"{person}{n}")
                    s.add(p)
                    s.flush()
                    ids.setdefault(f"proposals_{person}", []).append(p.id)
        s.exec(User.__table__.update().where(User.id == ids["rep1"]).values(
            manager_id=ids["manager"]))
        for person in NAMES:
            user = s.get(User, ids[person])
            _, token, csrf = start_session(s, user)
            secrets[person] = ("session", token, csrf)
        for scope in ("read", "review", "admin"):
            row, secret = create_token(s, ids["org_A"], f"token {scope}", [scope])
            secrets[f"token_{scope}"] = ("token", secret, None)
            ids[f"token_{scope}"] = row.id
        row, _ = create_token(s, ids["org_A"], "to revoke", ["read"])
        ids["token_victim"] = row.id
        _, invitation = invite(s, ids["org_A"], "new@a.example")
    return World(ids, secrets)


def client_for(world: World, who: str | None) -> TestClient:
    from api import SESSION_COOKIE, create_app

    client = TestClient(create_app(), raise_server_exceptions=False,
                        base_url="https://testserver")
    if who is None:
        return client
    kind, secret, csrf = world.secrets[who]
    if kind == "token":
        client.headers["Authorization"] = f"Bearer {secret}"
    else:
        client.cookies.set(SESSION_COOKIE, secret)
        client.headers["X-CSRF-Token"] = csrf
    return client


PRINCIPALS = (None, *NAMES, "token_read", "token_review", "token_admin")


def expect(allowed: set[str], hidden: set[str] = frozenset(), ok: int = 200,
           anonymous: int = 401):
    """Expected status per principal: `ok` for `allowed`, 404 for `hidden` (another org's or
    out-of-scope object), 401 anonymous (a page: 303 to the sign-in form), 403 for everyone
    else."""
    return {who: anonymous if who is None else ok if who in allowed else 404 if who in hidden
            else 403 for who in PRINCIPALS}


def page(allowed: set[str], hidden: set[str] = frozenset(), ok: int = 200):
    return expect(allowed, hidden, ok, anonymous=303)


MEMBERS = {"admin", "manager", "rep1", "rep2", "other_admin", "other_rep", "token_read",
           "token_admin"}
ADMINS = {"admin", "other_admin", "token_admin"}
REVIEWERS = {"admin", "manager", "rep1", "rep2", "other_admin", "other_rep", "token_review",
             "token_admin"}


def cases(w: World):
    """(method, path, body, expected status per principal). Objects belong to org A's rep1."""
    i = w.ids
    sees_rep1 = {"admin", "manager", "rep1", "token_read", "token_admin"}
    rep1_reviewers = {"admin", "manager", "rep1", "token_review", "token_admin"}
    rep1_hidden = {"rep2", "other_admin", "other_rep"}
    yield "GET", "/meetings", None, expect(MEMBERS)
    yield "GET", f"/meetings/{i['meeting_rep1']}", None, expect(sees_rep1, rep1_hidden)
    yield "GET", "/reps", None, expect(MEMBERS)
    yield "GET", "/reps/rep1@a.example/skills", None, expect(sees_rep1, rep1_hidden)
    yield ("GET", "/reps/rep1@a.example/agenda?as_of=2026-11-20", None,
           expect(sees_rep1, rep1_hidden))
    yield "GET", "/team/skills", None, expect({"admin", "manager", "other_admin", "token_read",
                                               "token_admin"})
    yield "GET", "/outcomes", None, expect({"admin", "manager", "other_admin", "token_read",
                                            "token_admin"})
    yield "GET", "/cohorts", None, expect({"admin", "manager", "other_admin", "token_read",
                                           "token_admin"})
    yield "GET", "/export/deals", None, expect(MEMBERS)
    yield "GET", "/export/skills?format=parquet", None, expect(MEMBERS)
    yield "GET", "/connections", None, expect({"admin", "other_admin", "token_read",
                                               "token_admin"})
    yield "GET", "/connect/zoom", None, expect(ADMINS, ok=503)  # allowed, Zoom unconfigured
    yield "GET", "/crm/review", None, expect(REVIEWERS)
    yield "GET", "/crm/history", None, expect(REVIEWERS)
    proposals = iter(i["proposals_rep1"])
    for who in PRINCIPALS:
        yield ("POST", f"/crm/review/{next(proposals)}/reject", None,
               {who: expect(rep1_reviewers, rep1_hidden)[who]})
    team_readers = {"admin", "manager", "other_admin", "token_read", "token_admin"}
    yield "GET", "/app", None, page(MEMBERS, ok=303)
    yield "GET", "/app/team", None, page(team_readers)
    yield "GET", "/app/reps/rep1@a.example", None, page(sees_rep1, rep1_hidden)
    yield "GET", f"/app/meetings/{i['meeting_rep1']}", None, page(sees_rep1, rep1_hidden)
    yield "GET", f"/app/meetings/{i['meeting_rep1']}/audio", None, page(sees_rep1, rep1_hidden)
    yield "GET", "/app/review", None, page(REVIEWERS)
    yield "POST", "/app/review", None, page(REVIEWERS, ok=400)  # allowed; no action given
    yield "GET", "/app/connections", None, page({"admin", "other_admin", "token_read",
                                                  "token_admin"})
    yield "GET", "/app/outcomes", None, page(team_readers)
    yield "GET", "/app/settings", None, page({"admin", "other_admin", "token_read",
                                               "token_admin"})
    # allowed, but no number of days given
    yield "POST", "/app/connections/zoom/backfill", None, page(ADMINS, ok=400)
    for form in ("rubrics", "people", "tokens"):  # allowed, but the form is empty
        yield "POST", f"/app/settings/{form}", None, page(ADMINS, ok=400)
    yield "GET", "/auth/me", None, expect(MEMBERS | {"token_review"})
    yield "GET", "/auth/tokens", None, expect(ADMINS)
    yield ("POST", "/auth/tokens", {"name": "bi", "scopes": ["read"]}, expect(ADMINS, ok=201))
    yield ("POST", "/auth/invitations", {"email": "x@a.example"}, expect(ADMINS, ok=201))
    yield ("DELETE", f"/auth/tokens/{i['token_victim']}", None,
           expect({"admin", "token_admin"}, {"other_admin"}))


def test_route_role_org_matrix(world):
    failures = []
    checked = 0
    for method, path, body, expected in cases(world):
        for who, status in expected.items():
            response = client_for(world, who).request(method, path, json=body,
                                                      follow_redirects=False)
            checked += 1
            if response.status_code != status:
                failures.append(f"{method} {path} as {who or 'anonymous'}: "
                                f"{response.status_code}, expected {status}: "
                                f"{response.text[:120]}")
    assert not failures, "\n".join(failures)
    assert checked > 150


def test_lists_never_show_another_orgs_or_out_of_scope_rows(world):
    i = world.ids

    def meeting_ids(who):
        return {m["id"] for m in client_for(world, who).get("/meetings").json()}

    assert meeting_ids("admin") == {i["meeting_rep1"], i["meeting_rep2"]}
    assert meeting_ids("manager") == {i["meeting_rep1"]}
    assert meeting_ids("rep2") == {i["meeting_rep2"]}
    assert meeting_ids("other_admin") == {i["meeting_other_rep"]}
    emails = {r["email"] for r in client_for(world, "manager").get("/reps").json()}
    assert emails == {"manager@a.example", "rep1@a.example"}
    team = client_for(world, "other_admin").get("/team/skills").json()
    assert [row["rep"]["email"] for row in team["rows"]] == ["other_rep@b.example"]
    queue = client_for(world, "rep2").get("/crm/review").json()
    assert queue and {p["record_id"] for p in queue} == {"006rep2"}

    def exported_deals(who):
        answer = client_for(world, who).get("/export/deals")
        assert answer.headers["x-coachloop-schema"] == "deals/1"
        return {line.split(",")[2] for line in answer.text.splitlines()[1:]}

    assert exported_deals("admin") >= {"006rep1", "006rep2"}
    assert exported_deals("manager") >= {"006rep1"} and "006rep2" not in \
        exported_deals("manager")
    assert exported_deals("rep2") == {"006rep2"}
    assert not exported_deals("other_admin") & {"006rep1", "006rep2"}


def test_a_session_needs_its_csrf_token_to_change_anything(world):
    client = client_for(world, "admin")
    client.headers.pop("X-CSRF-Token")
    proposal = world.ids["proposals_rep2"][0]
    refused = client.post(f"/crm/review/{proposal}/reject")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    client.headers["X-CSRF-Token"] = world.secrets["rep1"][2]  # another session's token
    assert client.post(f"/crm/review/{proposal}/reject").status_code == 403
    assert client.get("/meetings").status_code == 200  # reading needs no CSRF token


def test_a_revoked_token_stops_at_once_and_records_last_use(world):
    admin = client_for(world, "admin")
    reader = client_for(world, "token_read")
    assert reader.get("/meetings").status_code == 200
    listed = {t["id"]: t for t in admin.get("/auth/tokens").json()}
    assert listed[world.ids["token_read"]]["last_used_at"] is not None
    assert "token" not in listed[world.ids["token_read"]]  # secrets are never listed
    assert admin.delete(f"/auth/tokens/{world.ids['token_read']}").status_code == 200
    refused = reader.get("/meetings")
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]


def test_local_sign_in_lockout_invitations_and_sign_out(world, monkeypatch):
    from core import auth
    from core.db import session_scope

    client = client_for(world, None)
    with session_scope() as s:
        _, secret = auth.invite(s, world.ids["org_A"], "carol@a.example", role="manager")
    assert client.post("/auth/accept", json={"token": secret, "password": "short"}
                       ).status_code == 422
    accepted = client.post("/auth/accept", json={"token": secret,
                                                 "password": "a long enough passphrase"})
    assert accepted.status_code == 200 and accepted.json()["role"] == "manager"
    again = client.post("/auth/accept", json={"token": secret, "password": "another one 123"})
    assert again.status_code == 401 and "not valid" in again.json()["error"]["message"]
    # Wrong passwords: the same answer whether or not the e-mail exists, then a lockout.
    fresh = client_for(world, None)
    unknown = fresh.post("/auth/login", json={"email": "nobody@a.example", "password": "x"})
    for _ in range(auth.MAX_FAILURES):
        wrong = fresh.post("/auth/login", json={"email": "carol@a.example", "password": "x"})
        assert wrong.status_code == 401
    assert unknown.json()["error"]["message"] == "wrong e-mail or password"
    locked = fresh.post("/auth/login", json={"email": "carol@a.example",
                                             "password": "a long enough passphrase"})
    assert locked.status_code == 401 and "too many failed sign-ins" in locked.text
    # After the lockout, the right password signs in; the cookie is HttpOnly and SameSite.
    later = datetime.now(timezone.utc) + auth.LOCKOUT + timedelta(seconds=1)
    monkeypatch.setattr(auth, "utcnow", lambda: later)
    signed = fresh.post("/auth/login", json={"email": "carol@a.example",
                                             "password": "a long enough passphrase"})
    assert signed.status_code == 200
    cookie = next(h for h in signed.headers.get_list("set-cookie")
                  if h.startswith("coachloop_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    monkeypatch.undo()
    fresh.headers["X-CSRF-Token"] = signed.json()["csrf_token"]
    assert fresh.get("/auth/me").json()["email"] == "carol@a.example"
    assert fresh.post("/auth/logout").status_code == 200
    fresh.cookies.set("coachloop_session", cookie.split(";")[0].split("=", 1)[1])
    ended = fresh.get("/auth/me")
    assert ended.status_code == 401 and "session has ended" in ended.json()["error"]["message"]


def test_an_expired_invitation_is_refused(world):
    from core import auth
    from core.db import session_scope

    with session_scope() as s:
        _, secret = auth.invite(s, world.ids["org_A"], "late@a.example",
                                ttl=timedelta(seconds=-1))
    response = client_for(world, None).post("/auth/accept", json={
        "token": secret, "password": "a long enough passphrase"})
    assert response.status_code == 401 and "expired" in response.json()["error"]["message"]


def test_docs_work_offline():
    from api import create_app

    client = TestClient(create_app())
    page = client.get("/docs").text
    assert "cdn" not in page.lower() and "http" not in page.replace("http-equiv", "")
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "start.js"):
        assert client.get(f"/docs/assets/{asset}").status_code == 200
    assert client.get("/docs/assets/..%2f..%2fapi.py").status_code == 404
    assert "/meetings" in client.get("/openapi.json").json()["paths"]


def test_disabling_someone_ends_their_sessions_at_once(world, monkeypatch):
    from typer.testing import CliRunner

    from cli import app
    from core.settings import get_settings

    client = client_for(world, "rep1")
    assert client.get("/auth/me").status_code == 200
    monkeypatch.setenv("COACHLOOP_ORG__NAME", "A")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["users", "disable", "rep1@a.example"])
    assert result.exit_code == 0 and "1 session(s) ended" in result.output, result.output
    assert client.get("/auth/me").status_code == 401
