"""The demo's calls and team as the platform emulators seed them: which calls a platform
delivers (by the transcript format it makes), and the team (`team.yaml`) with its domains
and reps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoTeam:
    users: list[dict]       # name, email, role, as in team.yaml
    domains: frozenset[str]  # the org's own e-mail domains, lower case
    reps: frozenset[str]     # the reps' e-mails, lower case

    def ours(self, email: str) -> bool:
        return email.rsplit("@", 1)[-1].lower() in self.domains


def calls_with_transcript(demo_dir: str | Path, suffix: str) -> frozenset[str]:
    """The demo calls (manifest stems) whose platform transcript has `suffix` and that name
    their participants."""
    import yaml

    stems = set()
    for manifest in Path(demo_dir).glob("*.yaml"):
        call = yaml.safe_load(manifest.read_text(encoding="utf-8")) or {}
        if str(call.get("transcript") or "").endswith(suffix) and call.get("participants"):
            stems.add(manifest.stem)
    return frozenset(stems)


def demo_team(demo_dir: str | Path) -> DemoTeam:
    """The team file beside the calls (or one folder up); empty when there is none."""
    import yaml

    demo_dir = Path(demo_dir)
    team = {}
    for team_file in (demo_dir / "team.yaml", demo_dir.parent / "team.yaml"):
        if team_file.is_file():
            team = yaml.safe_load(team_file.read_text(encoding="utf-8")) or {}
            break
    users = list(team.get("users") or [])
    return DemoTeam(users, frozenset(d.lower() for d in (team.get("org") or {}).get("domains")
                                     or ()),
                    frozenset(u["email"].lower() for u in users if u.get("role") == "rep"))
