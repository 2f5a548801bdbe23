"""Serve an ASGI app on loopback (HTTPS, or plain HTTP without a certificate), in a background
thread, for tests and the demo."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sandbox.tls import SandboxTLS


@dataclass
class RunningServer:
    """A started server: its base URL, and how to stop it."""

    url: str
    _server: object
    _thread: threading.Thread

    def stop(self) -> None:
        # No graceful drain: uvicorn would wait for clients' idle keep-alive connections.
        self._server.should_exit = self._server.force_exit = True
        self._thread.join(timeout=10)


def serve(app, tls: SandboxTLS | None, *, port: int = 0, startup_timeout: float = 15.0
          ) -> RunningServer:
    """Start `app` on https://127.0.0.1:<port> (0: any free port; `tls` None: plain http) and
    wait until it listens."""
    import uvicorn

    certificate = {} if tls is None else {"ssl_certfile": str(tls.cert_path),
                                          "ssl_keyfile": str(tls.key_path)}
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off", access_log=False, **certificate)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="sandbox-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"sandbox server did not start on 127.0.0.1:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    scheme = "http" if tls is None else "https"
    return RunningServer(f"{scheme}://127.0.0.1:{bound}", server, thread)
