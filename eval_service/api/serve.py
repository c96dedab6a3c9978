"""Start the ledger under uvicorn: the one entry point of the ledger server (`duet serve` calls it)."""

from __future__ import annotations

from eval_service.api.core.config import ServerSettings


def db_url(db: str) -> str:
    """Accept a SQLAlchemy URL or a plain SQLite file path."""
    return db if "://" in db else f"sqlite:///{db}"


def serve(host: str | None = None, port: int | None = None, db: str | None = None) -> None:
    """Serve until stopped; arguments left out come from the `DUET_*` environment. Raises
    ValueError before listening when the settings are unsafe (default tokens off loopback)."""
    overrides: dict = {}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    if db:
        overrides["db_url"] = db_url(db)
    settings = ServerSettings(**overrides)
    settings.check_safe_to_serve()  # raises ValueError with the reason
    import uvicorn

    from eval_service.api.main import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )
