"""`python -m cli ...` is `duet ...` (how `duet up` starts its services)."""

from cli.app import app

app(prog_name="duet")
