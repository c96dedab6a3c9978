"""The dashboard: HTML pages and static assets served by the ledger (`ui_router(settings)`)."""

from eval_service.api.ui.router import ui_router

__all__ = ["ui_router"]
