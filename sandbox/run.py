"""Start the Zoom and Salesforce sandboxes together, seeded with the demo org, over HTTPS.

`coachloop sandbox` and `coachloop demo` use this; so can anyone trying coachloop before
connecting real accounts. `Sandboxes.settings()` gives the COACHLOOP_* settings that point
coachloop at them (OAuth apps, API bases, webhook secret, the local CA).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.salesforce import (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SalesforceSandbox)
from sandbox.salesforce import demo_seed as seed_salesforce
from sandbox.server import RunningServer, serve
from sandbox.tls import SandboxTLS, local_tls
from sandbox.zoom import ZoomSandbox
from sandbox.zoom import demo_seed as seed_zoom

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"


@dataclass
class Sandboxes:
    """Running sandboxes: the emulators (for seeding and assertions) and their URLs."""

    tls: SandboxTLS
    zoom: ZoomSandbox
    salesforce: SalesforceSandbox
    zoom_server: RunningServer
    salesforce_server: RunningServer
    webhook_secret: str
    zoom_meetings: dict[str, str] = field(default_factory=dict)  # demo external id → uuid
    salesforce_ids: dict[str, dict[str, str]] = field(default_factory=dict)

    def settings(self) -> dict[str, str]:
        """Environment settings that make coachloop use these sandboxes."""
        return {
            "COACHLOOP_ZOOM__CLIENT_ID": self.zoom.client_id,
            "COACHLOOP_ZOOM__CLIENT_SECRET": self.zoom.client_secret,
            "COACHLOOP_ZOOM__OAUTH_BASE": self.zoom_server.url,
            "COACHLOOP_ZOOM__API_BASE": f"{self.zoom_server.url}/v2",
            "COACHLOOP_ZOOM__WEBHOOK_SECRET_TOKEN": self.webhook_secret,
            "COACHLOOP_SALESFORCE__CLIENT_ID": DEFAULT_CLIENT_ID,
            "COACHLOOP_SALESFORCE__CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
            "COACHLOOP_SALESFORCE__LOGIN_URL": self.salesforce_server.url,
            "COACHLOOP_CA_BUNDLE": str(self.tls.ca_path),
        }

    def stop(self) -> None:
        self.zoom_server.stop()
        self.salesforce_server.stop()


def start_sandboxes(work_dir: str | Path, *, demo: bool = True, zoom_port: int = 0,
                    salesforce_port: int = 0) -> Sandboxes:
    """Generate a local CA under `work_dir`, start both emulators, seed the demo org."""
    work_dir = Path(work_dir)
    tls = local_tls(work_dir / "tls")
    zoom = ZoomSandbox()
    salesforce = SalesforceSandbox()
    zoom_meetings, salesforce_ids = {}, {}
    if demo:
        zoom_meetings = seed_zoom(zoom, DEMO_DIR / "calls", work_dir / "zoom-files")
        salesforce_ids = seed_salesforce(salesforce, DEMO_DIR)
    zoom_server = zoom.start(tls, port=zoom_port)
    salesforce_server = serve(salesforce.create_app(), tls, port=salesforce_port)
    return Sandboxes(tls, zoom, salesforce, zoom_server, salesforce_server,
                     secrets.token_urlsafe(24), zoom_meetings, salesforce_ids)
