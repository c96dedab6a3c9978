"""Server settings: one pydantic-settings class, environment variables `DUET_*`."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_API_TOKEN = "duet-dev-token"
DEFAULT_ADMIN_TOKEN = "duet-dev-admin"


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUET_", extra="ignore")

    db_url: str = "sqlite:///./.duet/duet.db"
    host: str = "127.0.0.1"
    port: int = 8477
    api_token: str = DEFAULT_API_TOKEN  # workers, trainers, users
    admin_token: str = DEFAULT_ADMIN_TOKEN  # allowed everywhere, needed for regrade/retry/flush
    read_auth: bool = False  # when true, GET routes need a token too
    public_docs: bool = False  # with read_auth: serve /openapi.json and /docs without a token anyway
    max_body_bytes: int = 64 * 1024 * 1024
    checkpoint_root: Path = Path(".")  # every checkpoint path must resolve under this directory

    max_attempts: int = 3  # claims per job before it is declared dead
    sweep_interval_s: float = 5.0  # how often expired leases are re-queued
    sqlite_busy_timeout_ms: int = 30_000
    sqlite_synchronous: str = "NORMAL"  # WAL + NORMAL survives process crashes

    # Several replicas on one database elect one of them for the W&B drain and the lease sweep:
    # a leader lease runs out this long after its holder stops renewing it (e.g. died).
    leader_lease_s: float = 15.0
    replica_id: str = ""  # names this replica in leader leases; empty: host:pid:random

    wandb_enabled: bool = True
    wandb_project: str = "duet"
    wandb_entity: str | None = None
    wandb_dir: Path | None = None
    wandb_drain_interval_s: float = 2.0
    wandb_batch_size: int = 5000

    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def check_safe_to_serve(self) -> None:
        """Refuse to expose the well-known default tokens on a non-loopback interface."""
        if self.is_loopback():
            return
        weak = [
            name
            for name, value, default in (
                ("DUET_API_TOKEN", self.api_token, DEFAULT_API_TOKEN),
                ("DUET_ADMIN_TOKEN", self.admin_token, DEFAULT_ADMIN_TOKEN),
            )
            if value == default
        ]
        if weak:
            raise ValueError(
                f"refusing to listen on {self.host} with the default {' and '.join(weak)}: "
                "set your own secret tokens (or listen on 127.0.0.1)"
            )
