"""Command line (`coachloop`): init, ingest, process, report, demo."""

from __future__ import annotations

import logging
import os
import time
from datetime import date
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.errors import CoachloopError, user_message

app = typer.Typer(help="coachloop: sales calls in; scored calls and rep skills out.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
report_app = typer.Typer(help="Skill reports.", no_args_is_help=True)
app.add_typer(report_app, name="report")
crm_app = typer.Typer(help="CRM write-back: plan, apply, pull outcomes.", no_args_is_help=True)
app.add_typer(crm_app, name="crm")
rubric_app = typer.Typer(help="Methodology rubrics: list, validate.", no_args_is_help=True)
app.add_typer(rubric_app, name="rubric")
webhooks_app = typer.Typer(help="Stored webhook events: replay.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")
users_app = typer.Typer(help="People who sign in: invite, list.", no_args_is_help=True)
app.add_typer(users_app, name="users")
tokens_app = typer.Typer(help="API tokens for machines: create, list, revoke.",
                         no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")
console = Console()
DEMO_DIR = Path(__file__).resolve().parent / "demo"


@app.callback()
def _logging() -> None:
    """Log to a file in the data dir: the terminal gets clear messages, the file the detail."""
    from core.settings import get_settings

    from core.settings import private_data_dir

    data_dir = private_data_dir(get_settings().data_dir)
    logging.basicConfig(filename=data_dir / "coachloop.log", level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def _run(fn, *args, **kwargs):
    """Run a command body; our errors become one clear line and an exit code, not a traceback."""
    try:
        return fn(*args, **kwargs)
    except typer.Exit:
        raise
    except CoachloopError as exc:
        _fail(exc.message)
    except Exception as exc:  # unexpected: say so plainly, keep the detail in the log
        logging.getLogger("coachloop.cli").exception("unexpected error")
        _fail(user_message(exc))


# ---------------------------------------------------------------------- init ----


def _init(org_name: str | None, domains: list[str]) -> int:
    from core.db import migrate, session_scope
    from core.ingest import ensure_org
    from core.settings import get_settings

    settings = get_settings()
    migrate()
    with session_scope() as session:
        org = ensure_org(session, org_name or settings.org.name, domains or settings.org.domains)
        return org.id


def _migrate() -> None:
    from core.db import migrate

    migrate()


@app.command()
def init(org: Optional[str] = typer.Option(None, help="org name (default COACHLOOP_ORG__NAME)"),
         domain: list[str] = typer.Option([], help="your company's email domain(s): rep vs buyer")):
    """Create or upgrade the database and the org."""
    from core.settings import get_settings

    org_id = _run(_init, org, domain)
    console.print(f"database ready at {_safe_url(get_settings().effective_database_url)}; "
                  f"org id {org_id}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# -------------------------------------------------------------------- ingest ----


def _ingest(folder: Path, roster_dir: Path | None = None) -> tuple[int, int]:
    """Ingest every manifest in `folder`; team.yaml / deals.yaml come from `roster_dir` (default: the folder)."""
    from connectors.files import FilesSource, load_deals, load_team
    from connectors.base import SourceProblem
    from core.db import session_scope
    from core.ingest import apply_deals, apply_team, current_org, ensure_org, ingest_record
    from core.settings import get_settings

    settings = get_settings()
    roster_dir = roster_dir or folder
    team = load_team(roster_dir)
    table = Table("meeting", "outcome", "detail", title=escape(f"ingest {folder}"))
    problems = 0
    with session_scope() as session:
        if team is not None:
            org = ensure_org(session, team.org.name, list(team.org.domains))
            apply_team(session, org, team.members())
        else:
            org = current_org(session, settings.org.name)
        org_id = org.id
    ok = 0
    for item in FilesSource(folder).list_meetings():
        # Everything from files is escaped: Rich would take "[field]" for markup and drop it.
        if isinstance(item, SourceProblem):
            problems += 1
            table.add_row(escape(Path(item.origin).name), "[red]error[/red]", escape(str(item)))
            continue
        try:
            with session_scope() as session:
                from core.models import Org

                result = ingest_record(session, session.get(Org, org_id), item)
            ok += 1
            table.add_row(escape(item.external_id), result.outcome.value, escape(result.message))
        except CoachloopError as exc:
            problems += 1
            table.add_row(escape(item.external_id), "[red]error[/red]", escape(exc.message))
    deals = load_deals(roster_dir)
    if deals:
        with session_scope() as session:
            from core.models import Org

            apply_deals(session, session.get(Org, org_id), [d.to_record() for d in deals])
        table.caption = f"{len(deals)} deal(s) loaded"
    console.print(table)
    return ok, problems


@app.command()
def ingest(path: Path = typer.Argument(..., help="folder of recordings with one manifest per meeting"),
           process_now: bool = typer.Option(False, "--process", help="process right after")):
    """Ingest a folder of recordings (files source). Re-ingesting unchanged files does nothing."""
    if not path.is_dir():
        _fail(f"{path}: not a folder")
    _run(_migrate)
    ok, problems = _run(_ingest, path)
    if process_now:
        _run(_process, False, None)
    if problems:
        console.print(f"[yellow]{problems} meeting(s) could not be ingested; the other {ok} were.[/]")
        raise typer.Exit(1)


# ------------------------------------------------------------------- process ----


def _process(retry_failed: bool, as_of: date | None) -> None:
    from core.pipeline import pending_meetings
    from core.settings import get_settings

    settings = get_settings()
    pending = pending_meetings(include_failed=retry_failed)
    if not pending:
        console.print("nothing to process")
    elif settings.runs_in_process:
        _process_here(pending)
    else:
        _process_on_workers(pending)
    if pending:
        _print_not_scored(meeting_ids=[m for m, _ in pending])
    org_id = _refresh_skills(as_of)
    if settings.runs_in_process:
        from connectors.crm_sync import crm_connected

        if crm_connected(org_id):
            _crm_sync(apply=True, include_synced=False)


def _process_here(pending: list[tuple[int, str]]) -> None:
    from core.pipeline import AlreadyClaimed, record_failure, score_meeting, transcribe_meeting

    failures, skipped = [], []
    columns = (TextColumn("{task.description}", style="bold"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[note]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        overall = progress.add_task("meetings", total=len(pending), note="")
        current = progress.add_task("transcribe", total=100, note="", visible=False)
        for meeting_id, stage in pending:
            progress.update(current, completed=0, visible=True,
                            description=f"meeting {meeting_id}", note="")

            def on_progress(fraction: float, note: str) -> None:
                progress.update(current, completed=round(fraction * 100), note=note[:40])

            try:
                if stage in ("ingested", "failed"):
                    transcribe_meeting(meeting_id, progress=on_progress)
                score_meeting(meeting_id)
            except AlreadyClaimed as exc:  # another `process` or a worker has it
                skipped.append(exc.message)
            except Exception as exc:
                record_failure(meeting_id, "transcribe" if stage == "ingested" else "score", exc)
                failures.append((meeting_id, user_message(exc)))
            progress.advance(overall)
        progress.update(current, visible=False)
    for message in skipped:
        console.print(f"[dim]{escape(message)}[/dim]")
    console.print(f"processed {len(pending) - len(skipped)} meeting(s) here"
                  + (f"; {len(skipped)} skipped: another runner has them" if skipped else ""))
    for meeting_id, message in failures:
        console.print(f"[red]meeting {meeting_id} failed:[/red] {escape(message)}")


def _print_not_scored(**scope) -> None:
    """One line saying how many calls (in `scope`: see `reports.not_scored`) are not scored,
    and why; nothing when all are."""
    from core import reports
    from core.db import session_scope
    from core.ingest import current_org
    from core.settings import get_settings

    with session_scope() as session:
        org = current_org(session, get_settings().org.name)
        line = reports.not_scored(session, org.id, **scope).line()
    if line:
        console.print(f"[yellow]{escape(line)}[/yellow]")


def _process_on_workers(pending: list[tuple[int, str]]) -> None:
    import worker
    from core.db import session_scope
    from core.models import Meeting

    for meeting_id, stage in pending:
        (worker.transcribe if stage == "ingested" else worker.score).delay(meeting_id)
    ids = [m for m, _ in pending]
    with Progress(TextColumn("workers"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("", total=len(ids))
        while True:
            with session_scope() as session:
                done = sum(1 for m in ids if session.get(Meeting, m).stage in ("scored", "failed"))
            progress.update(task, completed=done)
            if done == len(ids):
                break
            time.sleep(1.0)


def _refresh_skills(as_of: date | None) -> None:
    from core.db import session_scope
    from core.ingest import current_org
    from core.skill_refresh import refresh_skills
    from core.settings import get_settings

    with session_scope() as session:
        org_id = current_org(session, get_settings().org.name).id
    count = refresh_skills(org_id, as_of)
    console.print(f"skills refreshed as of {as_of or 'today'}: {count} snapshot(s)")
    return org_id


@app.command()
def process(retry_failed: bool = typer.Option(False, help="also retry meetings that failed"),
            as_of: Optional[str] = typer.Option(None, help="skills as of YYYY-MM-DD (default today)")):
    """Run every pending meeting through transcription and scoring, then refresh skills."""
    _run(_process, retry_failed, _parse_date(as_of))


def _parse_date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"--as-of {value!r}: expected a date as YYYY-MM-DD")


# -------------------------------------------------------------------- report ----


def _fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _scope(session, org_id: int, members: set[str] | None):
    """The org, or only the people with these e-mails (the demo's own team)."""
    from sqlmodel import select

    from core.access import Scope
    from core.models import User

    if members is None:
        return org_id
    return Scope(org_id, frozenset(session.exec(select(User.id).where(
        User.org_id == org_id, User.email.in_(sorted(members))))))


def _team_report(as_of: date | None, window: int, members: set[str] | None = None) -> None:
    from core import reports
    from core.db import session_scope
    from core.ingest import current_org
    from core.settings import get_settings

    with session_scope() as session:
        org = current_org(session, get_settings().org.name)
        team = reports.team_table(session, _scope(session, org.id, members), as_of=as_of,
                                  window_days=window)
    table = Table(title=f"Team skills, {window}-day window as of {team.as_of}",
                  caption="estimate (0–100, shrunk toward the team for small samples) · "
                          "percentile among peers; * = fewer calls than needed for a percentile")
    table.add_column("rep")
    table.add_column("calls", justify="right")
    for skill in team.skills:
        table.add_column(skill.replace("_", " "), justify="right")
    for row in team.rows:
        cells = []
        for skill in team.skills:
            s = row.skills.get(skill)
            if s is None or s.shrunk is None:
                cells.append("—")
            elif s.state != "ok":
                cells.append(f"[dim]{s.shrunk:.0f}*[/dim]")
            else:
                cells.append(f"{s.shrunk:.0f} · p{_fmt(s.percentile)}")
        table.add_row(row.rep.name, str(row.n_calls), *cells)
    console.print(table)
    _print_not_measured(team.not_measured)
    _print_not_scored(as_of=team.as_of, window_days=window)


def _print_not_measured(skills) -> None:
    if skills:
        console.print("[bold]Not measured[/bold]")
    for s in skills:
        console.print(f"  {s.label}: {escape(s.reason)}")


def _rep_report(email: str, as_of: date | None, window: int) -> None:
    from core import reports
    from core.db import session_scope
    from core.ingest import current_org
    from core.settings import get_settings

    with session_scope() as session:
        org = current_org(session, get_settings().org.name)
        card = reports.rep_scorecard(session, org.id, email, as_of=as_of, window_days=window)
    console.print(Panel(f"[bold]{card.rep.name}[/bold] <{card.rep.email}>  "
                        f"manager: {card.rep.manager or '—'}  ·  {window}-day window as of "
                        f"{card.as_of}", title="Scorecard"))
    skills = Table("skill", "calls", "estimate", "90% interval", "raw mean", "percentile",
                   "trend /30d", "state")
    for s in card.skills:
        interval = (f"{s.interval_low:.0f}–{s.interval_high:.0f}"
                    if s.interval_low is not None else "—")
        skills.add_row(s.skill.replace("_", " "), str(s.n_calls), _fmt(s.shrunk), interval,
                       _fmt(s.raw_mean), _fmt(s.percentile), _fmt(s.slope_per_30d, 1),
                       s.state.replace("_", " "))
    console.print(skills)
    _print_not_measured(card.not_measured)
    for title, items in (("Strengths", card.strengths), ("Gaps", card.gaps)):
        console.print(f"[bold]{title}[/bold]" + ("" if items else "  none in this window"))
        for c in items:
            console.print(f"  {c.criterion.replace('_', ' ')}: {c.mean_score:g}/{c.max_score:g} "
                          f"on average over {c.n_calls} call(s). In meeting "
                          f"{c.example_meeting_id}: {c.example_rationale}")
            for e in c.evidence[:2]:
                console.print(f'    [{_clock(e.start)}–{_clock(e.end)}] "{e.quote}"')
    calls = Table("date", "meeting", "scores", title="Recent calls")
    for m in card.recent_calls:
        scores = ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(m.scores.items()))
        calls.add_row(m.started_at.date().isoformat(), escape(m.title), scores or m.stage)
    console.print(calls)
    _print_not_scored(rep_id=card.rep.id, as_of=card.as_of, window_days=window)


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


@report_app.command("team")
def report_team(as_of: Optional[str] = typer.Option(None), window: int = typer.Option(90)):
    """Every rep's skills side by side."""
    _run(_team_report, _parse_date(as_of), window)


@report_app.command("rep")
def report_rep(email: str, as_of: Optional[str] = typer.Option(None),
               window: int = typer.Option(90)):
    """One rep's scorecard: skills with intervals and percentiles, evidence from their calls."""
    _run(_rep_report, email, _parse_date(as_of), window)


def _outcomes_report(segment: str | None, window: int) -> None:
    from core.db import session_scope
    from core.ingest import current_org
    from core.outcomes import outcomes_report
    from core.settings import get_settings
    from core.skill_taxonomy import SKILLS

    with session_scope() as session:
        org = current_org(session, get_settings().org.name)
        report = outcomes_report(session, org.id, segment=segment, window_days=window)
    console.print(f"{report.deals} closed deal(s), {report.wins} won; each profiled with its "
                  f"owner's {window}-day skill estimates as of its close date"
                  + (f" ({report.without_owner_skills} without: no scored calls of the owner "
                     "before the close)" if report.without_owner_skills else ""))
    for part in report.results:
        title = "All closed deals" if part.segment == "all" else \
            f"{report.segment_by}: {part.segment}"
        table = Table("skill", "deals", "win rate: lower / middle / upper third",
                      "odds of winning per SD (95 %)", "p", title=f"{title} ({part.deals} "
                      f"deals, {part.wins} won)")
        for r in sorted(part.skills, key=lambda r: (r.state != "ok", -(r.odds_ratio or 0))):
            label = SKILLS[r.skill].label if r.skill in SKILLS else r.skill
            rates = " / ".join(f"{b.win_rate:.0%}" for b in r.bands) if r.bands else "—"
            if r.state != "ok":
                table.add_row(label, str(r.deals), rates, f"[dim]insufficient data: "
                              f"{escape(r.reason)}[/dim]", "—")
                continue
            mark = "[bold]" if r.significant else ""
            table.add_row(label, str(r.deals), rates,
                          f"{mark}×{r.odds_ratio:.2f} ({r.interval[0]:.2f}–{r.interval[1]:.2f})"
                          f"{'[/bold]' if mark else ''}", f"{r.p_value:.3f}")
        console.print(table)
        if part.top:
            console.print("Most associated with winning: " + ", ".join(
                SKILLS[s].label if s in SKILLS else s for s in part.top), highlight=False)
        elif any(r.state == "ok" for r in part.skills):
            console.print("No skill's association with winning is clear at the 5 % level.")
    console.print(f"[dim]{escape(report.caveat)} Held equal: the other skills, deal size"
                  f"{' and ' + report.segment_by if report.segment_by else ''}; deals of one "
                  f"rep are not treated as independent. Below {report.min_deals} deals (or "
                  f"{report.min_each} won or lost) a skill is not ranked.[/dim]")


def _cohorts_report(skills: list[str]) -> None:
    from core.cohorts import CAVEAT, cohort_report
    from core.db import session_scope
    from core.ingest import current_org
    from core.settings import get_settings
    from core.skill_taxonomy import SKILLS

    with session_scope() as session:
        org = current_org(session, get_settings().org.name)
        cohorts = cohort_report(session, org.id, skills=skills or None)
    if not cohorts:
        console.print("no agenda has recorded its focus yet: `coachloop agenda EMAIL` (or the "
                      "workers' Monday job) records each week's")
        return
    table = Table("skill", "reps coached", "30 days: coached vs not (95 %)",
                  "60 days: coached vs not (95 %)", "win rate 90 days before → after",
                  title="Did coaching move the skill? Score change after a focus week "
                        "(points, 0–100)")

    def move(m) -> str:
        if m.difference is None:
            return "—"
        span = f" ({m.interval[0]:+.1f} to {m.interval[1]:+.1f})" if m.interval else ""
        return f"{m.focused_mean:+.1f} vs {m.others_mean:+.1f}: {m.difference:+.1f}{span}"

    for c in cohorts:
        label = SKILLS[c.skill].label if c.skill in SKILLS else c.skill
        if c.state != "ok":
            table.add_row(label, str(c.focused_reps), f"[dim]insufficient data: "
                          f"{escape(c.reason)}[/dim]", "—", "—")
            continue
        rates = " → ".join(f"{w.rate:.0%} of {w.deals}" if w.rate is not None else "no deals"
                           for w in (c.wins_before, c.wins_after))
        table.add_row(label, str(c.focused_reps), move(c.movements[0]), move(c.movements[1]),
                      rates)
    console.print(table)
    console.print(f"[dim]{escape(CAVEAT)}[/dim]")


@report_app.command("cohorts")
def report_cohorts(skill: list[str] = typer.Option([], help="only these skills (repeat)")):
    """Did coaching move the skill: reps whose weekly agenda focused on it against reps whose
    did not, 30 and 60 days on, and their win rates before and after."""
    _run(_cohorts_report, skill)


@report_app.command("outcomes")
def report_outcomes(segment: Optional[str] = typer.Option(None, help="also per segment: "
                                                          "size (below or above the median "
                                                          "deal) or manager"),
                    window: int = typer.Option(90, help="skill window, days before the close")):
    """Which skills go with won deals: win rate by skill third and the odds of winning per
    standard deviation of each skill, deal size held equal, with 95 % intervals."""
    _run(_outcomes_report, segment, window)


def _export(kind: str, fmt: str, out: Path | None) -> None:
    import sys

    from core.db import session_scope
    from core.exports import SCHEMAS, export_rows, render, schema_tag
    from core.ingest import current_org
    from core.settings import get_settings

    if kind not in SCHEMAS:
        raise CoachloopError(f"unknown export {kind!r} (exports: {', '.join(SCHEMAS)})")
    if fmt == "parquet" and out is None:
        raise CoachloopError("parquet is binary: give --out FILE")
    _migrate()
    with session_scope() as session:
        org = current_org(session, get_settings().org.name)
        rows = export_rows(session, org.id, kind)
    data = render(kind, rows, fmt)
    if out is None:
        sys.stdout.write(data.decode())
        return
    out.write_bytes(data)
    console.print(f"{len(rows)} row(s) of {kind} ({schema_tag(kind)}) written to {out}",
                  highlight=False)


@app.command()
def export(kind: str = typer.Argument(..., help="skills, scores, deals or fields"),
           fmt: str = typer.Option("csv", "--format", help="csv or parquet"),
           out: Optional[Path] = typer.Option(None, help="file to write (csv: default stdout)")):
    """The org's skills, call scores, deals or methodology fields for analysts, with the
    column schema in the README (versioned: `coachloop.schema` in Parquet metadata)."""
    _run(_export, kind, fmt, out)


# ---------------------------------------------------------------------- sync ----


def _sync(source: str, days: int | None, process: bool) -> None:
    from datetime import datetime, timedelta, timezone

    from connectors.base import SourceProblem
    from core.vendors import with_a

    pollable = {vendor.name: vendor for vendor in with_a("poll")}
    if source not in pollable:
        _fail(f"no source {source!r} to sync (available: {', '.join(pollable) or 'none'})")
    vendor = pollable[source]
    _migrate()
    org_id = _org_id()
    since = datetime.now(timezone.utc) - timedelta(days=days) if days else None
    table = Table("meeting", "outcome", "detail", title=f"{vendor.label} recordings")

    def on_item(item, result) -> None:
        if isinstance(item, SourceProblem):
            table.add_row(escape(_short(item.origin, 40)), "[yellow]later[/yellow]",
                          escape(item.message))
        else:
            table.add_row(escape(_short(item.title, 40)), result.outcome.value,
                          escape(result.message))

    with Progress(TextColumn(vendor.label), BarColumn(), TextColumn("{task.fields[note]}"),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("", total=1.0, note="")
        vendor.load("poll")(org_id, since=since, on_item=on_item, progress=lambda fraction,
                            note: bar.update(task, completed=fraction, note=note))
    console.print(table)
    if process:
        _process(False, None)


@app.command("sync")
def sync_source(source: str = typer.Argument(..., help="a meeting platform that can be "
                                             "polled, e.g. zoom"),
                days: Optional[int] = typer.Option(None, help="backfill this many days (default:"
                                                   " since the last sync)"),
                process: bool = typer.Option(True, help="transcribe and score what came in")):
    """Fetch recordings from a connected meeting platform (what webhooks may have missed)."""
    _run(_sync, source, days, process)


# -------------------------------------------------------------------- rubrics ----


def _rubric_validate(files: list[Path]) -> None:
    from core.rubrics import load_rubric, rubric_search
    from core.settings import get_settings

    search = rubric_search(get_settings())
    bad = 0
    for file in files:
        try:
            rubric = load_rubric(file, search)
        except CoachloopError as exc:
            bad += 1
            console.print(f"[red]invalid[/red] {escape(exc.message)}", highlight=False)
            continue
        stages = sorted({s for c in rubric.criteria for s in c.stages}) or ["every stage"]
        console.print(f"[green]ok[/green] {file}: {rubric.key} ({rubric.name}), "
                      f"{len(rubric.criteria)} criteria, {len(rubric.fields)} fields, "
                      f"stages {', '.join(stages)}, version {rubric.version}")
    if bad:
        raise typer.Exit(1)


@rubric_app.command("validate")
def rubric_validate(files: list[Path] = typer.Argument(..., help="rubric YAML files")):
    """Check rubric files; every problem is reported with its file and line."""
    _run(_rubric_validate, files)


def _rubric_list() -> None:
    from core.rubrics import find_rubric, list_builtin_rubrics, rubric_search
    from core.settings import get_settings

    settings = get_settings()
    search = rubric_search(settings)
    keys = set(list_builtin_rubrics())
    for folder in search:
        keys |= {p.stem for p in Path(folder).glob("*.yaml")}
    table = Table("key", "name", "criteria", "version", "where", "scoring",
                  title="Rubrics")
    for key in sorted(keys):
        rubric = find_rubric(key, search)
        where = next((str(f) for f in search if (Path(f) / f"{key}.yaml").is_file()), "built-in")
        table.add_row(key, rubric.name, str(len(rubric.criteria)), rubric.version, where,
                      "yes" if key in settings.scoring.methodologies else "")
    console.print(table)


@rubric_app.command("list")
def rubric_list():
    """Built-in rubrics and your own (COACHLOOP_SCORING__RUBRIC_DIRS), with versions."""
    _run(_rubric_list)


def _rescore(rubric_key: str | None) -> None:
    from sqlmodel import select

    from core.db import session_scope
    from core.models import CallScore, Meeting, Rubric
    from core.pipeline import get_scorer, score_meeting
    from core.rubrics import find_rubric, rubric_search
    from core.settings import get_settings

    settings = get_settings()
    _migrate()
    keys = [rubric_key] if rubric_key else list(settings.scoring.methodologies)
    current = {k: find_rubric(k, rubric_search(settings)).version for k in keys}
    scorer = get_scorer(settings)
    by = f"{scorer.name} {scorer.version}"
    with session_scope() as session:
        scored = session.exec(select(Meeting.id).where(Meeting.stage == "scored")).all()
        have = session.exec(select(CallScore.meeting_id, Rubric.key, Rubric.version,
                                   CallScore.scorer, CallScore.scorer_version)
                            .join(Rubric, CallScore.rubric_id == Rubric.id)).all()
    # Stale: an older rubric version, or an older release of the scorer in use.
    up_to_date = {(m, k) for m, k, v, name, version in have
                  if current.get(k) == v and f"{name} {version}" == by}
    stale = sorted(m for m in scored if any((m, k) not in up_to_date for k in keys))
    if not stale:
        console.print("every scored call already has the current version of "
                      + ", ".join(f"{k} ({v})" for k, v in current.items()) + f", by {by}")
        return
    with Progress(TextColumn("re-scoring"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("", total=len(stale))
        for meeting_id in stale:
            score_meeting(meeting_id, settings=settings)
            progress.advance(task)
    _refresh_skills(None)
    console.print(f"re-scored {len(stale)} call(s) with "
                  + ", ".join(f"{k} {v}" for k, v in current.items()) + f", by {by}")


@app.command()
def rescore(rubric: Optional[str] = typer.Option(None, help="only this rubric key")):
    """Re-score scored calls whose scores come from an older rubric version or scorer release
    (or lack a newly added methodology); scores keep the versions they were made with."""
    _run(_rescore, rubric)


# ---------------------------------------------------------------------- agenda ----


def _agenda(email: str, as_of: date | None, window: int) -> None:
    from datetime import datetime, timezone

    from core.agenda import coaching_agenda
    from core.db import session_scope
    from core.settings import get_settings

    settings = get_settings()
    with session_scope() as session:
        agenda = coaching_agenda(session, _org_id(), email,
                                 as_of=as_of or datetime.now(timezone.utc).date(),
                                 window_days=window, min_calls=settings.skills.min_calls,
                                 public_url=settings.public_url, record=True)
    _print_agenda(agenda)


def _print_agenda(agenda) -> None:
    console.print(Panel(f"{agenda.rep_name} <{agenda.rep_email}>  ·  week of "
                        f"{agenda.as_of.isoformat()}  ·  {agenda.window_days}-day window",
                        title="Coaching agenda"), highlight=False)
    if agenda.note:
        console.print(agenda.note)
    for number, focus in enumerate(agenda.focus, start=1):
        console.print(f"[bold]{number}. {focus.label}[/bold] — {escape(focus.why)}",
                      highlight=False)
        console.print(f"   what good looks like: {escape(focus.good)}", highlight=False)
        for m in focus.moments:
            when = f"{int(m.start) // 60}:{int(m.start) % 60:02d}"
            quote = f' "{escape(m.quote)}"' if m.quote else ""
            console.print(f"   • {m.on.isoformat()} {escape(m.title)} [{when}]{quote}\n"
                          f"     {escape(m.why)}  {m.link}", highlight=False)
    for follow in agenda.last_week:
        console.print(f"last week's focus, {follow.label}: {follow.verdict} "
                      f"({follow.n_since} call(s) since)", highlight=False)
        for m in follow.moments:
            console.print(f'   • {m.on.isoformat()} {escape(m.title)}: "{escape(m.quote)}" '
                          f"({escape(m.why)})", highlight=False)


@app.command()
def agenda(email: str, as_of: Optional[str] = typer.Option(None, help="YYYY-MM-DD (default "
                                                            "today)"),
           window: int = typer.Option(90)):
    """A rep's coaching agenda: two skills to work on, shown in their own calls."""
    _run(_agenda, email, _parse_date(as_of), window)


# ---------------------------------------------------------------- calibration ----


def _calibrate(labels_dir: Path, scorer: str, out: Path | None) -> None:
    import json

    from core.calibration import calibrate, load_labelled_set
    from core.pipeline import get_scorer
    from core.rubrics import find_rubric, rubric_search
    from core.settings import get_settings

    settings = get_settings()
    # Both passes go to the scorer: a cached answer would make run-to-run agreement trivial.
    settings = settings.model_copy(update={
        "scoring": settings.scoring.model_copy(update={"scorer": scorer}),
        "llm": settings.llm.model_copy(update={"cache": False})})
    calls = load_labelled_set(labels_dir)
    keys = sorted({k for call in calls for k in call.levels})
    rubrics = {k: find_rubric(k, rubric_search(settings)) for k in keys}
    engine = get_scorer(settings)
    started = time.perf_counter()
    report = calibrate(calls, rubrics, engine.score)
    elapsed = time.perf_counter() - started
    table = Table("rubric", "criterion", "n", "found (label)", "exact", "±1", "κ found",
                  "κ levels (quadratic)", "tp/fp/fn/tn", "abstained", "run-to-run",
                  title=f"Calibration: {report.scorer} {report.scorer_version} on "
                        f"{report.calls} labelled calls")

    def k(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    for c in report.criteria:
        m = c.confusion
        table.add_row(c.methodology, c.criterion, str(c.n), str(c.label_found),
                      f"{c.exact:.2f}", f"{c.within_one:.2f}", k(c.kappa_found),
                      k(c.kappa_levels), f"{m['tp']}/{m['fp']}/{m['fn']}/{m['tn']}",
                      f"{c.abstained:.2f}", f"{c.run_to_run:.2f}")
    console.print(table)
    facts = Table("field", "n", "found vs not", "status (3-way)", "value match", "label→ours",
                  "run-to-run", title="Deal facts (found / ambiguous / absent, distilled value)")
    for f in report.facts:
        matched = "—" if f.value_match is None else f"{f.value_match:.2f} of {f.value_n}" + (
            " (person)" if f.person else "")
        confusion = " ".join(f"{name}:{count}" for name, count in sorted(f.confusion.items())
                             if name.split("→")[0] != name.split("→")[1])
        facts.add_row(f.field, str(f.n), f"{f.found_accuracy:.2f}", k(f.status_accuracy),
                      matched, confusion or "all agree", f"{f.run_to_run:.2f}")
    if report.facts:
        console.print(facts)
        fp = report.facts_pooled

        def fci(key: str) -> str:
            bounds = fp.get(f"{key}_ci")
            return f" ({bounds[0]:.2f}–{bounds[1]:.2f})" if bounds else ""

        console.print(f"deal facts pooled: found vs not {k(fp.get('found_accuracy'))}"
                      f"{fci('found_accuracy')}, 3-way {k(fp.get('status_accuracy'))}"
                      f"{fci('status_accuracy')}, value match {k(fp.get('value_match'))}"
                      f"{fci('value_match')} over {fp.get('value_n', 0)}, person-name match "
                      f"{k(fp.get('person_match'))}{fci('person_match')} over "
                      f"{fp.get('person_n', 0)} (95% intervals)")
    pooled = report.pooled

    def ci(key: str) -> str:
        bounds = pooled.get(key)
        return f" (95% CI {bounds[0]:.2f}–{bounds[1]:.2f})" if bounds else ""

    console.print(f"pooled over every criterion: κ found/absent {k(pooled['kappa_found'])}"
                  f"{ci('kappa_found_ci')}, κ levels {k(pooled['kappa_levels'])}"
                  f"{ci('kappa_levels_ci')}, exact {k(pooled['exact'])}, "
                  f"found/absent accuracy {k(pooled['found_accuracy'])}, run-to-run "
                  f"{k(pooled['run_to_run'])}; {elapsed:.1f} s")
    out = out or settings.data_dir / f"calibration-{scorer}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.as_dict(), indent=2))
    console.print(f"report written to {out}")


@app.command()
def calibrate(labels_dir: Path = typer.Argument(..., help="folder of labelled calls"),
              scorer: str = typer.Option("builtin", help="builtin or llm"),
              out: Optional[Path] = typer.Option(None, help="JSON report path")):
    """Measure a scorer against human labels: accuracy, Cohen's κ, abstentions, run-to-run."""
    _run(_calibrate, labels_dir, scorer, out)


def _label_export(out_dir: Path, sample: int, seed: int, redact: bool) -> None:
    import random

    import yaml
    from sqlmodel import select

    from core.calibration import labelling_document, labelling_header
    from core.db import session_scope
    from core.errors import InputError
    from core.models import Meeting
    from core.pipeline import transcript_view
    from core.redact import Redactor
    from core.rubrics import find_rubric, rubric_search
    from core.settings import get_settings

    if sample < 1:
        raise InputError("--sample must be at least 1")
    settings = get_settings()
    _migrate()
    rubrics = [find_rubric(key, rubric_search(settings))
               for key in settings.scoring.methodologies]
    out_dir.mkdir(parents=True, exist_ok=True)
    header = labelling_header(rubrics)
    org_id = _org_id()
    written = kept = 0
    with session_scope() as session:
        meetings = session.exec(select(Meeting).where(
            Meeting.org_id == org_id, Meeting.stage == "scored").order_by(Meeting.id)).all()
        if not meetings:
            raise InputError("there are no scored calls to export yet")
        picked = random.Random(seed).sample(meetings, min(sample, len(meetings)))
        for meeting in sorted(picked, key=lambda m: m.id):
            path = out_dir / f"call-{meeting.id}.yaml"
            if path.exists():  # a reviewer may be labelling it: never overwrite
                kept += 1
                continue
            view = transcript_view(session, meeting.id,
                                   settings.scoring.min_attribution_confidence)
            redactor = Redactor(settings.llm.redact_patterns) if redact else None
            document = labelling_document(path.stem, meeting.title, meeting.call_stage, view,
                                          rubrics, redactor)
            path.write_text(header + yaml.safe_dump(
                document, sort_keys=False, allow_unicode=True, width=100), encoding="utf-8")
            written += 1
    console.print(f"{written} calls written to {out_dir} for labelling"
                  + (f", {kept} already there kept as they are" if kept else "")
                  + ("" if redact else " (not redacted: they hold the calls' own words)")
                  + f". Replace each \"?\", then run: coachloop calibrate {out_dir}")


@app.command("label-export")
def label_export(out_dir: Path = typer.Argument(..., help="folder to write the calls to"),
                 sample: int = typer.Option(30, help="how many scored calls to pick"),
                 seed: int = typer.Option(1, help="the same seed picks the same calls"),
                 redact: bool = typer.Option(True, help="replace e-mails, phone, card and "
                                             "account numbers with placeholders")):
    """Export a sample of your scored calls for a reviewer to label; then `coachloop
    calibrate` measures the scorer against your own reviewers on your own calls."""
    _run(_label_export, out_dir, sample, seed, redact)


# ----------------------------------------------------------------------- crm ----


def _org_id() -> int:
    from core.db import session_scope
    from core.ingest import current_org
    from core.settings import get_settings

    with session_scope() as session:
        return current_org(session, get_settings().org.name).id


def _short(value: str | None, width: int = 48) -> str:
    if value is None or value == "":
        return "—"
    value = " ".join(str(value).split())
    return value if len(value) <= width else value[:width - 1] + "…"


def _crm_sync(apply: bool, include_synced: bool, show_skips: bool = False,
              deal: str | None = None, rep: str | None = None):
    from rich.markup import escape

    from connectors.crm_sync import sync_configured

    _migrate()
    report = sync_configured(_org_id(), apply=apply, include_synced=include_synced)
    if not report.calls and not report.writes:
        console.print("CRM: nothing to write back")
        return report
    titles = {c.meeting_id: c.title for c in report.calls}
    rep_of = {c.meeting_id: (c.rep_email or "").lower() for c in report.calls}

    def shown(record_id: str | None, meeting_id: int | None) -> bool:
        name = report.deal_names.get(record_id or "", "")
        return ((not deal or deal in (record_id, name)) and
                (not rep or rep_of.get(meeting_id) == rep.lower()))

    links = Table("call", "deal", "why", title="Calls → deals")
    for call in report.calls:
        match = report.deals[call.meeting_id]
        if not shown(match.record_id, call.meeting_id) and (deal or rep):
            continue
        name = report.deal_names.get(match.record_id or "", "")
        links.add_row(escape(_short(call.title, 40)),
                      escape(f"{name} ({match.record_id})" if name else match.record_id or "")
                      or "[yellow]not linked[/yellow]", escape(_short(match.reason, 70)))
    console.print(links)
    changes = Table("deal", "field", "policy", "current", "proposed", "evidence", "decision",
                    title="Field changes" + ("" if apply else " (plan: nothing written)"))
    for record_id, d in report.decisions:
        if d.status == "skip" and not show_skips and d.reason.startswith("not found"):
            continue
        if (deal or rep) and not shown(record_id, d.meeting_id):
            continue
        colour = {"write": "green", "review": "cyan", "unchanged": "dim",
                  "skip": "yellow"}[d.status]
        quote = ""
        if d.evidence:
            first = d.evidence[0]
            title = d.call_title or titles.get(d.meeting_id) or f"call {d.meeting_id}"
            quote = (f"{_short(title, 28)} {_clock(float(first.get('start', 0)))} "
                     f"\"{_short(first['quote'], 40)}\"")
        name = report.deal_names.get(record_id)
        changes.add_row(escape(_short(name, 24) if name else record_id), d.field,
                        d.policy.value, escape(_short(d.before, 24)),
                        escape(_short(d.after if d.status in ("write", "review") else None, 36)),
                        escape(quote), f"[{colour}]{d.status}[/{colour}]: "
                        + escape(_short(d.reason, 60)))
    console.print(changes)
    kinds: dict[str, int] = {}
    for write in report.writes:
        kinds[write.sobject] = kinds.get(write.sobject, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    waiting = sum(1 for _, d in report.decisions if d.status == "review")
    if not apply:
        console.print(f"plan: {summary} record(s) would be written; run `coachloop crm apply`")
    else:
        failed = report.failed
        console.print(f"applied: {summary} record(s), {len(failed)} failed "
                      f"(audit run {report.run_id})")
        for write, result in failed:
            console.print(f"[red]failed[/red] {escape(write.sobject)} {escape(write.ref)}: "
                          f"{escape(result.error or '')}")
    if waiting:
        console.print(f"{waiting} value(s) wait for approval: `coachloop crm review`")
    for note in report.skipped:
        console.print(f"[yellow]skipped:[/yellow] {escape(note)}")
    return report


@crm_app.command("plan")
def crm_plan(all_calls: bool = typer.Option(False, "--all", help="include calls already "
                                            "written back"),
             show_skips: bool = typer.Option(False, help="also list fields not found"),
             deal: Optional[str] = typer.Option(None, help="only this deal (CRM id or name)"),
             rep: Optional[str] = typer.Option(None, help="only calls of this rep (e-mail)")):
    """Show what write-back would change in the CRM (current vs proposed, and why)."""
    _run(_crm_sync, False, all_calls, show_skips, deal, rep)


@crm_app.command("apply")
def crm_apply(all_calls: bool = typer.Option(False, "--all", help="include calls already "
                                             "written back")):
    """Write call activities, skill scores and approved or auto-approved field values to the
    CRM (idempotent); values in review mode go to the review queue."""
    _run(_crm_sync, True, all_calls)


def _crm_setup(apply: bool, yes: bool) -> None:
    from connectors.crm_sync import connected_crm

    _migrate()
    org_id = _org_id()
    vendor = connected_crm(org_id)
    if vendor is None:
        raise CoachloopError("no CRM is connected: run `coachloop connect <crm>` first")
    if vendor.setup is None:
        console.print(f"{vendor.label} needs nothing created before write-back: its fields "
                      "are checked against the mapping on every run")
        return
    _offer_setup(vendor, org_id, apply, yes)


def _offer_setup(vendor, org_id: int, apply: bool, yes: bool) -> None:
    """Show what the CRM lacks for write-back; with `apply`, create it once an admin says
    yes (or `yes` was given)."""
    from core.settings import get_settings

    setup = vendor.load("setup")
    report = setup(org_id, get_settings(), apply=False)
    _print_setup(vendor.label, report)
    missing = any(s.status == "to create" for s in report.steps)
    if missing and not apply:
        console.print("run `coachloop crm setup --apply` to create them")
    if not missing or not apply:
        return
    if not yes and not typer.confirm(f"Create these in {vendor.label}?", default=False):
        console.print("nothing created: `coachloop crm setup --apply` does it later")
        return
    _print_setup(vendor.label, setup(org_id, get_settings(), apply=True))


def _print_setup(label: str, report) -> None:
    colours = {"to create": "yellow", "created": "green", "failed": "red", "conflict": "red"}
    table = Table("object", "what", "status", "note", title=f"{label}: what write-back needs")
    for step in report.steps:
        colour = colours.get(step.status, "dim")
        table.add_row(escape(step.object), escape(step.what),
                      f"[{colour}]{step.status}[/{colour}]", escape(step.note))
    if report.steps:
        console.print(table)
    else:
        console.print(f"{label} has everything write-back needs")
    for note in report.notes:
        console.print(escape(note), highlight=False)
    if any(s.status in ("failed", "conflict") for s in report.steps):
        raise CoachloopError("some of it could not be created: see the notes above")


@crm_app.command("setup")
def crm_setup(apply: bool = typer.Option(False, help="create what is missing (asks first)"),
              yes: bool = typer.Option(False, "--yes", "-y", help="don't ask")):
    """Show what the connected CRM lacks for write-back (properties, groups, a skill-score
    object) and, with --apply and an admin's yes, create it."""
    _run(_crm_setup, apply, yes)


def _reviewer(by: str | None) -> str:
    import getpass

    return by or os.environ.get("COACHLOOP_REVIEWER") or getpass.getuser()


def _crm_review(action: str | None, ids: list[int], all_pending: bool, deal: str | None,
                value: str | None, by: str | None, write: bool) -> None:
    from rich.markup import escape

    from core.db import session_scope
    from core.review import decide, queue

    _migrate()
    org_id = _org_id()
    if action is None:
        with session_scope() as session:
            pending = queue(session, org_id, deal=deal)
        if not pending:
            console.print("review queue: nothing waiting")
            return
        table = Table("id", "deal", "field", "current", "proposed", "evidence", "confidence",
                      title=f"CRM values waiting for approval ({len(pending)})")
        for p in pending:
            at = _clock(p.quote_at or 0.0)
            table.add_row(str(p.id), escape(f"{p.deal_name or p.record_id}"), p.field,
                          escape(_short(p.current, 24)), escape(_short(p.proposed, 40)),
                          escape(f"{_short(p.call_title, 28)} {at} \"{_short(p.quote, 48)}\""),
                          f"{p.confidence:.2f}" if p.confidence is not None else "—")
        console.print(table)
        console.print("approve / edit / reject: `coachloop crm review approve ID…` (or --all "
                      "[--deal D]), `… edit ID --value TEXT`, `… reject ID…`")
        return
    if not ids and not all_pending:
        _fail("name the proposal ids, or --all (with --deal to limit it to one deal)")
    with session_scope() as session:
        done = decide(session, org_id, ids or None, action, by=_reviewer(by), value=value,
                      deal=deal)
    verb = {"approve": "approved", "edit": "edited and approved", "reject": "rejected"}[action]
    console.print(f"{verb} {len(done)} value(s) as {escape(_reviewer(by))}")
    if action != "reject" and done and write:
        from connectors.crm_sync import crm_connected
        if crm_connected(org_id):
            _crm_sync(True, False)


@crm_app.command("review")
def crm_review(action: Optional[str] = typer.Argument(None, help="approve, edit or reject; "
                                                      "none: list what waits"),
               ids: list[int] = typer.Argument(None, help="proposal ids"),
               all_pending: bool = typer.Option(False, "--all", help="every pending value"),
               deal: Optional[str] = typer.Option(None, help="only this deal (CRM id or name)"),
               value: Optional[str] = typer.Option(None, help="edit: the value to write"),
               by: Optional[str] = typer.Option(None, help="who decides (default: you)"),
               write: bool = typer.Option(True, help="write approved values right away")):
    """The review queue: CRM values waiting for a person's approval, with their evidence."""
    _run(_crm_review, action, ids or [], all_pending, deal, value, by, write)


def _crm_history(deal: str | None, limit: int) -> None:
    from rich.markup import escape

    from core.db import session_scope
    from core.review import history

    _migrate()
    with session_scope() as session:
        entries = history(session, _org_id(), deal=deal, limit=limit)
    if not entries:
        console.print("CRM history: nothing yet")
        return
    table = Table("when", "deal", "field", "what", "before", "after", "by", title="CRM history")
    for e in entries:
        deal = f"{e.deal_name} ({e.record_id})" if e.deal_name else (e.record_id or "")
        table.add_row(e.at.strftime("%Y-%m-%d %H:%M"), escape(deal),
                      escape(e.field or ""), e.status, escape(_short(e.before, 24)),
                      escape(_short(e.after, 36)), escape(e.actor or "coachloop"))
    console.print(table)


@crm_app.command("history")
def crm_history(deal: Optional[str] = typer.Option(None, help="only this deal (CRM id)"),
                limit: int = typer.Option(200, help="newest N entries")):
    """Who approved, rejected or wrote what, with before and after."""
    _run(_crm_history, deal, limit)


def _crm_pull(full: bool) -> None:
    from connectors.crm_sync import crm_writer, pull_outcomes
    from core.settings import get_settings

    _migrate()
    org_id = _org_id()
    from core.db import session_scope
    from core.ingest import add_crm_users
    from core.models import Org

    _, writer = crm_writer(org_id, get_settings())
    try:
        count = pull_outcomes(org_id, writer, full=full)
        people = writer.list_users()
    finally:
        writer.close()
    with session_scope() as session:
        added = add_crm_users(session, session.get(Org, org_id), people)
    console.print(f"pulled {count} deal(s) from the CRM; {added} new person(s) from its "
                  f"user list (of {len(people)} active users; those on your domains can sign "
                  "in with single sign-on)")


@crm_app.command("pull")
def crm_pull(full: bool = typer.Option(False, help="pull every deal, not only changes")):
    """Pull deal outcomes (stage, amount, close date, won/lost) from the CRM."""
    _run(_crm_pull, full)


# --------------------------------------------------------------- connections ----


def _connect(provider: str, callback_url: str | None, follow: bool, yes: bool) -> None:
    from connectors.oauth_apps import (
        label as label_of,
        oauth_provider,
        replace_connection,
        replace_directly,
        start_connect,
    )
    from core.connections import ENDED, list_connections
    from core.db import session_scope
    from core.ingest import current_org
    from core.settings import get_settings
    from core.vendors import vendor as vendor_of

    settings = get_settings()
    _migrate()
    direct = vendor_of(provider).connects_directly(settings)
    if not direct:
        oauth_provider(provider, settings)  # unknown or unconfigured: say so before asking
    with session_scope() as session:
        org_id = current_org(session, settings.org.name).id
        existing = [c for c in list_connections(session, org_id, provider)
                    if c.status not in ENDED]
    label = label_of(provider)
    if existing and not yes:
        names = ", ".join(f"connection {c.id} (account {c.account_ref or '—'}, {c.status})"
                          for c in existing)
        console.print(escape(f"{label} is already connected: {names}."), highlight=False)
        if not typer.confirm(f"Replace it? The old connection is revoked at {label} first",
                             default=False):
            console.print("nothing changed")
            raise typer.Exit(1)
    if direct:  # no consent to ask for (a Google service account)
        info, ended = replace_directly(provider, org_id, settings)
    else:
        if not follow and not callback_url:
            url = start_connect(provider, org_id, settings)
            console.print(f"Open this URL, approve, then paste the address you land on:\n{url}")
            callback_url = typer.prompt("redirected URL")
        info, ended = replace_connection(provider, org_id, settings, callback_url)
    _print_ended(ended, "replaced")
    console.print(escape(f"connected {provider} (connection {info.id}, account "
                         f"{info.account_ref or '—'})"), highlight=False)
    _replay(org_id, provider, info.account_ref or None, failed=False)
    if vendor_of(provider).setup is not None:  # what write-back needs there, on approval
        _offer_setup(vendor_of(provider), org_id, apply=True, yes=yes)


def _replay(org_id: int, provider: str | None, account_ref: str | None, *,
            failed: bool) -> int:
    """Hand the workers the events that waited for this account (and, with `failed`, the
    org's events whose processing failed)."""
    import worker
    from core.db import session_scope
    from core.webhook_events import adopt_orphans, failed_events

    from core.vendors import with_a

    providers = [provider] if provider else [vendor.name for vendor in with_a("webhooks")]
    with session_scope() as session:
        ids = [i for p in providers for i in adopt_orphans(session, org_id, p, account_ref)]
        if failed:
            ids += failed_events(session, org_id)
    for event_id in ids:
        worker.handle_webhook.delay(event_id)
    if ids:
        console.print(f"{len(ids)} stored webhook event(s) handed to the workers")
    return len(ids)


def _print_ended(ended, verb: str) -> None:
    for e in ended:
        colour = "green" if e.revoked else "yellow"
        console.print(f"[{colour}]{verb}[/{colour}] " + escape(
            f"{e.provider} connection {e.id} (account {e.account or '—'}): {e.note}; "
            f"its tokens are deleted here"), highlight=False)


@app.command()
def connect(provider: str = typer.Argument(..., help="the vendor, e.g. zoom or salesforce"),
            callback_url: Optional[str] = typer.Option(None, help="the redirected URL, if you "
                                                       "already have it"),
            follow: bool = typer.Option(False, help="follow the consent URL yourself "
                                        "(sandbox vendors consent automatically)"),
            yes: bool = typer.Option(False, "--yes", "-y", help="replace an existing "
                                     "connection to this vendor without asking")):
    """Connect a vendor account with OAuth, without a browser on this machine (replaces the
    org's earlier connection to that vendor, after asking)."""
    _run(_connect, provider, callback_url, follow, yes)


def _connections() -> None:
    from connectors.oauth_apps import check_connections
    from core.settings import get_settings

    _migrate()
    rows = check_connections(_org_id(), get_settings())
    table = Table("id", "provider", "account", "status", "scopes", "last sync",
                  "last error / what to do", title="Connections (checked live)")
    colours = {"active": "green", "unreachable": "yellow", "broken": "red"}
    for c in rows:
        colour = colours.get(c.status, "dim")
        account = c.account or "—"
        if c.note:
            account += f" · {c.note}"
        table.add_row(str(c.id), c.provider, escape(account),
                      f"[{colour}]{c.status}[/{colour}]", escape(" ".join(c.scopes) or "—"),
                      c.last_sync_at.isoformat(timespec="minutes") if c.last_sync_at else "—",
                      escape(c.problem or ""))
    if not rows:
        from connectors.oauth_apps import oauth_vendors

        console.print("no connections yet: "
                      + " or ".join(f"`coachloop connect {name}`" for name in oauth_vendors()))
        return
    console.print(table)
    for c in rows:
        if c.status in ("broken", "unreachable"):
            console.print(f"[{colours[c.status]}]{c.status}:[/] {escape(c.problem or '')}",
                          highlight=False, soft_wrap=True)


@app.command()
def connections():
    """Vendor connections checked live: status, account, scopes, last sync, what to fix."""
    _run(_connections)


def _disconnect(provider: str, yes: bool) -> None:
    from connectors.oauth_apps import end_connections, label as label_of, oauth_provider
    from core.connections import ENDED, list_connections
    from core.db import session_scope
    from core.errors import ConfigError
    from core.settings import get_settings

    settings = get_settings()
    _migrate()
    org_id = _org_id()
    try:  # an unknown vendor stops here
        oauth_provider(provider, settings)
    except ConfigError:
        pass  # unconfigured: it cannot be revoked there, but its tokens still go here
    with session_scope() as session:
        live = [c for c in list_connections(session, org_id, provider) if c.status not in ENDED]
    if not live:
        console.print(escape(f"no {provider} connection to disconnect"), highlight=False)
        return
    label = label_of(provider)
    if not yes and not typer.confirm(
            f"Disconnect {label} (connection {', '.join(str(c.id) for c in live)})? Its "
            f"tokens are revoked at {label} and deleted here", default=False):
        console.print("nothing changed")
        raise typer.Exit(1)
    ended = end_connections(org_id, provider, settings, status="disconnected")
    _print_ended(ended, "disconnected")
    if not all(e.revoked for e in ended):
        console.print(escape(f"{label} did not confirm the revocation: remove the app's "
                             f"access in {label}'s own admin settings to be sure"),
                      style="yellow", highlight=False)


@app.command()
def disconnect(provider: str = typer.Argument(..., help="the vendor, e.g. zoom or salesforce"),
               yes: bool = typer.Option(False, "--yes", "-y", help="don't ask")):
    """Revoke the org's connection to a vendor there, delete its tokens here, and mark it
    disconnected (the row stays for the audit)."""
    _run(_disconnect, provider, yes)


@app.command()
def keygen():
    """Print a new encryption key for COACHLOOP_ENCRYPTION_KEYS (put it first to rotate)."""
    from core.crypto import generate_key

    console.print(generate_key())


# ---------------------------------------------------------------------- demo ----


def _demo(fresh: bool, rep: str | None, crm: str, serve: bool = False) -> None:
    """The whole loop on the embedded default, against the sandboxes: connect the meeting
    platform and the CRM with OAuth, prepare the CRM, receive the platform's signed webhooks,
    transcribe and score, write back, pull deal outcomes, and show the skills and the CRM
    diff."""
    import os

    from sqlmodel import func, select

    from connectors.crm_sync import sync_configured
    from connectors.files import load_team
    from core.db import session_scope
    from core.ingest import apply_team, ensure_org
    from core.models import Meeting
    from core.skill_refresh import refresh_skills
    from core.settings import get_settings
    from core.vendors import vendor as vendor_of
    from sandbox.run import start_sandboxes
    from sandbox.synthetic_outcomes import seed_history

    label = vendor_of(crm).label
    if vendor_of(crm).writer is None:
        raise CoachloopError(f"{label} is not a CRM coachloop writes to")
    settings = get_settings()
    if fresh and not settings.database_url:
        db = settings.data_dir / "coachloop.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        from core.db import engine_for
        engine_for.cache_clear()
    boxes = start_sandboxes(settings.data_dir / "sandbox", teams=True, meet=True)
    calls = len(boxes.zoom_meetings) + len(boxes.teams_calls) + len(boxes.meet_calls)
    platforms = [boxes.source] + (["teams"] if boxes.teams_calls else []) + (
        ["meet"] if boxes.meet_calls else [])
    labels = [vendor_of(p).label for p in platforms]
    console.rule(f"coachloop demo: {calls} "
                 + (", ".join(labels[:-1]) + " and " if len(labels) > 1 else "") + labels[-1]
                 + f" calls → scores and skills → {label}")
    os.environ.update(boxes.settings())
    get_settings.cache_clear()
    settings = get_settings()
    api_server = None
    try:
        _migrate()
        team = load_team(DEMO_DIR)
        with session_scope() as session:
            org = ensure_org(session, team.org.name, list(team.org.domains))
            apply_team(session, org, team.members())
            org_id = org.id
        if seed_history(org_id):
            console.print("added a synthetic year of history: 24 reps under their own manager, "
                          "a scored call a week each and 480 closed deals (marked synthetic; "
                          "never sent to a CRM), so outcomes have enough deals to analyse",
                          highlight=False)
        for line in boxes.describe():
            console.print(line, highlight=False)
        boxes.add_workspace_users(org_id)  # the history's reps are the Workspace's too
        replaced = _demo_connect(org_id, settings, platforms, crm)
        if vendor_of(crm).setup is not None:  # the demo's admin approves what it creates
            done = vendor_of(crm).load("setup")(org_id, settings, apply=True)
            console.print(f"{label} set up: {sum(s.status == 'created' for s in done.steps)} "
                          f"thing(s) created; " + "; ".join(done.notes), highlight=False)
        api_server = _serve_api(boxes.tls)
        console.print(boxes.deliver_meetings(api_server.url), highlight=False)
        if boxes.teams_calls:
            console.print(_demo_teams(org_id, boxes, settings, api_server.url),
                          highlight=False)
        if boxes.meet_calls:
            from connectors.meet.webhooks import push_audience

            console.print(boxes.deliver_meet(api_server.url, push_audience(settings)),
                          highlight=False)
        _wait_for_calls(calls)
        with session_scope() as session:
            latest = session.exec(select(func.max(Meeting.started_at))).one()
        as_of = latest.date() if latest else None
        refresh_skills(org_id, as_of)  # the demo calls are dated Sep–Nov 2026
        # This refresh's skill scores; after an earlier run, every call too: this run's
        # CRM sandbox starts empty, whatever the earlier one (or another CRM) was sent.
        report = sync_configured(org_id, include_synced=bool(replaced - set(platforms)))
        if report.failed:
            raise CoachloopError(f"{len(report.failed)} CRM write(s) failed: "
                                 + "; ".join(r.error or "" for _, r in report.failed[:3]))
        _demo_outcomes(org_id, boxes, crm, api_server.url)
        members = {m.email for m in team.members()}
        _team_report(as_of, 90, members)
        _rep_report(rep or _demo_rep(as_of, members), as_of, 90)
        _agenda(_demo_rep(as_of, members, weakest=True), as_of, 90)
        _crm_diff(org_id, boxes, crm)
        console.rule("Skills against won and lost deals (with a synthetic year of history)")
        _outcomes_report(None, 90)
        _how_to_sign_in()
        _demo_app(org_id, team, serve)
    finally:
        if api_server is not None:
            api_server.stop()
        boxes.stop()


def _demo_outcomes(org_id: int, boxes, crm: str, api_url: str) -> None:
    """Pull the deals' outcomes; where the CRM sandbox pushes deal changes (HubSpot's signed
    webhooks), close one deal there and watch the pull it sets off."""
    from sqlmodel import select

    from api import wait_for_local_events
    from connectors.crm_sync import crm_writer, pull_outcomes
    from core.db import session_scope
    from core.models import Deal
    from core.settings import get_settings

    _, writer = crm_writer(org_id, get_settings())
    try:
        pulled = pull_outcomes(org_id, writer)
    finally:
        writer.close()
    with session_scope() as session:
        deals = session.exec(select(Deal).where(Deal.org_id == org_id, Deal.crm == crm)).all()
    console.print(f"pulled {pulled} deal(s) from {crm}: {sum(d.is_won for d in deals)} won, "
                  f"{sum(d.is_closed and not d.is_won for d in deals)} lost, "
                  f"{sum(not d.is_closed for d in deals)} open")
    moved = boxes.close_a_deal(crm, f"{api_url}/webhooks/{crm}")
    if moved is None:
        return
    wait_for_local_events()
    with session_scope() as session:
        deal = session.exec(select(Deal).where(Deal.org_id == org_id, Deal.crm == crm,
                                               Deal.external_id == moved)).first()
    state = "won" if deal and deal.is_won else "not yet pulled" if deal is None else deal.stage
    console.print(escape(f"{crm} signed a webhook when {deal.name if deal else moved!r} was "
                         f"closed there; coachloop verified it and pulled the deal: {state}"),
                  highlight=False)


DEMO_ADMIN = "admin@acme-analytics.example"


def _demo_app(org_id: int, team, serve: bool) -> None:
    """The web app on the public URL with a fresh demo password for an admin, the team's
    manager and a rep: kept running until Ctrl-C when `serve`, else how to start it."""
    import secrets

    from sqlmodel import select

    from core.auth import set_password
    from core.db import session_scope
    from core.models import User
    from core.settings import get_settings

    members = list(team.members())
    people = [DEMO_ADMIN, next(m.email for m in members if m.role == "manager"),
              next(m.email for m in members if m.role == "rep")]
    password = "-".join(secrets.token_urlsafe(4) for _ in range(3))
    with session_scope() as session:
        if session.exec(select(User).where(User.org_id == org_id,
                                           User.email == DEMO_ADMIN)).first() is None:
            session.add(User(org_id=org_id, email=DEMO_ADMIN, name="Demo Admin", role="admin"))
            session.flush()
        for user in session.exec(select(User).where(User.org_id == org_id,
                                                    User.email.in_(people))):
            user.disabled = False
            set_password(user, password)
            session.add(user)
    url = get_settings().public_url.rstrip("/")
    console.print(Panel(
        f"The app: {url}/app\n"
        f"Demo sign-in (this run's password: {password}):\n"
        f"  admin    {people[0]}   (connections, CRM review, settings)\n"
        f"  manager  {people[1]}   (team heatmap, trends, outcomes)\n"
        f"  rep      {people[2]}   (their own skills, calls and deals)",
        title="Open the web app"), highlight=False)
    if not serve:
        console.print(f"`coachloop serve` serves it at {url} (run `make demo` in a terminal to "
                      "keep it and the sandboxes running).", highlight=False)
        return
    _serve_app(url, until_interrupted=True)


def _serve_app(url: str, *, until_interrupted: bool) -> None:
    """The app on the public URL's loopback port over plain HTTP (the embedded default)."""
    from urllib.parse import urlsplit

    from api import create_app
    from sandbox.server import serve

    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
        raise CoachloopError(f"the public URL {url} is not a plain-HTTP loopback address: "
                             "serve api:app behind your own TLS proxy there")
    try:
        server = serve(create_app(), None, port=parts.port or 80)
    except RuntimeError:
        raise CoachloopError(f"port {parts.port} is taken: set COACHLOOP_PUBLIC_URL to "
                             "another port (e.g. http://127.0.0.1:8001)") from None
    console.print(f"Serving {url}/app — Ctrl-C stops it.", highlight=False)
    _warm_outcomes()
    try:
        while until_interrupted:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def _warm_outcomes() -> None:
    """Profile the closed deals in the background, so the first Outcomes view is quick."""
    import threading

    from core.outcomes import warm_profiles

    def warm() -> None:
        try:
            warm_profiles()
        except Exception:  # noqa: BLE001 - only a head start: the page computes it anyway
            logging.getLogger("coachloop.cli").warning("warming the outcomes failed",
                                                       exc_info=True)

    threading.Thread(target=warm, name="warm-outcomes", daemon=True).start()


@app.command("serve")
def serve_app():
    """Serve the web app and the API on the public URL (plain HTTP on loopback: the embedded
    default) until Ctrl-C. Elsewhere run `uvicorn api:app` behind TLS."""
    from core.settings import get_settings

    _migrate()
    _run(_serve_app, get_settings().public_url.rstrip("/"), until_interrupted=True)


def _how_to_sign_in() -> None:
    from core.settings import get_settings

    url = get_settings().public_url.rstrip("/")
    console.print(Panel(
        "The API needs a sign-in. Serve it with `uvicorn api:app`, then:\n"
        "  people: `coachloop users invite you@acme-analytics.example --role admin` prints a "
        "one-time link (or POST /auth/accept), then POST /auth/login; single sign-on: set "
        "COACHLOOP_OIDC__ISSUER, __CLIENT_ID, __CLIENT_SECRET and open "
        f"{url}/auth/oidc/login\n"
        "  machines: `coachloop tokens create \"BI export\" --scope read`, sent as "
        "`Authorization: Bearer <token>`\n"
        f"  the API's pages: {url}/docs", title="Sign in"))


def _demo_connect(org_id: int, settings, sources: list[str], crm: str) -> set[str]:
    """Connect the meeting platforms' and the CRM's sandboxes with OAuth. An earlier run's connections point at
    sandboxes that stopped with it (random ports, tokens held in memory): they are replaced,
    so the org keeps one active connection per vendor and every call goes to this run's
    sandboxes; an org writes to one CRM, so another CRM's connection is ended."""
    from connectors.oauth_apps import end_connections, replace_connection, replace_directly
    from core.vendors import vendor as vendor_of, with_a

    replaced = set()
    for other in with_a("writer"):
        if other.name != crm and end_connections(org_id, other.name, settings,
                                                 status="replaced"):
            replaced.add(other.name)  # the calls it was sent are due again in this CRM
    for provider in (*sources, crm):
        how = "with OAuth"
        if vendor_of(provider).connects_directly(settings):  # Google: a service account
            info, ended = replace_directly(provider, org_id, settings)
            how = "through a service account with domain-wide delegation"
        else:
            info, ended = replace_connection(provider, org_id, settings)
        note = ""
        if ended:
            replaced.add(provider)
            note = (f" [dim](an earlier run's sandbox has stopped: connection "
                    f"{', '.join(str(e.id) for e in ended)} replaced)[/dim]")
        console.print(f"connected {provider} {how} (connection {info.id}){note}")
    return replaced


def _demo_teams(org_id: int, boxes, settings, api_url: str) -> str:
    """Subscribe to the Teams sandbox's transcripts and recordings with this run's API as the
    notification URL (Graph validates it first), then let Graph notify the demo's Teams
    calls. The configured public URL is plain HTTP on loopback, which Graph would refuse."""
    from connectors.teams.source import TeamsSource
    from connectors.teams.subscriptions import ensure_subscriptions

    source = TeamsSource.for_org(org_id, settings)
    try:
        states = ensure_subscriptions(
            source.api, org_id=org_id, connection_id=source.connection_id,
            settings=settings.model_copy(update={"public_url": api_url}))
    finally:
        source.close()
    failed = [s for s in states if s.status != "active"]
    if failed:
        raise CoachloopError("Teams subscriptions failed: " + "; ".join(map(str, failed)))
    return (f"Graph validated {api_url}/webhooks/teams and holds {len(states)} "
            f"subscriptions\n" + boxes.deliver_teams())


def _serve_api(tls):
    """coachloop's API on HTTPS loopback, so the sandboxes can deliver webhooks to it."""
    from api import create_app
    from sandbox.server import serve

    return serve(create_app(), tls)


def _wait_for_calls(total: int) -> None:
    """The in-process queue downloads, transcribes, scores and writes back the delivered
    calls, one at a time: show its progress until it is empty."""
    import threading

    from sqlmodel import select

    from api import wait_for_local_events
    from core.db import session_scope
    from core.models import Meeting

    with Progress(TextColumn("calls"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("", total=total)
        waiter = threading.Thread(target=wait_for_local_events, daemon=True)
        waiter.start()
        while waiter.is_alive():
            with session_scope() as session:
                done = sum(1 for m in session.exec(select(Meeting))
                           if m.stage in ("scored", "failed"))
            progress.update(task, completed=done)
            waiter.join(timeout=0.5)
        progress.update(task, completed=total)
    with session_scope() as session:
        failed = [m for m in session.exec(select(Meeting)) if m.stage == "failed"]
    for meeting in failed:
        console.print(f"[red]meeting {meeting.title} failed:[/red] {meeting.error}")


def _crm_diff(org_id: int, boxes, crm: str) -> None:
    """What changed in the CRM, from the audit trail, and what it now holds."""
    from sqlmodel import select

    from connectors.oauth_apps import label as label_of
    from core.db import session_scope
    from core.models import CrmWrite
    from core.review import queue

    with session_scope() as session:
        rows = session.exec(select(CrmWrite).where(CrmWrite.org_id == org_id,
                                                   CrmWrite.crm == crm,
                                                   CrmWrite.field.is_not(None),
                                                   CrmWrite.status == "written")
                            .order_by(CrmWrite.record_id, CrmWrite.id)).all()
    names = boxes.deal_names(crm)
    table = Table("deal", "field", "policy", "before", "after", title=f"{label_of(crm)}: "
                  "fields written (audit trail; our AI copies, no review needed)")
    for row in rows:
        table.add_row(escape(_short(names.get(row.record_id, row.record_id), 34)),
                      row.field or "", row.policy, escape(_short(row.before, 16)),
                      escape(_short(row.after, 60)))
    console.print(table)
    with session_scope() as session:
        pending = queue(session, org_id)
    review = Table("id", "deal", "rep's field", "proposed", "evidence", "confidence",
                   title="Waiting for a person's approval (review mode: nothing is written to "
                         "a rep's field before it is approved)")
    for p in pending:
        review.add_row(str(p.id), escape(_short(names.get(p.record_id, p.record_id), 30)),
                       p.field, escape(_short(p.proposed, 40)),
                       escape(f"{_clock(p.quote_at or 0.0)} \"{_short(p.quote, 44)}\""),
                       f"{p.confidence:.2f}" if p.confidence is not None else "—")
    console.print(review)
    console.print(f"{len(pending)} value(s) wait in `coachloop crm review` "
                  "(approve, edit or reject)")
    console.print(boxes.crm_summary(crm))


def _demo_rep(as_of: date | None, members: set[str], weakest: bool = False) -> str:
    """The demo team's top rep (their card shows strengths with quotes as well as gaps), or
    its weakest (whose coaching agenda has the most to say)."""
    from core import reports
    from core.db import session_scope
    from core.ingest import current_org
    from core.settings import get_settings

    with session_scope() as session:
        org = current_org(session, get_settings().org.name)
        rows = reports.team_table(session, _scope(session, org.id, members), as_of=as_of,
                                  window_days=90).rows
    if not rows:
        raise CoachloopError("the demo produced no skill scores")
    mean = lambda r: sum(s.shrunk or 0 for s in r.skills.values()) / max(1, len(r.skills))  # noqa: E731
    pick = min if weakest else max
    return pick(rows, key=lambda r: (mean(r), r.rep.email)).rep.email


@app.command()
def demo(fresh: bool = typer.Option(False, help="start from an empty demo database"),
         rep: Optional[str] = typer.Option(None, help="whose scorecard to show (email)"),
         crm: Optional[str] = typer.Option(None, help="the CRM sandbox to write back to "
                                           "(default: the demo's own)"),
         serve: Optional[bool] = typer.Option(None, help="keep the web app (and the "
                                              "sandboxes) running at the end until Ctrl-C "
                                              "(default: when run in a terminal)")):
    """The whole loop on the demo calls, through the meeting-platform and CRM sandboxes;
    then the web app, with a demo sign-in for an admin, a manager and a rep."""
    import sys

    from sandbox.run import DEMO_CRM

    _run(_demo, fresh, rep, crm or DEMO_CRM, sys.stdin.isatty() if serve is None else serve)


def _sandbox(ports: dict[str, int]) -> None:
    from core.settings import get_settings
    from sandbox.run import SANDBOX_PORTS, start_sandboxes

    unknown = set(ports) - set(SANDBOX_PORTS)
    if unknown:
        raise CoachloopError(f"no sandbox for {', '.join(sorted(unknown))} (there are: "
                             f"{', '.join(SANDBOX_PORTS)})")
    boxes = start_sandboxes(get_settings().data_dir / "sandbox",
                            ports={**SANDBOX_PORTS, **ports})
    for line in boxes.describe():
        console.print(line, highlight=False)
    console.print("Point coachloop at them (e.g. in .env), then `coachloop connect <vendor> "
                  "--follow` for each:")
    for key, value in boxes.settings().items():
        console.print(f"{key}={value}", highlight=False, soft_wrap=True)
    console.print("Ctrl-C stops them (their data lives in memory).")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        boxes.stop()


@app.command()
def sandbox(port: list[str] = typer.Option([], help="VENDOR=PORT (0: any free port); "
                                           "default: 8710, 8711, 8712… in vendor order")):
    """Run every vendor sandbox (seeded with the demo org) until Ctrl-C."""
    ports = {}
    for item in port:
        name, _, number = item.partition("=")
        if not number.isdigit():
            _fail(f"--port takes VENDOR=PORT, not {item!r}", 2)
        ports[name] = int(number)
    _run(_sandbox, ports)


if __name__ == "__main__":
    app()


# ------------------------------------------------------------- sign-in and tokens ----


def _invite(email: str, role: str, name: str | None) -> str:
    from core.auth import invite
    from core.db import session_scope
    from core.settings import get_settings

    _migrate()
    with session_scope() as session:
        invitation, secret = invite(session, _org_id(), email, name=name, role=role,
                                    by="coachloop cli")
        expires = invitation.expires_at
    link = f"{get_settings().public_url.rstrip('/')}/auth/accept#{secret}"
    console.print(f"invited {escape(email)} as {role}; the link works once, until "
                  f"{expires:%Y-%m-%d %H:%M} UTC:\n  {link}\n"
                  f"(or POST /auth/accept with {{\"token\": \"{secret}\", \"password\": ...}})")
    return secret


@users_app.command("invite")
def users_invite(email: str = typer.Argument(..., help="their e-mail address"),
                 role: str = typer.Option("rep", help="rep, manager or admin"),
                 name: Optional[str] = typer.Option(None, help="display name")):
    """Invite someone to sign in with a password: prints a link that works once and expires
    (people in the roster keep their role)."""
    _run(_invite, email, role, name)


def _users() -> None:
    from sqlmodel import select

    from core.db import session_scope
    from core.models import User

    _migrate()
    table = Table("email", "name", "role", "sign-in", title="People")
    with session_scope() as session:
        for user in session.exec(select(User).where(User.org_id == _org_id())
                                 .order_by(User.email)):
            state = ("disabled" if user.disabled else "password" if user.password_hash
                     else "not yet (invite them)")
            table.add_row(escape(user.email), escape(user.name), user.role, state)
    console.print(table)


def _disable(email: str) -> None:
    from core.auth import disable_user
    from core.db import session_scope

    with session_scope() as session:
        ended = disable_user(session, _org_id(), email)
    console.print(f"{escape(email)} can no longer sign in; {ended} session(s) ended")


@users_app.command("disable")
def users_disable(email: str = typer.Argument(..., help="their e-mail address")):
    """Stop someone signing in (password and SSO) and end their sessions at once; their
    calls and scores stay. A new invitation lets them in again."""
    _run(_disable, email)


@users_app.command("list")
def users_list():
    """Everyone in the org, with their role and whether they can sign in."""
    _run(_users)


def _token_create(name: str, scopes: list[str]) -> None:
    from core.auth import create_token
    from core.db import session_scope

    _migrate()
    with session_scope() as session:
        row, secret = create_token(session, _org_id(), name, scopes, by="coachloop cli")
        token_id = row.id
    console.print(f"API token {token_id} ({escape(name)}, scopes {', '.join(scopes)}). It is "
                  f"shown once; send it as `Authorization: Bearer <token>`:\n{secret}")


@tokens_app.command("create")
def tokens_create(name: str = typer.Argument(..., help="what uses it, e.g. 'BI export'"),
                  scope: list[str] = typer.Option(["read"], help="read, review or admin "
                                                  "(repeat for several)")):
    """Create an API token: stored hashed, shown once."""
    _run(_token_create, name, scope)


def _token_list() -> None:
    from core.auth import list_tokens
    from core.db import session_scope

    _migrate()
    table = Table("id", "name", "prefix", "scopes", "created", "last used", "state",
                  title="API tokens")
    with session_scope() as session:
        for t in list_tokens(session, _org_id()):
            table.add_row(str(t.id), escape(t.name), t.prefix + "…", ", ".join(t.scopes),
                          f"{t.created_at:%Y-%m-%d}", f"{t.last_used_at:%Y-%m-%d %H:%M}"
                          if t.last_used_at else "never",
                          "revoked" if t.revoked_at else "active")
    console.print(table)


@tokens_app.command("list")
def tokens_list():
    """The org's API tokens (never their secrets), with when each was last used."""
    _run(_token_list)


def _token_revoke(token_id: int) -> None:
    from core.auth import revoke_token
    from core.db import session_scope

    with session_scope() as session:
        revoke_token(session, _org_id(), token_id)
    console.print(f"API token {token_id} revoked: it stops working at once")


@tokens_app.command("revoke")
def tokens_revoke(token_id: int = typer.Argument(...)):
    """Revoke an API token."""
    _run(_token_revoke, token_id)


@webhooks_app.command("replay")
def webhooks_replay(failed: bool = typer.Option(False, help="also events whose processing "
                                                "failed (after fixing the cause)"),
                    account: Optional[str] = typer.Option(None, help="only events for this "
                                                          "vendor account (default: any not "
                                                          "yet connected)")):
    """Process stored webhook events that arrived before their account was connected (they
    are kept, never dropped), and with --failed the ones that failed."""
    def replay() -> None:
        _migrate()
        if not _replay(_org_id(), None, account, failed=failed):
            console.print("no stored webhook events are waiting")

    _run(replay)
