"""Every capability a registered vendor declares runs the shared contracts."""

from __future__ import annotations

from core.vendors import vendors
from tests.contracts import kits


def test_every_registered_capability_has_a_contract_run():
    missing = []
    for vendor in vendors().values():
        for capability, table in (("oauth", kits.OAUTH), ("webhooks", kits.WEBHOOKS),
                                  ("source", kits.SOURCES), ("writer", kits.WRITERS)):
            if getattr(vendor, capability) is None:
                continue
            covered = vendor.name in table or (vendor.name, capability) in kits.COVERED_ELSEWHERE
            if not covered:
                missing.append(f"{vendor.name}: {capability}")
    assert not missing, f"registered without a contract run: {missing} (tests/contracts/kits.py)"


def test_kits_name_only_registered_vendors():
    names = set(vendors())
    assert set(kits.OAUTH) | set(kits.WEBHOOKS) | set(kits.SOURCES) | set(kits.WRITERS) <= names
    assert {name for name, _ in kits.COVERED_ELSEWHERE} <= names
