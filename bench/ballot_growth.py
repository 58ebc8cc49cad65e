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
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (FAST, HERE, SLUG, free_port, mint_ballots, prepare_database, start, stop,  # noqa: E402
                 stored_ballots, wait_for, wrk)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--conns", type=int, default=64)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="brandvote-growth-"))
    db_path = prepare_database(tmp)

    port = free_port()
    hello = start([sys.executable, "-m", "uvicorn", "hello:app", "--app-dir", str(HERE), "--port", str(port),
                   "--workers", str(args.workers), *FAST])
    wait_for(f"http://127.0.0.1:{port}/hello", hello)
    wrk(f"http://127.0.0.1:{port}/hello", args.conns, 1)
    runs = sorted(wrk(f"http://127.0.0.1:{port}/hello", args.conns, args.seconds)["rps"] for _ in range(3))
    stop(hello)
    limit = runs[1]
    print(f"hello w={args.workers} c={args.conns}: {limit:,.0f} req/s (median of {', '.join(f'{r:,.0f}' for r in runs)})")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = start([sys.executable, "-m", "brandvote", "serve", "--db", str(db_path), "--port", str(port),
                 "--workers", str(args.workers)], env={"BRANDVOTE_IP_LIMIT": "0", "BRANDVOTE_BASE_URL": base})
    wait_for(base + "/healthz", app)
    print("| ballots in the campaign before | ballots/s | x hello | p50 ms | p99 ms | errors | stored = 303 |")
    print("|---|---|---|---|---|---|---|")
    try:
        for round_ in range(args.rounds):
            tokens = tmp / f"ballots-{round_}.tsv"
            mint_ballots(db_path, tokens, 60000)
            before = stored_ballots(db_path)
            res = wrk(f"{base}/c/{SLUG}/ballot", args.conns, args.seconds, [str(HERE / "ballots.lua"), str(tokens)])
            time.sleep(1)  # the requests in flight at wrk's deadline finish
            stored = stored_ballots(db_path) - before
            acked, sent = res.get("BALLOTS_303", 0), res.get("BALLOTS_SENT", 0)
            unanswered = sent - acked - res.get("BALLOTS_OTHER", 0)
            ok = acked <= stored <= acked + unanswered and not res.get("BALLOTS_OTHER")
            print(f"| {before:,} | {res['rps']:,.0f} | {res['rps'] / limit:.3f} | {res['p50']:.2f} | {res['p99']:.2f}"
                  f" | {res['errors']} | {'yes' if ok else 'NO'} ({acked} answered 303, {stored} stored) |", flush=True)
    finally:
        stop(app)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
