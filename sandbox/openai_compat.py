"""A scripted OpenAI-compatible endpoint: `POST /v1/chat/completions` and `GET /v1/models`.

It speaks the wire format of OpenAI's Chat Completions API (bearer auth, error bodies
`{"error": {message, type, param, code}}`, `response_format` with a strict JSON schema,
`choices[0].message.content`, `finish_reason`, `usage`), so the real `openai` client talks to
it. Tests push behaviours (`good`, `invented_quotes`, `malformed_json`, `truncated`,
`rate_limited`, `server_error`) that the next requests play in order; with the queue empty it
answers with `keyword_answer`, a deterministic answerer that quotes transcript lines verbatim.
"""

import json
import math
import re
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Answer = Callable[[list[dict], dict], dict]  # (messages, JSON schema) -> the answer object

# A transcript line in the prompt: "[512] REP: text".
_LINE = re.compile(r"^\[(\d+)\] ([A-Z][A-Z ()-]*?): (.*)$", re.MULTILINE)

# A few words per criterion or field key; a line with one of them is quoted as evidence.
KEYWORDS: dict[str, tuple[str, ...]] = {
    "metrics": ("percent", "%", "$", "hours", "a year"),
    "economic_buyer": ("signs off", "sign off", "final say", "cfo", "her budget"),
    "decision_criteria": ("criteria", "must-have", "integrate", "requirement"),
    "decision_process": ("approval", "security review", "legal", "pilot"),
    "identify_pain": ("problem", "pain", "challenge", "mess"),
    "identified_pain": ("problem", "pain", "challenge", "mess"),
    "champion": ("push for", "champion", "make the case", "present it"),
    "competition": ("also looking", "competitor", "in-house", "alternative"),
    "budget": ("budget", "$"),
    "authority": ("signs off", "final say", "decision maker"),
    "need": ("problem", "need", "challenge"),
    "timeline": ("by the end", "quarter", "deadline", "go live"),
}


def transcript_lines(messages: list[dict]) -> list[tuple[int, str, str]]:
    """(segment id, role, text) of every transcript line in the prompt's messages."""
    text = "\n".join(m.get("content") or "" for m in messages if isinstance(m.get("content"), str))
    return [(int(m.group(1)), m.group(2), m.group(3)) for m in _LINE.finditer(text)]


def schema_keys(schema: dict, section: str) -> list[str]:
    """The keys (criteria or fields) the schema allows, in order."""
    item = schema["properties"][section]["items"]["properties"]["key"]
    return list(item.get("enum", []))


def keyword_answer(messages: list[dict], schema: dict) -> dict:
    """The default answer: for each key, the first line with one of its keywords, quoted."""
    lines = transcript_lines(messages)
    score = schema["properties"]["criteria"]["items"]["properties"]["score"]
    low, high = int(score.get("minimum", 0)), int(score.get("maximum", 4))

    def find(key: str) -> tuple[int, str] | None:
        words = KEYWORDS.get(key, tuple(w for w in key.split("_") if len(w) > 3))
        for segment_id, _role, text in lines:
            if any(w in text.lower() for w in words):
                return segment_id, text
        return None

    criteria, fields = [], []
    for key in schema_keys(schema, "criteria"):
        hit = find(key)
        criteria.append({
            "key": key, "score": max(low, high - 1) if hit else low,
            "confidence": 0.8 if hit else 0.6,
            "rationale": f"The call covers {key}." if hit else f"Nothing about {key}.",
            "quotes": [{"segment_id": hit[0], "quote": hit[1]}] if hit else []})
    for key in schema_keys(schema, "fields"):
        hit = find(key)
        # A model distils: the emulator keeps the line's first words as its "value".
        fields.append({"key": key, "status": "found" if hit else "absent",
                       "value": " ".join(hit[1].split()[:8]) if hit else None,
                       "negative": False, "confidence": 0.7 if hit else 0.0,
                       "quotes": [{"segment_id": hit[0], "quote": hit[1]}] if hit else []})
    return {"criteria": criteria, "fields": fields}


@dataclass(frozen=True)
class Behaviour:
    """What the emulator does with one request."""

    kind: str  # good | malformed | truncated | rate_limited | server_error
    answer: Answer | None = None
    retry_after: float | None = None
    status: int = 200


def good(answer: Answer | None = None) -> Behaviour:
    """A proper answer: `answer(messages, schema)`, or the keyword answerer."""
    return Behaviour("good", answer or keyword_answer)


def invented_quotes(keys: tuple[str, ...] | None = None,
                    base: Answer | None = None) -> Behaviour:
    """A proper-looking answer whose quotes for `keys` (all criteria if None) were never said."""
    def answer(messages: list[dict], schema: dict) -> dict:
        result = (base or keyword_answer)(messages, schema)
        first = transcript_lines(messages)[0][0]
        for item in result["criteria"]:
            if keys is None or item["key"] in keys:
                item["score"] = int(schema["properties"]["criteria"]["items"]["properties"]
                                    ["score"].get("maximum", 4))
                item["quotes"] = [{"segment_id": first,
                                   "quote": f"We have a signed mandate for {item['key']}."}]
        return result
    return Behaviour("good", answer)


def malformed_json() -> Behaviour:
    """Content that is not JSON (a chatty preamble, unquoted keys)."""
    return Behaviour("malformed")


def truncated() -> Behaviour:
    """The answer cut off at max_tokens: finish_reason "length", content half written."""
    return Behaviour("truncated")


def rate_limited(retry_after: float = 1.0) -> Behaviour:
    """429 with a `retry-after` header and OpenAI's rate-limit error body."""
    return Behaviour("rate_limited", retry_after=retry_after, status=429)


def server_error(status: int = 500) -> Behaviour:
    """A 500 (server error) or 503 (overloaded) in OpenAI's error shape."""
    return Behaviour("server_error", status=status)


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))  # OpenAI's rule of thumb: ~4 characters a token


class _ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str, code: str | None = None,
                 param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers or {}
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _check_strict(schema: Any, path: str = "schema") -> None:
    """OpenAI's strict mode: every object closes its properties and requires all of them."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" or "properties" in schema:
            props = schema.get("properties", {})
            if schema.get("additionalProperties") is not False:
                raise _ApiError(400, f"Invalid schema for response_format: In context={path}, "
                                "'additionalProperties' is required to be supplied and to be "
                                "false.", "invalid_request_error", param="response_format")
            missing = sorted(set(props) - set(schema.get("required", [])))
            if missing:
                raise _ApiError(400, f"Invalid schema for response_format: In context={path}, "
                                f"'required' is required to be supplied and to be an array "
                                f"including every key in properties. Missing '{missing[0]}'.",
                                "invalid_request_error", param="response_format")
        for key, value in schema.items():
            _check_strict(value, f"{path}.{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            _check_strict(value, f"{path}[{index}]")


@dataclass
class OpenAICompatSandbox:
    """The emulator's state: key, models, the script of behaviours and what it received."""

    api_key: str = "sk-sandbox-test-key"
    models: tuple[str, ...] = ("coach-small",)
    requests: Counter = field(default_factory=Counter)  # "POST /v1/chat/completions" -> n
    received: list[dict] = field(default_factory=list)  # request bodies, in order
    _script: deque = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def push(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next requests, in order."""
        with self._lock:
            self._script.extend(behaviours)

    def reset(self) -> None:
        """Forget the script, the counts and the recorded requests."""
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.received.clear()

    @property
    def completions(self) -> int:
        """How many chat completion requests arrived (authorised or not)."""
        return self.requests["POST /v1/chat/completions"]

    def create_app(self):
        """The ASGI app; run it with `sandbox.server.serve(app, tls)`."""
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse

        app = FastAPI(title="OpenAI-compatible sandbox")

        @app.exception_handler(_ApiError)
        async def _api_error(_request: Request, exc: _ApiError):
            return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

        @app.get("/v1/models")
        async def list_models(request: Request):
            self._count("GET /v1/models")
            self._authorise(request)
            return {"object": "list", "data": [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "sandbox"}
                for m in self.models]}

        @app.post("/v1/chat/completions")
        async def chat_completions(request: Request):
            self._count("POST /v1/chat/completions")
            self._authorise(request)
            try:
                body = json.loads(await request.body())
            except ValueError:
                raise _ApiError(400, "We could not parse the JSON body of your request.",
                                "invalid_request_error") from None
            with self._lock:
                self.received.append(body)
                behaviour = self._script.popleft() if self._script else good()
            status, payload, headers = self._complete(body, behaviour)
            headers["x-request-id"] = f"req_{uuid.uuid4().hex}"
            return JSONResponse(payload, status_code=status, headers=headers)

        return app

    def _count(self, endpoint: str) -> None:
        with self._lock:
            self.requests[endpoint] += 1

    def _authorise(self, request) -> None:
        header = request.headers.get("authorization", "")
        if header != f"Bearer {self.api_key}":
            shown = header.removeprefix("Bearer ")
            shown = f"{shown[:3]}***{shown[-4:]}" if len(shown) > 8 else "***"
            raise _ApiError(401, f"Incorrect API key provided: {shown}. You can find your API "
                            "key at https://platform.openai.com/account/api-keys.",
                            "invalid_request_error", code="invalid_api_key")

    def _complete(self, body: dict, behaviour: Behaviour) -> tuple[int, dict, dict]:
        model = body.get("model")
        messages = body.get("messages")
        if not model:
            raise _ApiError(400, "you must provide a model parameter", "invalid_request_error")
        if model not in self.models:
            raise _ApiError(404, f"The model `{model}` does not exist or you do not have "
                            "access to it.", "invalid_request_error", code="model_not_found")
        if not isinstance(messages, list) or not messages:
            raise _ApiError(400, "'messages' must contain at least one message.",
                            "invalid_request_error", param="messages")
        schema: dict = {}
        response_format = body.get("response_format") or {}
        if response_format.get("type") == "json_schema":
            spec = response_format.get("json_schema") or {}
            if not spec.get("name") or "schema" not in spec:
                raise _ApiError(400, "Missing required parameter: 'response_format.json_schema"
                                ".name'.", "invalid_request_error",
                                param="response_format.json_schema")
            schema = spec["schema"]
            if spec.get("strict"):
                _check_strict(schema)

        if behaviour.kind == "rate_limited":
            raise _ApiError(429, f"Rate limit reached for {model} on requests per min (RPM): "
                            f"Limit 3, Used 3, Requested 1. Please try again in "
                            f"{behaviour.retry_after:g}s.", "requests",
                            code="rate_limit_exceeded",
                            headers={"retry-after": f"{behaviour.retry_after:g}",
                                     "x-ratelimit-limit-requests": "3",
                                     "x-ratelimit-remaining-requests": "0"})
        if behaviour.kind == "server_error":
            message = ("The engine is currently overloaded, please try again later."
                       if behaviour.status == 503 else
                       "The server had an error while processing your request. Sorry about "
                       "that!")
            raise _ApiError(behaviour.status, message, "server_error")

        finish = "stop"
        if behaviour.kind == "malformed":
            content = "Sure! Here is the assessment:\n{criteria: [ {key: metrics, score: 3"
        else:
            answer = (behaviour.answer or keyword_answer)(messages, schema) if schema else {}
            content = json.dumps(answer)
            if behaviour.kind == "truncated":
                content, finish = content[: len(content) // 2], "length"
        prompt = "".join(str(m.get("content") or "") for m in messages)
        usage = {"prompt_tokens": _tokens(prompt), "completion_tokens": _tokens(content)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return 200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": 1700000000,
            "model": model,
            "system_fingerprint": "fp_sandbox",
            "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                         "message": {"role": "assistant", "content": content,
                                     "refusal": None}}],
            "usage": usage,
        }, {}
