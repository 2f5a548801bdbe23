"""Wire-accurate emulators of the vendor APIs coachloop talks to, served over HTTPS on loopback.

Production code never imports this package; `coachloop sandbox`, `coachloop demo` and the
tests start it. Clients trust it through a CA bundle (`SandboxTLS.ca_path`).
"""
