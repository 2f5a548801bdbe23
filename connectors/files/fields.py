"""Value types shared by the schemas of the folder's files (manifests, team.yaml, deals.yaml)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainValidator, StringConstraints

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _normalize_email(value: str) -> str:
    value = value.strip().lower()
    if not _EMAIL.match(value):
        raise ValueError(f"not an email address: {value!r}")
    return value


def _id_from_number(value: object) -> object:
    # YAML reads `deal: 2024` or `external_id: 17` as numbers; ids are text.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Email = Annotated[str, AfterValidator(_normalize_email)]
"""An email address, stripped and lower-cased so it compares equal wherever it appears."""

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
"""Non-empty text, stripped."""

ExternalId = Annotated[Text, BeforeValidator(_id_from_number)]
"""An identifier from another system; numbers are read as their text."""


_ISO_DATE_TIME = re.compile(r"^\d{4}-?\d{2}-?\d{2}[T ]\d{2}")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _utc_datetime(value: object) -> datetime:
    if isinstance(value, str) and _ISO_DATE_TIME.match(value.strip()):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
    if not isinstance(value, datetime):
        if isinstance(value, date):
            raise ValueError(f"{value.isoformat()} has no time of day; give a date and time "
                             "like 2026-10-05T15:00:00Z")
        raise ValueError(f"not an ISO 8601 date and time like 2026-10-05T15:00:00Z: {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _calendar_date(value: object) -> date:
    if isinstance(value, str) and _ISO_DATE.match(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    elif isinstance(value, date) and not isinstance(value, datetime):
        return value
    raise ValueError(f"not a date in the form YYYY-MM-DD: {value!r}")


UtcDateTime = Annotated[datetime, PlainValidator(_utc_datetime)]
"""An ISO 8601 date and time, converted to UTC; one without an offset is taken as UTC."""

CalendarDate = Annotated[date, PlainValidator(_calendar_date)]
"""A calendar date written YYYY-MM-DD."""
