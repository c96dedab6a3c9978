"""`duet tasks`: the built-in tasks, and for one task where its data comes from, how many rows each
split has and one rendered prompt (exits 1, saying how to provide the data, when it cannot be had)."""

from __future__ import annotations

from typing import Any

import typer

app = typer.Typer(help="List the eval/training tasks; `duet tasks show NAME` for one task's data.")


@app.callback(invoke_without_command=True)
def tasks(ctx: typer.Context) -> None:
    """List the tasks (with their data source when no option is given)."""
    if ctx.invoked_subcommand is not None:
        return
    from cli.tables import console, table
    from shared.tasks import available_tasks, get_task
    from shared.tasks.files import FileTask

    rows: list[list[Any]] = []
    for name in available_tasks():
        try:
            task = get_task(name)
        except ValueError:  # needs options (e.g. custom's data source)
            rows.append([name, "", "needs options (duet tasks show for details)"])
            continue
        source = "generated"
        if isinstance(task, FileTask):
            parts = [_describe(task.source(s)) for s in ("train", "test")]
            source = parts[0] if parts[0] == parts[1] else f"train {parts[0]}; test {parts[1]}"
        rows.append([name, task.answer_format.value, source])
    console().print(table("tasks", ["task", "answer format", "data"], rows))


def _describe(source: Any) -> str:
    from rich.markup import escape  # "[test]" is text, not a style tag

    return escape(source.describe() if hasattr(source, "describe") else str(source))


@app.command("show")
def show(
    name: str = typer.Argument(..., help="Task name, e.g. gsm8k."),
    option: list[str] = typer.Option(
        [], help="Task option KEY=VALUE (repeatable), e.g. answer_format=r1_zero."
    ),
) -> None:
    """Where the task's data comes from, each split's size and one rendered test prompt."""
    from cli.worker import _task_options
    from shared.tasks import get_task
    from shared.tasks.files import FileTask

    try:
        task = get_task(name, **_task_options(option))
        sizes = {split: len(task.examples(split)) for split in ("train", "test")}
        example = task.examples("test", limit=1)[0]
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"task {name}  (answer format {task.answer_format.value})")
    for split, n in sizes.items():
        source = _describe(task.source(split)) if isinstance(task, FileTask) else "generated"
        if isinstance(task, FileTask):
            src = task.source(split)
            local = src.local_dir() if hasattr(src, "local_dir") else None
            if local is not None:
                source += f" from local copy {local}"
        typer.echo(f"  {split}: {n} rows  ({source})")
    typer.echo("rendered test prompt [0]:")
    typer.echo(task.render_prompt(example))
    typer.echo(f"gold answer: {example.answer}")
