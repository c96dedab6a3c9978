"""`duet pin CKPT` / `duet unpin CKPT`: keep a checkpoint out of retention's reach (or give it back)."""

from __future__ import annotations

import typer

from cli.ledger import JsonOpt, _client, _dump
from shared.schemas import CheckpointRead

app = typer.Typer()


def _say(ck: CheckpointRead, as_json: bool) -> None:
    if as_json:
        return _dump(ck)
    verb = "pinned: retention never deletes it" if ck.pinned else "unpinned: retention may delete it"
    typer.echo(f"checkpoint {ck.id} (run {ck.run_id} step {ck.step}) {verb} — {ck.path}")


@app.command()
def pin(
    ckpt: int = typer.Argument(..., help="Checkpoint id (the `ckpt` column of `duet scores`)."),
    as_json: bool = JsonOpt,
) -> None:
    """Pin a checkpoint: the trainer's retention never deletes it."""
    with _client() as client:
        done = client.pin(ckpt)
    _say(done, as_json)


@app.command()
def unpin(
    ckpt: int = typer.Argument(..., help="Checkpoint id (the `ckpt` column of `duet scores`)."),
    as_json: bool = JsonOpt,
) -> None:
    """Unpin a checkpoint: retention may delete it again once nothing needs it."""
    with _client() as client:
        done = client.unpin(ckpt)
    _say(done, as_json)
