"""The `duet` command. Each service registers its own commands; heavy imports stay inside them
so that `duet --help` and the ledger commands start in well under a second."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="duet",
    help="Evaluate LLM checkpoints while they train.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    import importlib

    for mod in (
        "eval_service.ledger_cli",
        "eval_service.worker_cli",
        "shared.grading_cli",
        "trainer_service.cli",
        "shared.up_cli",
    ):
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as e:  # a service not written yet; never hide a real import error
            if e.name != mod:
                raise
            continue
        module.register(app)


_register()

if __name__ == "__main__":
    app()
