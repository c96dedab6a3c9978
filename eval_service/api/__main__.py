"""`python -m eval_service.api [--host H] [--port P] [--db URL]`: serve the ledger with uvicorn."""

from __future__ import annotations

import argparse
import sys

from eval_service.api.serve import serve


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m eval_service.api", description=__doc__)
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--db", help="SQLAlchemy URL or a SQLite file path")
    a = p.parse_args(argv)
    try:
        serve(host=a.host, port=a.port, db=a.db)
    except ValueError as e:
        print(f"duet serve: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
