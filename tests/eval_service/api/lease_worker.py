"""A minimal worker process used by the lease tests: claims, reports, then acts on stdin commands.

    python -m tests.eval_service.api.lease_worker URL TOKEN WORKER_ID LEASE_SECONDS
stdout: one JSON line per event; stdin: "complete" | "exit".
"""

from __future__ import annotations

import json
import sys

from shared.client import LedgerClient, LedgerError
from shared.schemas import CompleteRequest


def main() -> None:
    url, token, worker_id, lease_s = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    c = LedgerClient(url, token, retry_for_s=5)
    lease = c.claim(worker_id, lease_seconds=lease_s)
    print(
        json.dumps({"event": "claimed", "job": lease and lease.job.id, "attempt": lease and lease.attempt}),
        flush=True,
    )
    for line in sys.stdin:
        if line.strip() == "complete" and lease is not None:
            body = CompleteRequest(worker_id=worker_id, attempt=lease.attempt, metrics={"accuracy": 0.9})
            try:
                c.complete(lease.job.id, body)
                print(json.dumps({"event": "completed", "status": 200}), flush=True)
            except LedgerError as e:
                print(json.dumps({"event": "completed", "status": e.status}), flush=True)
        else:
            return


if __name__ == "__main__":
    main()
