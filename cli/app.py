"""The `duet` command: every command group, registered with plain imports. The command modules
import only typer, rich and the ledger client at start; heavy libraries (torch, vllm, TRL, the
server) load inside the command that needs them, so `duet --help` starts in well under a second."""

from __future__ import annotations

import typer

from cli import analysis, db, grade, ledger, retention, tasks, train, up, worker

app = typer.Typer(
    name="duet",
    help="Evaluate LLM checkpoints while they train.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Unnamed groups: their commands become top-level `duet` commands (`duet runs`, `duet up`, ...).
for group in (ledger.app, retention.app, analysis.app, worker.app, grade.app, train.app, up.app):
    app.add_typer(group)
# Named group: `duet tasks` lists, `duet tasks show NAME` shows one.
app.add_typer(tasks.app, name="tasks")
app.add_typer(db.app, name="db")  # `duet db upgrade`, `duet db current`

if __name__ == "__main__":
    app()
