"""A claim-loop process for the concurrency test: claims and completes jobs until the queue is empty.

    python -m tests.eval_service.api.claimer URL TOKEN WORKER_ID
prints one JSON line: {"claimed": [[job, attempt], ...], "errors": [...]}.
"""

from __future__ import annotations

import json
import sys

from shared.client import LedgerClient
from shared.schemas import CompleteRequest


def main() -> None:
    url, token, worker_id = sys.argv[1:4]
    claimed, errors = [], []
    with LedgerClient(url, token, retry_for_s=0) as c:
        while True:
            try:
                lease = c.claim(worker_id, lease_seconds=120)
                if lease is None:
                    break
                claimed.append([lease.job.id, lease.attempt])
                c.complete(
                    lease.job.id,
                    CompleteRequest(worker_id=worker_id, attempt=lease.attempt, metrics={"x": 1}),
                )
            except Exception as e:  # recorded, the test asserts there are none
                errors.append(f"{type(e).__name__}: {e}")
                break
    print(json.dumps({"claimed": claimed, "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
