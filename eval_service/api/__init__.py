"""The score ledger: a FastAPI + SQLite service that stores runs, checkpoints, eval jobs (a lease
queue), results, samples and train metrics, and is the single writer to W&B (through an outbox)."""
