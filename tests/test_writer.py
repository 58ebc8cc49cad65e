"""The writer: one transaction per batch, one savepoint per job, replies only after COMMIT."""

import asyncio
import concurrent.futures
import fcntl
import functools
import sqlite3

import pytest

from brandvote import db as dbmod
from brandvote.db.writer import Writer


@pytest.fixture
def writer(tmp_path):
    path = tmp_path / "w.db"
    dbmod.migrate(path)
    conn = sqlite3.connect(path)
    conn.execute("create table t (x integer unique)")
    conn.commit()
    conn.close()
    w = Writer(path)
    w.start()
    yield w
    w.stop()


def run(main):
    """asyncio.run on a thread of its own: the browser tests' Playwright keeps a loop on this one."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def rows(writer) -> list[int]:
    conn = sqlite3.connect(writer.db_path)
    try:
        return [x for (x,) in conn.execute("select x from t order by x")]
    finally:
        conn.close()


def behind_another_worker(writer, first, rest) -> list:
    """Submits first, and once the writer holds it and waits for the write lock another worker
    holds, the rest; then lets the lock go. The answers (or errors) in order."""
    other_worker = open(writer.db_path.with_name(writer.db_path.name + ".write-lock"), "a")
    fcntl.flock(other_worker, fcntl.LOCK_EX)

    async def main():
        head = asyncio.ensure_future(first())
        # the writer has taken the first job and waits for the lock
        assert await asyncio.to_thread(writer.waiting_for_lock.wait, 10)
        tail = [asyncio.ensure_future(job()) for job in rest]
        await asyncio.sleep(0)  # one turn of the loop: each job runs up to its queue.put
        assert rows(writer) == []
        fcntl.flock(other_worker, fcntl.LOCK_UN)
        return await asyncio.gather(head, *tail, return_exceptions=True)

    try:
        return run(main)
    finally:
        other_worker.close()


def insert(x):
    def job(db):
        db.execute("insert into t values (?)", [x])
        return x
    return job


def test_a_failing_job_undoes_only_itself_and_every_reply_follows_its_commit(writer):
    async def main():
        results = await asyncio.gather(*(writer.submit(insert(x)) for x in (1, 2, 2, 3)), return_exceptions=True)
        assert rows(writer) == [1, 2, 3]  # committed by the time the replies arrive
        return results

    first, second, duplicate, third = run(main)  # jobs run in the order they were queued
    assert (first, second, third) == (1, 2, 3) and isinstance(duplicate, sqlite3.IntegrityError)


def test_jobs_queued_while_another_worker_writes_join_one_commit(writer):
    """Two uvicorn workers take turns on the write lock; what queues meanwhile is one batch."""
    answers = behind_another_worker(writer, lambda: writer.submit(insert(0)),
                                    [functools.partial(writer.submit, insert(x)) for x in range(1, 20)])
    assert answers == list(range(20))
    assert rows(writer) == list(range(20))
    assert (writer.batches, writer.jobs) == (1, 20)


def test_stop_answers_what_was_queued_before_it(writer):
    async def main():
        pending = [asyncio.ensure_future(writer.submit(insert(x))) for x in range(5)]
        await asyncio.sleep(0)  # one turn of the loop: each job runs up to its queue.put
        await asyncio.get_running_loop().run_in_executor(None, writer.stop)
        return await asyncio.gather(*pending)

    assert run(main) == [0, 1, 2, 3, 4]
    assert rows(writer) == [0, 1, 2, 3, 4]


def insert_many(calls: list):
    """A run_many that stores its items in one statement, as cast_ballots does; records each call."""
    def run_many(db, items):
        calls.append(list(items))
        db.conn.executemany("insert into t values (?)", [[x] for x in items])
        return [(True, x) for x in items]
    return run_many


def test_jobs_of_one_kind_are_stored_by_one_call(writer):
    calls: list = []
    run_many = insert_many(calls)
    answers = behind_another_worker(writer, lambda: writer.submit_together(run_many, 0),
                                    [functools.partial(writer.submit_together, run_many, x) for x in range(1, 10)])
    assert answers == list(range(10))
    assert calls == [list(range(10))]
    assert rows(writer) == list(range(10))


def test_when_a_batch_call_fails_each_job_is_stored_alone(writer):
    """A statement failing on one item (here a UNIQUE clash) must not cost the others their write."""
    calls: list = []
    run_many = insert_many(calls)
    five, one, clash, two = behind_another_worker(
        writer, lambda: writer.submit(insert(5)),
        [functools.partial(writer.submit_together, run_many, x) for x in (1, 5, 2)])
    assert (five, one, two) == (5, 1, 2) and isinstance(clash, sqlite3.IntegrityError)
    assert calls == [[1, 5, 2], [1], [5], [2]]
    assert rows(writer) == [1, 2, 5]
    assert (writer.batches, writer.jobs) == (1, 4)


def test_a_refused_item_keeps_nothing_of_what_it_wrote(writer):
    """run_many may answer (False, error) for an item; run alone, whatever it wrote is undone."""
    def write_then_refuse(db, items):
        db.execute("insert into t values (?)", [items[0]])
        return [(False, ValueError("refused"))]

    async def main():
        return await asyncio.gather(writer.submit_together(write_then_refuse, 7), return_exceptions=True)

    (refusal,) = run(main)
    assert isinstance(refusal, ValueError) and rows(writer) == []
