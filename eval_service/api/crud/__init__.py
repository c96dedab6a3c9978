"""Ledger operations, one module per concern: `runs` (runs, train metrics, checkpoints), `jobs`
(the queue and the lease state machine), `results` (results and samples), `scores` (score
queries), `outbox` (rows for W&B). Each function runs inside the caller's session and
transaction: routes choose `db.write()` (BEGIN IMMEDIATE) or `db.read()`. Failures are the
exceptions of `eval_service.api.errors`."""
