"""`team.yaml`: our organisation and its people, next to the meeting manifests.

```yaml
org: {name: Acme Analytics, domains: [acme-analytics.example]}
users:
  - {name: Maya Chen, email: maya.chen@acme-analytics.example, role: rep,
     manager: lee.wong@acme-analytics.example}
  - {name: Lee Wong, email: lee.wong@acme-analytics.example, role: manager}
```
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from connectors.files.document import Document, FieldError, input_error, single_file
from connectors.files.fields import Email, Text
from core.domain import TeamMember

TEAM_FILE_NAMES = ("team.yaml", "team.yml")

_DOMAIN = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")


def _normalize_domain(value: str) -> str:
    value = value.strip().lower().removeprefix("@")
    if not _DOMAIN.match(value):
        raise ValueError(f"not an email domain: {value!r}")
    return value


class OrgInfo(BaseModel):
    """Our organisation: its name and the email domains that mark someone as one of us."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Text
    domains: tuple[Annotated[str, AfterValidator(_normalize_domain)], ...] = Field(min_length=1)


class TeamUser(BaseModel):
    """A person in our organisation and who manages them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Text
    email: Email
    role: Literal["rep", "manager", "admin"]
    manager: Email | None = None


class TeamFile(BaseModel):
    """The contents of `team.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    org: OrgInfo
    users: tuple[TeamUser, ...] = ()

    def members(self) -> list[TeamMember]:
        """The roster as the core takes it."""
        return [TeamMember(u.name, u.email, u.role, u.manager) for u in self.users]


def load_team(folder: str | Path) -> TeamFile | None:
    """Read `team.yaml` (or `team.yml`) from `folder`; None when there is none.

    Raises `InputError` naming the file, line and field of the first problem.
    """
    path = single_file(Path(folder), TEAM_FILE_NAMES)
    if path is None:
        return None
    doc = Document.read(path)
    team, errors = doc.validate(TeamFile)
    if team is not None:
        errors = _manager_errors(team, doc)
    if errors:
        raise input_error(path, errors)
    return team


def _manager_errors(team: TeamFile, doc: Document) -> list[FieldError]:
    errors: list[FieldError] = []
    index_of: dict[str, int] = {}
    for index, user in enumerate(team.users):
        if user.email in index_of:
            errors.append(doc.error(("users", index, "email"),
                                    f"duplicate user email {user.email} "
                                    f"(also users.{index_of[user.email]})"))
        else:
            index_of[user.email] = index
    manager_of = {user.email: user.manager for user in team.users}
    for index, user in enumerate(team.users):
        if user.manager is None:
            continue
        if user.manager not in index_of:
            errors.append(doc.error(("users", index, "manager"),
                                    f"manager {user.manager} is not one of the users"))
            continue
        seen, current = {user.email}, user.manager
        while current is not None and current not in seen:
            seen.add(current)
            current = manager_of.get(current)
        if current == user.email:
            errors.append(doc.error(("users", index, "manager"),
                                    f"{user.email} ends up managing themselves through the "
                                    "manager chain"))
    return errors
