"""How each answer format asks for, renders and writes answers.

The prompt the model sees is `render_prompt`: for r1_zero it always ends with "<think>" (plain
"User: …\\nAssistant: <think>", or the chat template's generation prompt followed by "<think>"),
so SFT targets and responses start inside the think block and never repeat the opening tag.
"""

from __future__ import annotations

from typing import Any

from shared.grading import AnswerFormat

INSTRUCTIONS: dict[AnswerFormat, str] = {
    AnswerFormat.gsm8k: (
        'Solve the problem step by step. Write the final answer on the last line as "#### <answer>".'
    ),
    AnswerFormat.boxed: "Please reason step by step, and put your final answer within \\boxed{}.",
    AnswerFormat.r1_zero: (
        "Think inside <think> </think>, then give the final answer inside <answer> </answer>."
    ),
    AnswerFormat.freeform: 'End your response with "The answer is <answer>."',
}

THINK_OPEN = "<think>"


def with_instructions(question: str, fmt: AnswerFormat) -> str:
    return f"{question}\n{INSTRUCTIONS[fmt]}"


def render(prompt: str, fmt: AnswerFormat, *, use_chat_template: bool, tokenizer: Any = None) -> str:
    """The exact string the model is conditioned on (trainer and worker both use this)."""
    prefix = THINK_OPEN if fmt == AnswerFormat.r1_zero else ""
    if use_chat_template and tokenizer is not None and getattr(tokenizer, "chat_template", None):
        chat = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        return chat + prefix
    if fmt == AnswerFormat.r1_zero:
        return f"User: {prompt}\nAssistant: {THINK_OPEN}"
    return f"{prompt}\n"


def format_solution(reasoning: str | None, answer: str, fmt: AnswerFormat) -> str:
    """A worked solution in answer format `fmt` (the SFT target, before the prompt's prefix is cut)."""
    reasoning = (reasoning or "").strip()
    if fmt == AnswerFormat.gsm8k:
        return f"{reasoning}\n#### {answer}" if reasoning else f"#### {answer}"
    if fmt == AnswerFormat.boxed:
        tail = f"The final answer is $\\boxed{{{answer}}}$."
        return f"{reasoning}\n{tail}" if reasoning else tail
    if fmt == AnswerFormat.r1_zero:
        return f"{THINK_OPEN}{reasoning}</think> <answer>{answer}</answer>"
    if fmt == AnswerFormat.freeform:
        tail = f"The answer is {answer}."
        return f"{reasoning}\n{tail}" if reasoning else tail
    raise ValueError(f"unknown answer format {fmt!r}")


def completion(solution: str, fmt: AnswerFormat) -> str:
    """Cut what the rendered prompt already ends with (r1_zero's "<think>") off a solution."""
    if fmt == AnswerFormat.r1_zero and solution.startswith(THINK_OPEN):
        return solution[len(THINK_OPEN) :]
    return solution
