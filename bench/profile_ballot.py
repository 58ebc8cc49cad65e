"""Where a ballot request's time goes: the whole ASGI stack in one process, no network.

`make bench` says how fast; this says why. It builds the app on the same temporary database
as bench/run.py, drives it directly through its ASGI interface (the ballot page GET as a
first visit, with and without gzip, concurrent ballot POSTs through the writer, and the receipt
page each voter opens next), prints microseconds per request, and then a cProfile of each,
sorted by time spent in each function itself. The profile covers the event loop's thread only.

    .venv/bin/python bench/profile_ballot.py [--requests N] [--top K]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import SLUG, mint_ballots, prepare_database  # noqa: E402

from brandvote.app import create_app  # noqa: E402
from brandvote.settings import Settings  # noqa: E402


async def started(app) -> tuple[dict, asyncio.Task]:
    """Run the app's lifespan startup; returns its state and the task that holds it open
    (keep the task referenced: the loop holds tasks weakly, and a collected one shuts down)."""
    state, sent = {}, []
    messages = iter([{"type": "lifespan.startup"}])

    async def receive():
        try:
            return next(messages)
        except StopIteration:
            await asyncio.sleep(86400)

    async def send(message):
        sent.append(message)

    task = asyncio.get_running_loop().create_task(
        app({"type": "lifespan", "state": state, "asgi": {"version": "3.0"}}, receive, send))
    while not sent:
        await asyncio.sleep(0.01)
    assert sent[0]["type"] == "lifespan.startup.complete", sent
    return state, task


async def call(app, state, method: str, path: str, headers: list, body: bytes = b"") -> int:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1:8000"), *headers], "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", 8000), "state": dict(state)}
    out = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        out.append(message)

    await app(scope, receive, send)
    return out[0]["status"]


async def measure(name: str, n: int, run, top: int) -> None:
    """Time n requests unprofiled, then profile another n (cProfile slows them ~2x)."""
    start = time.perf_counter()
    await run(n)
    seconds = time.perf_counter() - start
    profile = cProfile.Profile()
    profile.enable()
    await run(n)
    profile.disable()
    print(f"\n== {name}: {seconds / n * 1e6:.1f} µs per request ({n / seconds:,.0f}/s in one process)")
    pstats.Stats(profile).sort_stats("tottime").print_stats(top)


async def main(args) -> None:
    tmp = Path(tempfile.mkdtemp())
    db_path = prepare_database(tmp)
    mint_ballots(db_path, tmp / "ballots.tsv", 3 * args.requests)
    ballots = iter(line.rstrip("\n").split("\t") for line in open(tmp / "ballots.tsv"))
    app = create_app(Settings.from_env(db_path=str(db_path), environ={"BRANDVOTE_IP_LIMIT": "0"}))
    state, lifespan = await started(app)

    for name, headers in (("ballot page GET, first visit", []),
                          ("ballot page GET, first visit, gzip", [(b"accept-encoding", b"gzip, deflate, br")])):
        async def pages(n: int, headers=headers) -> None:
            for _ in range(n):
                assert await call(app, state, "GET", f"/c/{SLUG}", headers) == 200
        await pages(100)  # warm-up
        await measure(name, args.requests, pages, args.top)

    voted: list[str] = []

    async def post():
        cookie, token, choices = next(ballots)
        voted.append(cookie)
        body = f"csrf_token={token}&{choices}".encode()
        status = await call(app, state, "POST", f"/c/{SLUG}/ballot",
                            [(b"cookie", b"bv_device=" + cookie.encode()),
                             (b"content-type", b"application/x-www-form-urlencoded"),
                             (b"content-length", str(len(body)).encode())], body)
        assert status == 303, status

    async def crowd(n: int, conns: int = 32) -> None:
        gate = asyncio.Semaphore(conns)

        async def one():
            async with gate:
                await post()
        await asyncio.gather(*(one() for _ in range(n)))

    await crowd(args.requests // 4)  # warm-up
    writer = state["writer"]
    batches, jobs = writer.batches, writer.jobs
    await measure("ballot POST, 32 at a time (the profile covers the event loop thread, not the writer's)",
                  args.requests, crowd, args.top)
    print(f"writer: {writer.jobs - jobs} ballots in {writer.batches - batches} commits")

    # What a phone opens next: the 303 leads to the receipt, rendered for each voter.
    receipts = iter(voted)

    async def receipt_pages(n: int) -> None:
        for _ in range(n):
            cookie = next(receipts).encode()
            assert await call(app, state, "GET", f"/c/{SLUG}/receipt",
                              [(b"cookie", b"bv_device=" + cookie), (b"accept-encoding", b"gzip")]) == 200
    warm = min(100, len(voted) // 5)
    await receipt_pages(warm)
    # measure() runs n twice (timed, then profiled), each time with voters not yet looked at
    await measure("receipt page GET after voting (one at a time)", min(1000, (len(voted) - warm) // 2),
                  receipt_pages, args.top)
    lifespan.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--top", type=int, default=25)
    asyncio.run(main(parser.parse_args()))
