"""The meeting-source contract, run against every remote source through its emulator:
listing pages to the end; a sync that dies midway loses nothing (the cursor only moves past
what was read); a rate limit or an outage is a transient error that carries the vendor's
wait, holds the cursor, and the next sync reads everything."""

from __future__ import annotations

import pytest

from connectors import load_source
from connectors.base import SourceProblem
from connectors.oauth_apps import connect_following_consent
from core.connections import read_cursor
from core.errors import TransientError
from core.settings import get_settings
from tests.contracts.kits import SOURCES

VENDORS = sorted(SOURCES)


@pytest.fixture
def connected(boxes, request):
    running, org_id = boxes
    vendor = request.param
    info = connect_following_consent(vendor, org_id, get_settings())
    yield running, org_id, vendor, info.id


def sync(org_id: int, vendor: str, page_size: int = 2, stop_after: int | None = None) -> list:
    source = load_source(vendor).for_org(org_id)
    SOURCES[vendor].small_pages(source, page_size)
    found = []
    try:
        items = source.list_meetings()
        for item in items:
            assert not isinstance(item, SourceProblem), item
            found.append(item.external_id)
            if stop_after is not None and len(found) == stop_after:
                items.close()  # the process dies here: nothing after this runs
                break
    finally:
        source.close()
    return found


@pytest.mark.parametrize("connected", VENDORS, indirect=True)
def test_listing_pages_to_the_end(connected):
    running, org_id, vendor, _ = connected
    seeded = SOURCES[vendor].seed(running, org_id, 7)
    before = SOURCES[vendor].listings(running)
    found = sync(org_id, vendor, page_size=2)
    assert sorted(found) == sorted(seeded) and len(found) == len(set(found))
    assert SOURCES[vendor].listings(running) - before >= 4  # 7 meetings, 2 a page


@pytest.mark.parametrize("connected", VENDORS, indirect=True)
def test_a_sync_that_dies_midway_loses_nothing(connected):
    running, org_id, vendor, connection_id = connected
    seeded = SOURCES[vendor].seed(running, org_id, 7)
    first = sync(org_id, vendor, stop_after=3)
    assert len(first) == 3
    again = sync(org_id, vendor)
    assert set(seeded) - set(first) <= set(again), "a meeting the dead sync never reached"


@pytest.mark.parametrize("connected", VENDORS, indirect=True)
@pytest.mark.parametrize("status", [429, 503])
def test_limits_and_outages_are_transient_and_hold_the_cursor(connected, status):
    running, org_id, vendor, connection_id = connected
    seeded = SOURCES[vendor].seed(running, org_id, 5)
    stream = SOURCES[vendor].cursor_stream(running)
    cursor = read_cursor(connection_id, stream)
    SOURCES[vendor].fail_next(running, status, retry_after=120)
    with pytest.raises(TransientError) as caught:
        sync(org_id, vendor)
    if status == 429:  # the vendor's own wait reaches the task queue
        assert caught.value.retry_after is not None and 100 <= caught.value.retry_after <= 121
    assert read_cursor(connection_id, stream) == cursor
    assert sorted(sync(org_id, vendor)) == sorted(seeded)
