"""The ones_digit task: exact answers, short learnable solutions, disjoint splits, options."""

from __future__ import annotations

import pytest

from shared.tasks import Example, available_tasks, get_task
from shared.tasks.ones_digit import ones_digit_answer, ones_digit_solution


def brute_force(n: int) -> int:
    return sum(1 for k in range(1, n + 1) if k % 10 == (n + 1 - k) % 10)


def test_answers_match_brute_force():
    for n in range(1, 2500):
        assert ones_digit_answer(n) == brute_force(n), n


def test_known_values():
    assert ones_digit_answer(113) == 23
    assert ones_digit_answer(50) == 0  # even N: N+1 is odd, 2n = N+1 (mod 10) has no solution
    assert ones_digit_answer(9) == brute_force(9) == 1  # only page 5


def test_solution_is_short_and_ends_in_the_answer():
    assert ones_digit_solution(113) == "<think>N+1=114. x=2,7. 12+11=23</think> <answer>23</answer>"
    assert ones_digit_solution(50) == "<think>N+1=51 odd. 0</think> <answer>0</answer>"
    assert max(len(ones_digit_solution(n)) for n in range(10, 1000)) < 70


def test_splits_are_disjoint_and_deterministic():
    task = get_task("ones_digit")
    pages = lambda exs: {int(e.id.split("-N")[1].split("-")[0]) for e in exs}  # noqa: E731
    train, test = task.examples("train"), task.examples("test")
    assert len(test) == 200 and len(train) == 2000
    assert not pages(train) & pages(test)
    assert pages(train) | pages(test) == set(range(10, 1000))  # every N used somewhere
    again = get_task("ones_digit")
    assert again.examples("test") == test and again.examples("train") == train
    # `seed` reorders and `limit` cuts; neither moves an N across the split.
    shuffled = task.examples("test", seed=7)
    assert shuffled != test and sorted(e.id for e in shuffled) == sorted(e.id for e in test)
    assert task.examples("test", limit=5) == test[:5]
    assert not pages(task.examples("train", seed=3, limit=100)) & pages(test)
    # Another split_seed is another (still disjoint) split.
    other = get_task("ones_digit", split_seed=1)
    assert pages(other.examples("test")) != pages(test)
    assert not pages(other.examples("train")) & pages(other.examples("test"))


def test_examples_are_correct_and_use_several_templates():
    task = get_task("ones_digit", min_pages=10, max_pages=300, n_test=50, n_train=300)
    exs = task.examples("train") + task.examples("test")
    assert len({e.question.split(" ")[0:3].__str__() for e in exs}) >= 3
    for e in exs:
        n = int(e.id.split("-N")[1].split("-")[0])
        assert e.answer == str(brute_force(n))
        assert str(n) in e.question
        assert 10 <= n <= 300
    # Both parities occur, so "even N -> 0" is learnable from the data.
    assert {e.answer == "0" for e in exs} == {True, False}


def test_prompt_target_and_grade_fit_together():
    task = get_task("ones_digit")
    ex = next(e for e in task.examples("test") if e.answer != "0")
    rendered = task.render_prompt(ex)
    assert (
        rendered.startswith("User: ") and ex.question in rendered and rendered.endswith("Assistant: <think>")
    )
    target = task.target(ex)
    assert not target.startswith("<think>") and target.endswith(f"<answer>{ex.answer}</answer>")
    assert task.grade(target, ex, "stop").correct
    assert task.grade((rendered + target).split("Assistant: ", 1)[1], ex).correct  # with the leading tag too
    wrong = task.grade("N+1=2</think> <answer>0</answer>", ex)
    assert (wrong.correct, wrong.category) == (False, "wrong_answer")


def test_chat_template_rendering_uses_the_tokenizer():
    class ChatTokenizer:  # the two attributes render_prompt relies on
        chat_template = "{% for m in messages %}<|user|>{{ m.content }}{% endfor %}<|assistant|>"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            assert tokenize is False and add_generation_prompt is True
            return f"<|user|>{messages[0]['content']}<|assistant|>"

    task = get_task("ones_digit", use_chat_template=True)
    ex = task.examples("test", limit=1)[0]
    assert task.render_prompt(ex, ChatTokenizer()) == f"<|user|>{task.prompt(ex)}<|assistant|><think>"
    # No tokenizer, or one without a chat template: the plain prompt.
    assert task.render_prompt(ex).endswith("Assistant: <think>")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pages": 5}, "unknown option 'pages'"),
        ({"min_pages": 0}, "option 'min_pages'"),
        ({"min_pages": 50, "max_pages": 20}, "max_pages (20) must be >= min_pages (50)"),
        ({"n_test": 990}, "n_test (990) must be smaller"),
        ({"n_train": "many"}, "option 'n_train'"),
    ],
)
def test_bad_options_name_the_option(options, message):
    with pytest.raises(ValueError, match="task 'ones_digit'") as err:
        get_task("ones_digit", **options)
    assert message in str(err.value)


def test_unknown_task_lists_available_ones():
    with pytest.raises(ValueError, match="unknown task 'gsm9k'") as err:
        get_task("gsm9k")
    for name in (
        "ones_digit",
        "gsm8k",
        "math",
        "gsm8k_sample",
        "math_sample",
        "custom",
        "addition",
        "multiplication",
        "multiplication_table",
    ):
        assert name in available_tasks() and name in str(err.value)


def test_example_is_frozen():
    ex = Example(id="a", question="q", answer="1")
    with pytest.raises(AttributeError):
        ex.answer = "2"  # type: ignore[misc]
