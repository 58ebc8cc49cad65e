"""The writer: one transaction per batch, one savepoint per job, replies only after COMMIT."""

import asyncio
import concurrent.futures
import fcntl
import sqlite3

import pytest

from brandvote import db as dbmod
from brandvote.writer import Writer


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
    other_worker = open(writer.db_path.with_name(writer.db_path.name + ".write-lock"), "a")
    fcntl.flock(other_worker, fcntl.LOCK_EX)

    async def main():
        first = asyncio.ensure_future(writer.submit(insert(0)))
        await asyncio.sleep(0.2)  # the writer has taken job 0 and waits for the lock
        rest = [asyncio.ensure_future(writer.submit(insert(x))) for x in range(1, 20)]
        await asyncio.sleep(0.2)
        assert rows(writer) == []
        fcntl.flock(other_worker, fcntl.LOCK_UN)
        return await asyncio.gather(first, *rest)

    try:
        assert run(main) == list(range(20))
    finally:
        other_worker.close()
    assert rows(writer) == list(range(20))
    assert (writer.batches, writer.jobs) == (1, 20)


def test_stop_answers_what_was_queued_before_it(writer):
    async def main():
        pending = [asyncio.ensure_future(writer.submit(insert(x))) for x in range(5)]
        await asyncio.sleep(0)  # queued
        await asyncio.get_running_loop().run_in_executor(None, writer.stop)
        return await asyncio.gather(*pending)

    assert run(main) == [0, 1, 2, 3, 4]
    assert rows(writer) == [0, 1, 2, 3, 4]
