"""What a campaign QR code costs a worker: ms of CPU per uncached and per cached image.

A client asking for /c/{slug}/qr.png with a new `ch=` each time makes the worker render a new
code on every request; this prints what that costs, per format and size, next to the same
URL asked again (served from the caches), through the whole app in one process (Starlette's
TestClient, no network) on the bench database (bench/run.py's). CPU is process time, all
threads included, so it counts the threadpool's render as well as the event loop; the last
line is a cached catalog page, the floor any request through TestClient costs. Then the two parts of a render alone, in this
thread's CPU: qrcode's matrix with its mask search, and the PNG writer per size.

    .venv/bin/python bench/qr_cost.py [--requests N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import SLUG, prepare_database  # noqa: E402

from brandvote import qr  # noqa: E402
from brandvote.app import create_app  # noqa: E402
from brandvote.settings import Settings  # noqa: E402


def cpu_ms(client: TestClient, paths: list[str]) -> float:
    """Mean process CPU per request, in ms; every answer must be 200 (or the figure is wrong)."""
    start = time.process_time()
    for path in paths:
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
    return (time.process_time() - start) * 1000 / len(paths)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="requests per figure")
    args = parser.parse_args()
    n = args.requests
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db_path=prepare_database(Path(tmp)), secret="bench-secret",
                            base_url="https://vote.example.org")
        with TestClient(create_app(settings), base_url="https://testserver") as client:
            client.get("/brands")
            print(f"{'image':<12} {'uncached ms CPU':>16} {'cached ms CPU':>14}")
            for fmt, size in (("png", 8), ("png", 20), ("svg", 10), ("svg", 20)):
                base = f"/c/{SLUG}/qr.{fmt}?size={size}"
                uncached = cpu_ms(client, [f"{base}&ch={fmt}{size}-bench-{i}" for i in range(n)])
                cached = cpu_ms(client, [f"{base}&ch={fmt}{size}-bench-0"] * n)
                print(f"{fmt} size {size:<3} {uncached:16.2f} {cached:14.2f}")
            print(f"{'/brands':<12} {'':>16} {cpu_ms(client, ['/brands'] * n):14.2f}")
    print(f"\n{'part of a render':<24} {'ms CPU':>8}")
    url = f"https://vote.example.org/c/{SLUG}?ch=" + "c" * 32
    print(f"{'matrix (mask search)':<24} {thread_ms(lambda: qr.matrix(url), n):8.2f}")
    rows = qr.matrix(url)
    for size in (qr.MIN_SIZE, 8, qr.MAX_SIZE):
        print(f"{f'PNG writer, size {size}':<24} {thread_ms(lambda: qr.png_from_matrix(rows, size), n):8.2f}")
    return 0


def thread_ms(fn, n: int) -> float:
    start = time.thread_time()
    for _ in range(n):
        fn()
    return (time.thread_time() - start) * 1000 / n


if __name__ == "__main__":
    sys.exit(main())
