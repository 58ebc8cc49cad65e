"""Tally at scale: 1,000,000 ballots x 10 choices, computed once at closing and verified
against a streamed recount of the ledger; then the results page from storage.

Prints how long building the data took (not a target), the one-time tally, and the
results page afterwards (first render and cached), with peak RSS.
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from starlette.testclient import TestClient

from brandvote import ballots as ballotsmod, campaigns, clock, db as dbmod, seed, tally
from brandvote.app import create_app
from brandvote.settings import Settings

SLUG = "shanghai-2022-highlights"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ballots", type=int, default=1_000_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="brandvote-tally-"))
    path = tmp / "tally.db"
    dbmod.migrate(path)
    db = dbmod.connect(path)
    now = clock.utcnow()
    seed.load_file(db, seed.bundled_catalog_path(), now)
    opens, closes = now - timedelta(days=3), now - timedelta(days=1)
    db.execute("update campaigns set opens_at = ?, closes_at = ?, announce_at = ?, frozen_at = ? where slug = ?",
               [clock.to_db(opens), clock.to_db(closes), clock.to_db(now - timedelta(hours=1)), clock.to_db(opens), SLUG])
    db.conn.commit()
    camp = campaigns.campaign_by_slug(db, SLUG)
    brand_ids = [r[0] for r in db.execute(
        "select brand_id from candidates where campaign_id = ? order by position", [camp["id"]])]
    slug_of = {r[0]: r[1] for r in db.execute("select id, slug from brands")}
    rng = random.Random(1)
    weights = [rng.random() + 0.1 for _ in brand_ids]
    started = time.perf_counter()
    batch = 20_000
    for start in range(0, args.ballots, batch):
        n = min(batch, args.ballots - start)
        ballots, choices = [], []
        for i in range(start, start + n):
            receipt = f"B{i:011d}"
            ballots.append((i + 1, camp["id"], f"bench:{i}", receipt, ballotsmod.receipt_hash(receipt),
                            None, clock.to_db(opens + timedelta(seconds=i % 86400))))
            picked = set()
            while len(picked) < 10:
                picked.add(rng.choices(brand_ids, weights)[0])
            choices.extend((i + 1, camp["id"], b) for b in picked)
            ballots[-1] = ballots[-1][:5] + (";".join(sorted(slug_of[b] for b in picked)),) + ballots[-1][5:]
        with dbmod.immediate(db):
            db.conn.executemany("insert into ballots (id, campaign_id, voter_key, receipt, receipt_hash, choice_set,"
                                " channel, cast_at) values (?, ?, ?, ?, ?, ?, ?, ?)", ballots)
            db.conn.executemany("insert into choices (ballot_id, campaign_id, brand_id) values (?, ?, ?)", choices)
    built = time.perf_counter() - started
    print(f"built {args.ballots:,} ballots x 10 choices in {built:.1f} s (setup, not a target)", flush=True)
    db.close()

    db = dbmod.connect(path)
    camp = campaigns.campaign_by_slug(db, SLUG)
    started = time.perf_counter()
    res = tally.results(db, camp, now)
    once = time.perf_counter() - started
    print(f"tally at closing (GROUP BY + streamed ledger recount + SHA-256, verified, stored): {once:.2f} s")
    started = time.perf_counter()
    tally.results(db, camp, now)
    print(f"tally afterwards, from storage: {(time.perf_counter() - started) * 1000:.2f} ms")
    assert res["ballots"] == args.ballots and sum(r.votes for r in res["rows"]) == 10 * args.ballots
    db.close()

    settings = Settings(db_path=path, secret="bench", base_url="http://127.0.0.1:8000")
    with TestClient(create_app(settings)) as client:
        timings = []
        for _ in range(50):
            t = time.perf_counter()
            r = client.get(f"/c/{SLUG}/results")
            timings.append(time.perf_counter() - t)
            assert r.status_code == 200
        print(f"results page: first {timings[0] * 1000:.2f} ms, then median "
              f"{sorted(timings[1:])[len(timings) // 2] * 1000:.3f} ms (in-process, cached)")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
