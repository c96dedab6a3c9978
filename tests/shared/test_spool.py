import multiprocessing as mp
import os
import signal

from shared.spool import Spool


def _append_then_die(path: str, n: int) -> None:
    spool = Spool(path)
    for i in range(n):
        spool.append("metric", {"i": i})
    os.kill(os.getpid(), signal.SIGKILL)


def test_records_survive_sigkill_and_replay_in_order(tmp_path):
    path = tmp_path / "spool.db"
    proc = mp.get_context("spawn").Process(target=_append_then_die, args=(str(path), 50))
    proc.start()
    proc.join()
    assert proc.exitcode == -signal.SIGKILL

    spool = Spool(path)
    records = spool.pending()
    assert [r.payload["i"] for r in records] == list(range(50))
    for r in records[:20]:
        spool.ack(r.id)
    spool.close()

    reopened = Spool(path)
    assert [r.payload["i"] for r in reopened.pending()] == list(range(20, 50))
    assert len(reopened) == 30


def test_pending_filters_by_kind(tmp_path):
    spool = Spool(tmp_path / "s.db")
    spool.append("a", {"x": 1})
    spool.append("b", {"x": 2})
    spool.append("a", {"x": 3})
    assert [r.payload["x"] for r in spool.pending("a")] == [1, 3]
