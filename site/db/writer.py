"""One writer thread per process, with group commit.

Ballots are written here and nowhere else. Writing from Starlette's threadpool makes
threads fight over SQLite's write lock through its sleeping busy handler, which sleeps
longer than a commit takes, so throughput drops and the slowest replies wait for seconds.
Instead one thread
takes every queued write into one BEGIN IMMEDIATE, commits once, and only then answers
each waiting request, so synchronous=FULL costs one fsync per batch and every reply still
follows its commit. Jobs of one kind (ballots) are handed over together, so their rule
module can store a batch in a few statements; a plain job, or one whose batch failed,
runs in a SAVEPOINT of its own, so one job's failure undoes only that job. Workers of other
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

from .connection import connect

MAX_BATCH = 64
WAL_CHECKPOINT_PAGES = 4000


class Writer:
    def __init__(self, db_path: Path):
        self.db_path = Path(db_path)
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self.batches = 0  # for tests and bench: how many commits served how many jobs
        self.jobs = 0
        # Set while a batch waits for the write lock another worker holds: a test queues the
        # jobs that must join that batch once it is set, rather than after a guessed sleep.
        self.waiting_for_lock = threading.Event()

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
        return await self.submit_together(_run_alone, job)

    async def submit_together(self, run_many: Callable, item):
        """Queue item for run_many(db, items) -> [(ok, result or error)], which stores the items
        of one batch in a few set-based statements; returns item's result after COMMIT."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((run_many, item, future, loop))
        return await future

    def _run(self) -> None:
        db = connect(self.db_path)
        # Checkpoint every 4000 WAL pages (16 MB), not SQLite's 1000: ballots dirty the same
        # index pages over and over, and each checkpoint copies them back once, so fewer
        # checkpoints make commits cheaper (bench/writer_cost.py). A checkpoint still runs
        # under the write lock, so the WAL restarts.
        db.conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
        lock = open(self.db_path.with_name(self.db_path.name + ".write-lock"), "a")
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                self._take_waiting(batch)
                self.waiting_for_lock.set()
                fcntl.flock(lock, fcntl.LOCK_EX)
                self.waiting_for_lock.clear()
                try:
                    # While another worker held the lock, more ballots queued here: they join
                    # this commit rather than wait for the next one (fewer fsyncs under load).
                    self._take_waiting(batch)
                    outcomes = self._commit(db, batch)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
                self.batches += 1
                self.jobs += len(batch)
                for (_, _, future, loop), outcome in zip(batch, outcomes):
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
        """One transaction for the batch; (ok, result or error) per job, in queue order."""
        try:
            db.execute("BEGIN IMMEDIATE")
            outcomes = []
            for run_many, items in _runs(batch):
                outcomes += self._run_together(db, run_many, items)
            db.conn.commit()
        except BaseException as exc:  # the commit itself failed: nothing of the batch is stored
            try:
                db.conn.rollback()
            except Exception:
                pass
            outcomes = [(False, exc)] * len(batch)
        return outcomes

    def _run_together(self, db, run_many, items) -> list[tuple[bool, object]]:
        """run_many on all the items in one savepoint; if it raises, each item alone in its own,
        so a statement failing on one item undoes only that item."""
        if len(items) > 1:
            db.conn.execute("SAVEPOINT batch")
            try:
                outcomes = run_many(db, items)
            except BaseException:
                db.conn.execute("ROLLBACK TO batch")
                db.conn.execute("RELEASE batch")
            else:
                db.conn.execute("RELEASE batch")
                return outcomes
        outcomes = []
        for item in items:
            db.conn.execute("SAVEPOINT job")
            try:
                (outcome,) = run_many(db, [item])
            except BaseException as exc:
                outcome = (False, exc)
            if outcome[0]:
                db.conn.execute("RELEASE job")
            else:  # refused or failed: whatever the item wrote goes
                db.conn.execute("ROLLBACK TO job")
                db.conn.execute("RELEASE job")
            outcomes.append(outcome)
        return outcomes


def _run_alone(db, jobs: list[Callable]) -> list[tuple[bool, object]]:
    """A plain job: run_many for one callable, raising what it raises."""
    (job,) = jobs
    return [(True, job(db))]


def _runs(batch: list) -> list[tuple[Callable, list]]:
    """The batch cut into runs of consecutive jobs of one kind, in queue order."""
    runs: list[tuple[Callable, list]] = []
    for run_many, item, _, _ in batch:
        if runs and runs[-1][0] is run_many and run_many is not _run_alone:
            runs[-1][1].append(item)
        else:
            runs.append((run_many, [item]))
    return runs


def _settle(future: asyncio.Future, ok: bool, value) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
