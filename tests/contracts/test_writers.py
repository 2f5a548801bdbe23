"""The CRM-writer contract, run against every CRM through its emulator, with the records its
built-in mapping writes: an upsert by our external key written again (a retry, a re-run)
leaves one record; an expired session is refreshed once and the call goes through; an
outage and a spent daily quota are transient errors (the quota one carries a wait), and
the writer works again after."""

from __future__ import annotations

import pytest

from connectors.base import RecordWrite
from connectors.oauth_apps import connect_following_consent
from core.errors import TransientError
from core.settings import get_settings
from core.vendors import vendor as vendor_of
from mappings import configured_mapping
from tests.contracts.kits import WRITERS

VENDORS = sorted(WRITERS)


@pytest.fixture
def writer(boxes, request):
    running, org_id = boxes
    name = request.param
    connect_following_consent(name, org_id, get_settings())
    if vendor_of(name).setup is not None:  # what the mapping writes, created as an admin would
        vendor_of(name).load("setup")(org_id, get_settings(), apply=True)
    made = vendor_of(name).load("writer")(org_id, get_settings())
    made.call_retries = 0  # the contract sees each answer; retries are the helper's
    yield running, name, made
    made.close()


def activity(name: str, writer, key: str) -> RecordWrite:
    """An activity record as the CRM's built-in mapping describes it."""
    rule = configured_mapping(name, get_settings()).activity
    info = writer.describe([rule.object])[rule.object.lower()]
    values = rule.render({"title": "Contract call", "date": "2026-11-30",
                          "started_at": "2026-11-30T15:00:00+00:00", "summary": "contract",
                          "meeting_id": 1, "url": "https://coachloop.example/meetings/1"}, info)
    return RecordWrite(rule.object, values, key_field=rule.external_id, key=key)


@pytest.mark.parametrize("writer", VENDORS, indirect=True)
def test_an_upsert_written_again_leaves_one_record(writer):
    running, name, made = writer
    write = activity(name, made, "contract-key-1")
    results = made.write([write]) + made.write([write]) + made.write([write])
    assert all(r.ok for r in results), results
    assert len(WRITERS[name].records(running, write.sobject, write.key_field, write.key)) == 1


@pytest.mark.parametrize("writer", VENDORS, indirect=True)
def test_an_expired_session_is_refreshed_once(writer):
    running, name, made = writer
    made.check()
    before = WRITERS[name].token_requests(running)
    WRITERS[name].expire_sessions(running)
    made.check()
    made.check()
    assert WRITERS[name].token_requests(running) == before + 1


@pytest.mark.parametrize("writer", VENDORS, indirect=True)
def test_an_outage_and_a_spent_quota_are_transient(writer):
    running, name, made = writer
    WRITERS[name].outage(running, True)
    with pytest.raises(TransientError):
        made.check()
    WRITERS[name].outage(running, False)
    made.check()
    WRITERS[name].exhaust_quota(running)
    with pytest.raises(TransientError) as caught:
        made.check()
    assert caught.value.retry_after and caught.value.retry_after >= 60
