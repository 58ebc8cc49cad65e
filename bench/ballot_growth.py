"""Ballot POST throughput as a campaign fills up: hello measured first (the limit, same server
settings), then round after round of wrk posting fresh valid ballots into the same campaign.

bench/run.py measures each row once the campaign already holds what the earlier rows cast;
this shows how the rate moves with the campaign's size (its indexes outgrow the page cache,
each commit dirties more pages).

    .venv/bin/python bench/ballot_growth.py [--rounds 8] [--seconds 5] [--workers 2] [--conns 64]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import median_run, post_ballots, prepare_database, start_app, start_hello, stop, wrk_runs  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--conns", type=int, default=64)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="brandvote-growth-"))
    db_path = prepare_database(tmp)

    hello, hello_url = start_hello(args.workers)
    runs = wrk_runs(hello_url, args.conns, args.seconds, 3)
    stop(hello)
    limit = median_run(runs)["rps"]
    each = ", ".join(f"{r['rps']:,.0f}" for r in runs)
    print(f"hello w={args.workers} c={args.conns}: {limit:,.0f} req/s (median of {each})")

    app, base = start_app(db_path, args.workers)
    print("| ballots in the campaign before | ballots/s | x hello | p50 ms | p99 ms | errors | stored = 303 |")
    print("|---|---|---|---|---|---|---|")
    try:
        for round_ in range(args.rounds):
            res = post_ballots(base, db_path, tmp / f"ballots-{round_}.tsv", args.conns, args.seconds)
            print(f"| {res['before']:,} | {res['rps']:,.0f} | {res['rps'] / limit:.3f} | {res['p50']:.2f}"
                  f" | {res['p99']:.2f} | {res['errors']} | {'yes' if res['ok'] else 'NO'}"
                  f" ({res['acked']} answered 303, {res['stored']} stored) |", flush=True)
    finally:
        stop(app)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
