"""`deals.yaml`: the deals that meetings in the folder belong to, as a CRM would report them.

```yaml
deals:
  - external_id: OPP-NW-001
    name: Northwind analytics rollout
    account: Northwind Traders
    owner: maya.chen@acme-analytics.example
    stage: Discovery
    amount: 48000
    close_date: 2026-12-15
    is_closed: false
    is_won: false
    contacts: [sam.patel@northwind.example]
```
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.files.document import Document, FieldError, input_error, single_file
from connectors.files.fields import CalendarDate, Email, ExternalId, Text
from core.domain import DealRecord

DEALS_FILE_NAMES = ("deals.yaml", "deals.yml")


class DealInfo(BaseModel):
    """One deal: who owns it, where it stands, and who the buyer-side contacts are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    external_id: ExternalId
    name: Text
    account: Text | None = None
    owner: Email | None = None
    stage: Text | None = None
    amount: Decimal | None = Field(None, ge=0)
    close_date: CalendarDate | None = None
    is_closed: bool = False
    is_won: bool = False
    contacts: tuple[Email, ...] = ()

    def to_record(self) -> DealRecord:
        """The deal as the core takes it."""
        return DealRecord(crm="files", external_id=self.external_id, name=self.name,
                          account=self.account, owner_email=self.owner, stage=self.stage,
                          amount=float(self.amount) if self.amount is not None else None,
                          close_date=self.close_date, is_closed=self.is_closed,
                          is_won=self.is_won, contact_emails=tuple(self.contacts))

    @model_validator(mode="after")
    def _won_deals_are_closed(self) -> DealInfo:
        if self.is_won and not self.is_closed:
            raise ValueError("is_won is true but is_closed is false; a won deal is closed")
        return self


class _DealsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    deals: tuple[DealInfo, ...] = ()


def load_deals(folder: str | Path) -> list[DealInfo]:
    """Read `deals.yaml` (or `deals.yml`) from `folder`; an empty list when there is none.

    Raises `InputError` naming the file, line and field of the first problem.
    """
    path = single_file(Path(folder), DEALS_FILE_NAMES)
    if path is None:
        return []
    doc = Document.read(path)
    parsed, errors = doc.validate(_DealsFile)
    if parsed is not None:
        errors = _duplicate_errors(parsed.deals, doc)
    if errors:
        raise input_error(path, errors)
    return list(parsed.deals)


def _duplicate_errors(deals: tuple[DealInfo, ...], doc: Document) -> list[FieldError]:
    errors: list[FieldError] = []
    index_of: dict[str, int] = {}
    for index, deal in enumerate(deals):
        if deal.external_id in index_of:
            errors.append(doc.error(("deals", index, "external_id"),
                                    f"duplicate deal {deal.external_id} "
                                    f"(also deals.{index_of[deal.external_id]})"))
        else:
            index_of[deal.external_id] = index
    return errors
