"""The copies of a query result (``query.service._Tee``: a user table written from the
same batches as the result document) are written by a thread of their own: every batch
up to the limit reaches them, a failing copy is dropped without touching the result or
the others, and ``close`` returns only once the copies have everything."""

from __future__ import annotations

import threading
import time

import pyarrow as pa

from taphouse.query.service import _Tee


class _Copy:
    def __init__(self, fail_at: int | None = None, pause: float = 0.0) -> None:
        self.rows, self.schema, self.aborted = 0, None, False
        self.fail_at, self.pause = fail_at, pause
        self.threads: set[str] = set()

    def start(self, schema: pa.Schema) -> None:
        self.schema = schema

    def write(self, batch: pa.RecordBatch) -> None:
        self.threads.add(threading.current_thread().name)
        time.sleep(self.pause)
        if self.fail_at is not None and self.rows >= self.fail_at:
            raise RuntimeError("disk on fire")
        self.rows += batch.num_rows

    def abort(self) -> None:
        self.aborted = True


def _batches(n: int, size: int = 100):
    for k in range(0, n, size):
        yield pa.record_batch({"id": pa.array(range(k, min(k + size, n)), pa.int64())})


def test_copies_get_every_row_up_to_the_limit_and_close_waits() -> None:
    slow, failing = _Copy(pause=0.01), _Copy(fail_at=300)
    tee = _Tee(_batches(1000), [slow, failing], 750, pa.schema([("id", pa.int64())]))
    seen = sum(next(tee).num_rows for _ in range(3))  # the result stops after 300 rows
    tee.drain()  # ... the copies read on to the limit
    tee.close()
    assert seen == 300
    assert slow.rows == 750 and not slow.aborted and slow.schema is not None
    assert slow.threads == {"result-copy"}  # not the thread formatting the result
    assert failing.aborted and failing.rows == 300 and tee.copies == [slow]
    tee.close()  # safe to repeat


def test_result_going_on_while_a_copy_lags() -> None:
    lagging = _Copy(pause=0.05)
    tee = _Tee(_batches(2000), [lagging], 10_000, None)
    t0 = time.perf_counter()
    rows = sum(b.num_rows for b in tee)
    before_close = lagging.rows
    tee.close()
    assert rows == 2000 and lagging.rows == 2000
    assert before_close < 2000  # the result did not wait for each copied batch
    assert time.perf_counter() - t0 >= 20 * 0.05


def test_a_copy_dying_of_a_base_exception_does_not_block_the_result() -> None:
    class Dying(_Copy):
        def write(self, batch: pa.RecordBatch) -> None:
            raise SystemExit("gone")

    dying, fine = Dying(), _Copy()
    tee = _Tee(_batches(5000), [dying, fine], 10_000, None)
    done: list[int] = []
    runner = threading.Thread(target=lambda: (done.append(sum(b.num_rows for b in tee)),
                                              tee.close()), daemon=True)
    runner.start()
    runner.join(60)
    assert done == [5000] and not runner.is_alive()
    assert dying.aborted and tee.copies == [fine] and fine.rows == 5000
