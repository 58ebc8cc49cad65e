"""One writer thread per process, with group commit.

Ballots are written here and nowhere else. Writing from Starlette's threadpool makes
threads fight over SQLite's write lock through its sleeping busy handler (throughput
halves, p99 goes past a second: shared/research/perf-limits.md §2). Instead one thread
takes every queued write, runs each in its own SAVEPOINT inside one BEGIN IMMEDIATE,
commits once, and only then answers each waiting request, so synchronous=FULL costs
one fsync per batch and every reply still follows its commit. Workers of other
processes queue on a file lock rather than on the busy handler, and whatever arrives
while a worker waits for that lock joins its batch.
"""

from __future__ import annotations

import asyncio
import fcntl
import queue
import threading
from pathlib import Path
from typing import Callable

from . import db as dbmod

MAX_BATCH = 64
WAL_CHECKPOINT_PAGES = 4000


class Writer:
    def __init__(self, db_path: Path):
        self.db_path = Path(db_path)
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self.batches = 0  # for tests and bench: how many commits served how many jobs
        self.jobs = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="brandvote-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    async def submit(self, job: Callable):
        """Run job(db) in the write transaction; returns its result after COMMIT."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((job, future, loop))
        return await future

    def _run(self) -> None:
        db = dbmod.connect(self.db_path)
        # Checkpoint every 4000 WAL pages (16 MB), not SQLite's 1000: ballots dirty the same
        # index pages over and over, and each checkpoint copies them back once. A commit costs
        # ~35% less at 40-80k ballots (in-process, bench-sized batches); a checkpoint, still run
        # under the write lock so the WAL restarts, takes ~15-30 ms.
        db.conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
        lock = open(self.db_path.with_name(self.db_path.name + ".write-lock"), "a")
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                self._take_waiting(batch)
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    # While another worker held the lock, more ballots queued here: they join
                    # this commit rather than wait for the next one (fewer fsyncs under load).
                    self._take_waiting(batch)
                    outcomes = self._commit(db, batch)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
                self.batches += 1
                self.jobs += len(batch)
                for (_, future, loop), outcome in zip(batch, outcomes):
                    loop.call_soon_threadsafe(_settle, future, *outcome)
        finally:
            lock.close()
            db.close()

    def _take_waiting(self, batch: list) -> None:
        """Moves queued jobs into the batch, up to MAX_BATCH; stop()'s marker stays queued."""
        while len(batch) < MAX_BATCH:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is None:
                self._queue.put(None)
                return
            batch.append(item)

    def _commit(self, db, batch) -> list[tuple[bool, object]]:
        """One transaction for the batch, each job in its own savepoint; (ok, result or error) per job."""
        outcomes = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for job, _, _ in batch:
                db.conn.execute("SAVEPOINT job")
                try:
                    result = job(db)
                except BaseException as exc:  # the job's own error: undo only this job
                    db.conn.execute("ROLLBACK TO job")
                    db.conn.execute("RELEASE job")
                    outcomes.append((False, exc))
                else:
                    db.conn.execute("RELEASE job")
                    outcomes.append((True, result))
            db.conn.commit()
        except BaseException as exc:  # the commit itself failed: nothing of the batch is stored
            try:
                db.conn.rollback()
            except Exception:
                pass
            outcomes = [(False, exc)] * len(batch)
        return outcomes


def _settle(future: asyncio.Future, ok: bool, value) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
