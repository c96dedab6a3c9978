"""What a model generates is stored on every backend: an untrained model's NUL bytes (PostgreSQL
text refuses them) come back as U+FFFD instead of failing the complete with a 500."""

from __future__ import annotations

from shared.schemas import CompleteRequest, EvalSpec, Sample


def test_sample_text_with_nul_bytes_is_stored_as_replacement_characters(ledger):
    c = ledger.client()
    d = ledger.checkpoint_root / "checkpoint-1"
    d.mkdir()
    c.enqueue(EvalSpec(task="arith"), path=str(d), run="r")
    lease = c.claim("w")
    sample = Sample(
        index=0, prompt="2+2?", response="4\x00\x00!", gold="4", correct=False, format_ok=False, category="x"
    )
    c.complete(
        lease.job.id,
        CompleteRequest(worker_id="w", attempt=lease.attempt, metrics={"accuracy": 0.0}, samples=[sample]),
    )
    assert [s.response for s in c.samples(lease.job.id).items] == ["4\ufffd\ufffd!"]
