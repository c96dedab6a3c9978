"""When may the worker swap weights in place, and when must it rebuild the engine?"""

import json
import shutil

from transformers import AutoTokenizer

from eval_service.worker.engine import tokenizer_hash


def test_resaved_tokenizer_keeps_its_identity(tiny_model, tmp_path):
    # The trainer re-saves the tokenizer into every checkpoint; transformers adds bookkeeping keys.
    ckpt = tmp_path / "checkpoint-10"
    shutil.copytree(tiny_model, ckpt)
    AutoTokenizer.from_pretrained(ckpt).save_pretrained(ckpt)
    assert tokenizer_hash(ckpt) == tokenizer_hash(tiny_model)


def test_changed_vocab_or_template_is_a_different_tokenizer(tiny_model, tmp_path):
    vocab = tmp_path / "vocab"
    shutil.copytree(tiny_model, vocab)
    tok = json.loads((vocab / "tokenizer.json").read_text())
    first = next(iter(tok["model"]["vocab"]))
    tok["model"]["vocab"][first + "x"] = tok["model"]["vocab"].pop(first)
    (vocab / "tokenizer.json").write_text(json.dumps(tok))
    assert tokenizer_hash(vocab) != tokenizer_hash(tiny_model)

    template = tmp_path / "template"
    shutil.copytree(tiny_model, template)
    (template / "chat_template.jinja").write_text("{{ messages[0]['content'] }}")
    assert tokenizer_hash(template) != tokenizer_hash(tiny_model)
