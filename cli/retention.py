"""`duet pin CKPT` / `duet unpin CKPT`: keep a checkpoint out of retention's reach (or give it back)."""

from __future__ import annotations

import typer

from cli.ledger import JsonOpt, _ask
from shared.schemas import CheckpointRead

app = typer.Typer()
CkptArg = typer.Argument(..., help="Checkpoint id (the `ckpt` column of `duet scores`).")


def _say(ck: CheckpointRead) -> None:
    verb = "pinned: retention never deletes it" if ck.pinned else "unpinned: retention may delete it"
    typer.echo(f"checkpoint {ck.id} (run {ck.run_id} step {ck.step}) {verb} — {ck.path}")


@app.command()
def pin(ckpt: int = CkptArg, as_json: bool = JsonOpt) -> None:
    """Pin a checkpoint: the trainer's retention never deletes it."""
    if (done := _ask(lambda c: c.pin(ckpt), as_json)) is not None:
        _say(done)


@app.command()
def unpin(ckpt: int = CkptArg, as_json: bool = JsonOpt) -> None:
    """Unpin a checkpoint: retention may delete it again once nothing needs it."""
    if (done := _ask(lambda c: c.unpin(ckpt), as_json)) is not None:
        _say(done)
