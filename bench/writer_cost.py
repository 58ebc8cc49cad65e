"""What the writer spends per ballot as a campaign fills up, in one process, no server.

Under wrk the writer is one of four busy threads on two cores, and its share is hard to see;
here it runs alone: batches of fresh valid ballots through ballots.cast_ballots inside BEGIN
IMMEDIATE, then COMMIT with synchronous=FULL, on the bench database (bench/run.py's). It
prints, at each campaign size, the median time cast_ballots takes per ballot (the rules and
the inserts) and the median and p99 of a commit (the fsync, and now and then a checkpoint).
Only one writer holds the write lock at a time, so this bounds ballots/s from above.

    .venv/bin/python bench/writer_cost.py [--sizes 0,50000,100000] [--batch 20] [--batches 200]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import SLUG, prepare_database  # noqa: E402

from brandvote import ballots, campaigns, clock, db as dbmod  # noqa: E402
from brandvote.db.writer import WAL_CHECKPOINT_PAGES  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,50000,100000")
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    db = dbmod.connect(prepare_database(Path(tempfile.mkdtemp(prefix="brandvote-writer-"))))
    db.conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")  # as the writer does
    camp = campaigns.campaign_by_slug(db, SLUG)
    candidates = [b["slug"] for b in campaigns.candidates_of(db, camp["id"])]
    rng = random.Random(1)
    now = clock.utcnow()

    def batch() -> tuple[float, float]:
        requests = [ballots.BallotRequest(camp["id"], "device:" + os.urandom(32).hex(),
                                         rng.sample(candidates, rng.randint(1, 10)), now)
                    for _ in range(args.batch)]
        db.execute("BEGIN IMMEDIATE")
        start = time.perf_counter()
        outcomes = ballots.cast_ballots(db, requests)
        cast = time.perf_counter()
        db.conn.commit()
        assert all(ok for ok, _ in outcomes), outcomes
        return cast - start, time.perf_counter() - cast

    stored = 0
    print("| ballots in the campaign | cast µs per ballot | commit ms (median) | commit ms (p99) |")
    print("|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        while stored < size:
            batch()
            stored += args.batch
        runs = [batch() for _ in range(args.batches)]
        stored += args.batch * args.batches
        commits = sorted(c for _, c in runs)
        print(f"| {size:,} | {statistics.median(c for c, _ in runs) * 1e6 / args.batch:.1f}"
              f" | {statistics.median(commits) * 1e3:.2f} | {commits[int(len(commits) * 0.99)] * 1e3:.2f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
