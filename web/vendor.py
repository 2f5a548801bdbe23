"""The front-end libraries the pages ship, taken from the npm registry: `python -m web.vendor`
fetches each package at the version `vendor.json` pins, checks the tarball against npm's
integrity hash, and copies the files named there (with the package's licence) into
`static/vendor/<package>/`. `--check` only compares what is committed with the hashes."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
MANIFEST = HERE / "vendor.json"
TARGET = HERE / "static" / "vendor"


def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def served_files() -> dict[str, Path]:
    """`vendor/<package>/<file>` → the committed file, for the app's asset route."""
    return {f"vendor/{package}/{Path(name).name}": TARGET / package / Path(name).name
            for package, entry in manifest().items() for name in entry["files"]}


def mismatches() -> list[str]:
    """Committed files whose content is not what the manifest pins."""
    wrong = []
    for package, entry in manifest().items():
        for name, digest in entry["files"].items():
            path = TARGET / package / Path(name).name
            if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                wrong.append(str(path.relative_to(HERE)))
    return wrong


def fetch() -> None:
    for package, entry in manifest().items():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["npm", "pack", f"{package}@{entry['version']}", "--silent"],
                           cwd=tmp, check=True, capture_output=True)
            tarball = next(Path(tmp).glob("*.tgz"))
            algorithm, _, expected = entry["integrity"].partition("-")
            actual = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest())
            if actual.decode() != expected:
                raise SystemExit(f"{package}: the tarball's hash is not the pinned integrity")
            out = TARGET / package
            out.mkdir(parents=True, exist_ok=True)
            with tarfile.open(tarball) as archive:
                for name in entry["files"]:
                    member = archive.extractfile(f"package/{name}")
                    (out / Path(name).name).write_bytes(member.read())
    wrong = mismatches()
    if wrong:
        raise SystemExit("files differ from vendor.json: " + ", ".join(wrong))


if __name__ == "__main__":
    if "--check" in sys.argv:
        problems = mismatches()
        print("\n".join(problems) or "vendored files match vendor.json")
        sys.exit(1 if problems else 0)
    fetch()
    print("fetched and checked:", ", ".join(manifest()))
