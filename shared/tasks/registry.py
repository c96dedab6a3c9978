"""Task lookup by name, with options validated (errors name the option)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from shared.tasks.base import Task

_TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Add a task class under `cls.name` (usable as a decorator)."""
    _TASKS[cls.name] = cls
    return cls


def available_tasks() -> list[str]:
    return sorted(_TASKS)


def _option_errors(name: str, cls: type[Task], err: ValidationError) -> str:
    valid = ", ".join(sorted(cls.Options.model_fields))
    parts = []
    for e in err.errors():
        option = ".".join(str(x) for x in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if not option:  # a check across options; its message names them
            parts.append(msg)
        elif e["type"] == "extra_forbidden":
            parts.append(f"unknown option {option!r} (valid options: {valid})")
        else:
            parts.append(f"option {option!r}: {msg}")
    return f"task {name!r}: " + "; ".join(parts)


def get_task(name: str, **options: Any) -> Task:
    """Build task `name` with `options`. ValueError for an unknown task or a bad option."""
    try:
        cls = _TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; available tasks: {', '.join(available_tasks())}") from None
    try:
        opts = cls.Options.model_validate(options)
    except ValidationError as e:
        raise ValueError(_option_errors(name, cls, e)) from None
    return cls(opts)
