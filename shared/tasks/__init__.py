"""Eval/training tasks: datasets + prompts + grading, shared by the trainer and the worker.

task = get_task("ones_digit", max_pages=500)
for ex in task.examples("test", limit=100):
    text = task.render_prompt(ex, tokenizer)   # what the model is conditioned on
    ...generate...
    grade = task.grade(response, ex, finish_reason)
"""

# The built-in tasks are registered here, once, when this package is imported (their modules do not
# register themselves: importing one alone adds nothing to the registry).
from shared.tasks import arithmetic, files, ones_digit
from shared.tasks.base import Example, Split, Task, TaskOptions
from shared.tasks.registry import available_tasks, get_task, register_task

for _cls in (
    ones_digit.OnesDigitTask,
    files.GSM8KTask,
    files.MATHTask,
    files.GSM8KSampleTask,
    files.MATHSampleTask,
    files.CustomTask,
    arithmetic.MultiplicationTableTask,
    arithmetic.MultiplicationTask,
    arithmetic.AdditionTask,
):
    register_task(_cls)

__all__ = [
    "Example",
    "Split",
    "Task",
    "TaskOptions",
    "available_tasks",
    "get_task",
    "register_task",
]
