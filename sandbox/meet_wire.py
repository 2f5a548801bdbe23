"""Google's wire conventions, as the Meet + Workspace emulator (`sandbox.meet`) speaks them.

Pure functions and small types, no emulator state: the error envelopes (Google APIs, the
OAuth endpoints, the consent page), timestamps and durations, opaque page tokens, the filter
language (a subset of AIP-160), partial responses (`fields`), WebVTT/SRT transcripts, RSA
signing keys with their JWKs, and the discovery documents shipped in google-api-python-client
that the emulator reads its method table's scopes and schemas from.
"""

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

# google.rpc.Code names by HTTP status (the mapping Google's REST surfaces use).
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION",
                416: "OUT_OF_RANGE", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
                500: "INTERNAL", 501: "NOT_IMPLEMENTED", 503: "UNAVAILABLE",
                504: "DEADLINE_EXCEEDED"}
# The legacy `errors[].reason` of the v3-era APIs (Drive, Calendar, Admin SDK) by status.
LEGACY_REASONS = {400: "badRequest", 401: "authError", 403: "forbidden", 404: "notFound",
                  409: "conflict", 412: "conditionNotMet", 416: "requestedRangeNotSatisfiable",
                  429: "rateLimitExceeded", 500: "backendError", 503: "backendError"}
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
HELP = "type.googleapis.com/google.rpc.Help"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


# ------------------------------------------------------------------------------ errors


class GoogleError(Exception):
    """An API error, rendered as `{"error": {"code", "message", "status", "details"}}`; on
    Drive, Calendar and the Admin SDK also with the legacy `errors` list (`reason`, `domain`,
    and `location`/`locationType` when given)."""

    def __init__(self, status: int, message: str, *, status_name: str | None = None,
                 details: list | None = None, reason: str | None = None,
                 domain: str = "global", location: str | None = None,
                 location_type: str = "parameter", legacy_message: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message = status, message
        self.status_name = status_name or STATUS_NAMES.get(status, "UNKNOWN")
        self.details, self.reason, self.domain = details or [], reason, domain
        self.location, self.location_type = location, location_type
        self.legacy_message, self.headers = legacy_message, headers or {}

    def body(self, legacy: bool) -> dict:
        error: dict = {"code": self.status, "message": self.message}
        if legacy:
            item = {"message": self.legacy_message or self.message, "domain": self.domain,
                    "reason": self.reason or LEGACY_REASONS.get(self.status, "backendError")}
            if self.location:
                item.update(location=self.location, locationType=self.location_type)
            error["errors"] = [item]
        error["status"] = self.status_name
        if self.details:
            error["details"] = self.details
        return {"error": error}


class OAuthError(Exception):
    """An error of Google's token or revoke endpoint: `{"error", "error_description"}`."""

    def __init__(self, status: int, error: str, description: str,
                 headers: dict | None = None):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description
        self.headers = headers or {}


class ConsentPageError(Exception):
    """An error Google shows on its sign-in page instead of redirecting back to the app."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def error_info(reason: str, domain: str, metadata: dict) -> dict:
    return {"@type": ERROR_INFO, "reason": reason, "domain": domain, "metadata": metadata}


def invalid_argument(message: str, field_name: str | None = None, **legacy) -> GoogleError:
    details = [{"@type": BAD_REQUEST, "fieldViolations": [
        {"field": field_name, "description": message}]}] if field_name else []
    return GoogleError(400, message, details=details, **legacy)


# -------------------------------------------------------------------------------- time


def proto_time(moment: datetime) -> str:
    """A google.protobuf.Timestamp in JSON: RFC 3339, Z-normalized, with 0, 3, 6 or 9
    fractional digits (the protobuf JSON mapping's rule)."""
    moment = moment.astimezone(UTC)
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    micros = moment.microsecond
    if micros == 0:
        return base + "Z"
    if micros % 1000 == 0:
        return f"{base}.{micros // 1000:03d}Z"
    return f"{base}.{micros:06d}Z"


def millis_time(moment: datetime) -> str:
    """The v3 APIs' (Drive, Calendar `created`/`updated`, Admin SDK) form: always millis."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def seconds_time(moment: datetime) -> str:
    """Calendar's event `dateTime` in a UTC calendar: no fraction, Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\d)[Tt](\d\d:\d\d:\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")


def parse_rfc3339(text: str) -> datetime:
    """A strict RFC 3339 date-time (the offset is required); ValueError otherwise."""
    found = _RFC3339.match(text.strip())
    if not found:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    day, clock, fraction, offset = found.groups()
    micros = int((fraction or ".0")[1:7].ljust(6, "0"))
    offset = "+00:00" if offset in ("Z", "z") else offset
    moment = datetime.fromisoformat(f"{day}T{clock}{offset}")
    return moment.replace(microsecond=micros).astimezone(UTC)


def as_datetime(value: str | datetime) -> datetime:
    """A seeding argument (datetime or ISO text, naive means UTC) as an aware UTC datetime."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def parse_duration(text: str) -> timedelta:
    """A google.protobuf.Duration in JSON ("3.5s", "604800s"); ValueError otherwise."""
    found = re.fullmatch(r"\s*(-?\d+)(\.\d{1,9})?s\s*", str(text))
    if not found:
        raise ValueError(f"not a duration: {text!r}")
    seconds = int(found.group(1))
    fraction = float(found.group(2) or 0)
    return timedelta(seconds=seconds + (fraction if seconds >= 0 else -fraction))


# -------------------------------------------------------------------------- page tokens


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def scope_of(*parts) -> str:
    """A short digest of what a listing was asked for: a page token is only good for the
    same listing."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def make_page_token(scope: str, position) -> str:
    return b64url(json.dumps({"s": scope, "p": position}, separators=(",", ":")).encode())


def read_page_token(token: str, scope: str):
    """The position saved in `token`; ValueError when it is not one of ours or belongs to
    another listing (another filter, parent or caller)."""
    try:
        saved = json.loads(b64url_decode(token))
        if saved["s"] != scope:
            raise ValueError("page token of another listing")
        return saved["p"]
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        raise ValueError("invalid page token") from None


def page_size(raw: str | None, default: int, maximum: int) -> int:
    """AIP-158: unset or 0 means the default, larger values are coerced to the maximum,
    negative (or not a number) is refused."""
    if raw is None or raw == "":
        return default
    try:
        size = int(raw)
    except ValueError:
        raise invalid_argument(f"Invalid value at 'page_size' (TYPE_INT32), \"{raw}\"",
                               "page_size") from None
    if size < 0:
        raise invalid_argument("Page size must be non-negative.", "page_size")
    return default if size == 0 else min(size, maximum)


# ------------------------------------------------------------------------------ filters


@dataclass(frozen=True)
class Comparison:
    """`name op value` (value None with op "IS NULL")."""

    name: str
    op: str
    value: str | None


@dataclass(frozen=True)
class Junction:
    op: str                     # "AND" | "OR"
    terms: tuple


_TOKEN = re.compile(r'\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<str>"(?:[^"\\]|\\.)*")|'
                    r"(?P<op>>=|<=|!=|=|>|<|:)|(?P<word>[A-Za-z_][\w.\-/]*))")


def parse_filter(text: str):
    """A filter in the subset of AIP-160 Google's list methods accept: comparisons
    (`=`, `!=`, `<`, `<=`, `>`, `>=`, `:` has) with double-quoted values, `name IS NULL`,
    `AND`, `OR` (binding tighter than AND, as AIP-160 says) and parentheses. Returns the
    tree; ValueError on anything else."""
    tokens, pos = [], 0
    text = text or ""
    while pos < len(text):
        found = _TOKEN.match(text, pos)
        if not found or found.end() == pos:
            if text[pos:].strip() == "":
                break
            raise ValueError(f"unexpected input at offset {pos}: {text[pos:pos + 20]!r}")
        kind = found.lastgroup
        value = found.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value))
        pos = found.end()
    tokens.append(("end", None))
    index = 0

    def peek():
        return tokens[index]

    def take(kind: str, value=None):
        nonlocal index
        got = tokens[index]
        if got[0] != kind or (value is not None and got[1] != value):
            raise ValueError(f"expected {value or kind}, found {got[1] or 'the end'}")
        index += 1
        return got[1]

    def conjunction():
        terms = [disjunction()]
        while peek() == ("word", "AND"):
            take("word", "AND")
            terms.append(disjunction())
        return terms[0] if len(terms) == 1 else Junction("AND", tuple(terms))

    def disjunction():
        terms = [atom()]
        while peek() == ("word", "OR"):
            take("word", "OR")
            terms.append(atom())
        return terms[0] if len(terms) == 1 else Junction("OR", tuple(terms))

    def atom():
        if peek()[0] == "lp":
            take("lp")
            inner = conjunction()
            take("rp")
            return inner
        name = take("word")
        if name in ("AND", "OR", "NOT"):
            raise ValueError(f"unexpected {name}")
        if peek() == ("word", "IS"):
            take("word", "IS")
            take("word", "NULL")
            return Comparison(name, "IS NULL", None)
        op = take("op")
        kind, value = peek()
        if kind != "str":
            raise ValueError(f"the value compared with {name} must be in double quotes")
        take("str")
        return Comparison(name, op, value)

    if peek()[0] == "end":
        raise ValueError("empty filter")
    tree = conjunction()
    if peek()[0] != "end":
        raise ValueError(f"unexpected {peek()[1]!r}")
    return tree


def comparisons(tree) -> list[Comparison]:
    """Every comparison in a filter tree."""
    if isinstance(tree, Comparison):
        return [tree]
    return [c for term in tree.terms for c in comparisons(term)]


def evaluate(tree, test) -> bool:
    """The filter's truth, `test(comparison)` deciding each comparison."""
    if isinstance(tree, Comparison):
        return test(tree)
    results = (evaluate(term, test) for term in tree.terms)
    return all(results) if tree.op == "AND" else any(results)


def compare(left, op: str, right) -> bool:
    if op == "IS NULL":
        return left is None
    if left is None:
        return False
    return {"=": left == right, "!=": left != right, "<": left < right,
            "<=": left <= right, ">": left > right, ">=": left >= right}[op]


# ------------------------------------------------------------------- partial responses


_FIELD_PATH = re.compile(r"\s*([A-Za-z_@*][\w@]*(?:/[A-Za-z_*][\w]*)*)\s*")


def parse_fields(text: str) -> dict:
    """A `fields` selector (`a,b/c,d(e,f/g)`, `*`) as a tree {name: subtree or None}."""
    pos = 0

    def selection() -> dict:
        nonlocal pos
        tree: dict = {}
        while True:
            found = _FIELD_PATH.match(text, pos)
            if not found:
                raise ValueError(f"Invalid field selection {text[pos:] or text}")
            path = found.group(1).split("/")
            pos = found.end()
            sub = None
            if pos < len(text) and text[pos] == "(":
                pos += 1
                sub = selection()
                if pos >= len(text) or text[pos] != ")":
                    raise ValueError(f"Invalid field selection {text}")
                pos += 1
                while pos < len(text) and text[pos] == " ":
                    pos += 1
            node = tree
            for part in path[:-1]:
                node = node.setdefault(part, {}) if node.get(part, {}) is not None else {}
            last = path[-1]
            if sub is None or node.get(last, {}) is None:
                node[last] = None if sub is None else sub
            else:
                node.setdefault(last, {}).update(sub)
            if pos < len(text) and text[pos] == ",":
                pos += 1
                continue
            return tree

    if not text.strip():
        raise ValueError("Invalid field selection")
    tree = selection()
    if pos != len(text):
        raise ValueError(f"Invalid field selection {text}")
    return tree


def apply_fields(value, tree: dict | None):
    """`value` reduced to the selection `tree` (None: all of it)."""
    if tree is None or "*" in tree:
        return value
    if isinstance(value, list):
        return [apply_fields(item, tree) for item in value]
    if not isinstance(value, dict):
        return value
    return {k: apply_fields(value[k], sub) for k, sub in tree.items() if k in value}


def check_fields(tree: dict, schema: dict, resolve) -> None:
    """ValueError naming the first selected field the response schema does not have."""
    schema = resolve(schema)
    if schema.get("type") == "array":
        return check_fields(tree, schema.get("items", {}), resolve)
    props = schema.get("properties")
    if props is None:
        return None
    for name, sub in tree.items():
        if name == "*":
            continue
        if name not in props:
            raise ValueError(f"Invalid field selection {name}")
        if sub is not None:
            check_fields(sub, props[name], resolve)
    return None


# --------------------------------------------------------------------------- transcripts


@dataclass(frozen=True)
class Cue:
    """One transcript line: who said what, from and to (seconds into the recording)."""

    speaker: str
    start: float
    end: float
    text: str


_CUE_TIMES = re.compile(r"^\s*(?:(\d+):)?(\d{1,2}):(\d\d)[.,](\d{1,3})\s*-->\s*"
                        r"(?:(\d+):)?(\d{1,2}):(\d\d)[.,](\d{1,3})")


def _seconds(h, m, s, frac) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(frac.ljust(3, "0")) / 1000


def parse_cues(text: str) -> list[Cue]:
    """WebVTT or SRT whose cue text reads "Name: text" (or `<v Name>text</v>`), as cues."""
    cues: list[Cue] = []
    block: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n") + [""]:
        if line.strip():
            block.append(line)
            continue
        timing = next((i for i, b in enumerate(block) if "-->" in b), None)
        if timing is not None:
            found = _CUE_TIMES.match(block[timing])
            if not found:
                raise ValueError(f"bad cue timing: {block[timing]!r}")
            g = found.groups()
            said = " ".join(b.strip() for b in block[timing + 1:])
            voice = re.fullmatch(r"<v(?:\.[\w.]+)?\s+([^>]+)>(.*?)(?:</v>)?", said)
            if voice:
                speaker, words = voice.group(1).strip(), voice.group(2).strip()
            else:
                named = re.match(r"^([^:<>]{1,80}?):\s+(.*)$", said)
                if not named:
                    raise ValueError(f"cue without a speaker: {said!r}")
                speaker, words = named.group(1).strip(), named.group(2).strip()
            cues.append(Cue(speaker, _seconds(*g[:4]), _seconds(*g[4:]), words))
        block = []
    return cues


# ----------------------------------------------------------------------------- RSA keys


@dataclass
class SigningKey:
    """An RSA key Google signs with: `kid`, and its public half as a JWK."""

    kid: str
    private: object

    def public_jwk(self) -> dict:
        numbers = self.private.public_key().public_numbers()
        size = (numbers.n.bit_length() + 7) // 8
        return {"kty": "RSA", "e": b64url(numbers.e.to_bytes(3, "big").lstrip(b"\0")),
                "kid": self.kid, "n": b64url(numbers.n.to_bytes(size, "big")),
                "alg": "RS256", "use": "sig"}

    def sign(self, claims: dict, kid: str | None = None) -> str:
        import jwt

        return jwt.encode(claims, self.private, algorithm="RS256",
                          headers={"kid": kid or self.kid, "typ": "JWT"})

    def private_pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        return self.private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()).decode()


def new_signing_key() -> SigningKey:
    """A new RSA 2048 key; its id (40 hex digits, as Google's look) is a fingerprint of the
    public key, so an id never names two different keys."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return SigningKey(hashlib.sha1(public).hexdigest(), private)


# ------------------------------------------------------------------ discovery documents


DISCOVERY_FILES = {("meet", "v2"): "meet.v2.json", ("drive", "v3"): "drive.v3.json",
                   ("calendar", "v3"): "calendar.v3.json", ("people", "v1"): "people.v1.json",
                   ("admin", "directory_v1"): "admin.directory_v1.json",
                   ("workspaceevents", "v1"): "workspaceevents.v1.json"}


@cache
def discovery(api: str, version: str) -> dict:
    """The discovery document google-api-python-client ships for `api` `version`."""
    import googleapiclient

    folder = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
    return json.loads((folder / DISCOVERY_FILES[(api, version)]).read_text(encoding="utf-8"))


def discovery_method(api: str, version: str, dotted: str) -> dict | None:
    """The method `resource.sub.method` of the document (None: it has no such method)."""
    node = discovery(api, version)
    *resources, method = dotted.split(".")
    for name in resources:
        node = node.get("resources", {}).get(name)
        if node is None:
            return None
    return node.get("methods", {}).get(method)


def schema_resolver(api: str, version: str):
    """`resolve(schema)`: follows `$ref` to the document's named schema."""
    schemas = discovery(api, version)["schemas"]

    def resolve(schema: dict) -> dict:
        while "$ref" in schema:
            schema = schemas[schema["$ref"]]
        return schema

    return resolve
