"""Client-side settings shared by the CLI, the worker and the trainer (env vars `DUET_*`)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ClientSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUET_", extra="ignore")

    api_url: str = "http://127.0.0.1:8477"
    api_token: str = "duet-dev-token"  # the worker/trainer token of the embedded default server
    timeout_s: float = 30.0
