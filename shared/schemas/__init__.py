"""The wire contract between the ledger (eval_service.api) and its clients (worker, trainer, CLI),
one module per concern; everything is importable from `shared.schemas`.

Pydantic models only: importing this package must stay cheap (no torch, no vllm, no sqlmodel).
"""

from shared.schemas.jobs import *  # noqa: F403
from shared.schemas.results import *  # noqa: F403
from shared.schemas.runs import *  # noqa: F403
