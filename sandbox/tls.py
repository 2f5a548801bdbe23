"""A local certificate authority and a loopback server certificate (trustme)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SandboxTLS:
    """Files a sandbox server and its clients need: CA bundle, server cert and key."""

    ca_path: Path
    cert_path: Path
    key_path: Path


def local_tls(folder: str | Path) -> SandboxTLS:
    """A CA and a certificate for 127.0.0.1 / localhost in `folder`, made once and reused."""
    folder = Path(folder)
    tls = SandboxTLS(folder / "sandbox-ca.pem", folder / "sandbox-cert.pem",
                     folder / "sandbox-key.pem")
    if all(p.is_file() for p in (tls.ca_path, tls.cert_path, tls.key_path)):
        return tls
    import trustme

    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="coachloop sandbox")
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    ca.cert_pem.write_to_path(str(tls.ca_path))
    cert.private_key_pem.write_to_path(str(tls.key_path))
    with open(tls.cert_path, "wb") as handle:
        for blob in cert.cert_chain_pems:
            handle.write(blob.bytes())
    tls.key_path.chmod(0o600)
    return tls
