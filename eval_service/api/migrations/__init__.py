"""Alembic migrations of the ledger schema; run them with eval_service.api.migrate."""
