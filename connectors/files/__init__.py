"""The `files` connector: a local folder with one manifest per meeting (see `manifest.py`),
plus optional `team.yaml` and `deals.yaml` describing our people and their deals."""

from connectors.files.deals import DealInfo, load_deals
from connectors.files.manifest import Manifest, ParticipantEntry, TrackEntry
from connectors.files.source import FilesSource
from connectors.files.team import OrgInfo, TeamFile, TeamUser, load_team
from core.vendors import Vendor

VENDOR = Vendor.from_file(__file__)

__all__ = [
    "DealInfo",
    "FilesSource",
    "Manifest",
    "OrgInfo",
    "ParticipantEntry",
    "TeamFile",
    "TeamUser",
    "TrackEntry",
    "VENDOR",
    "load_deals",
    "load_team",
]
