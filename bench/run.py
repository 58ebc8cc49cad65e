"""`make bench`: the real app beside the limit (bare Starlette "hello") and a peer (Datasette),
all under the same uvicorn settings, driven by wrk on 127.0.0.1 for a bounded time.

Prints req/s, p50, p99, errors and the ratio to hello from the same run, peak RSS per worker,
the ballot page's bytes over the wire, and after each ballot run that stored ballots equal the
303 answers. Each row is the median of --repeat runs (3 by default; each run's req/s is printed
too): this VM's throughput moves by a third between seconds, and one slow run must not decide a
ratio. Figures move from machine to machine: compare the ratios.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SLUG = "shanghai-2022-highlights"
RESULTS = "bench-results"
FAST = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited while starting: {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server did not answer: {url}")


def start(cmd: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def process_tree(pid: int) -> list[int]:
    pids, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == parent:
                    pids.append(int(entry.name))
                    frontier.append(int(entry.name))
    return pids


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wrk(url: str, conns: int, seconds: int, script: list[str] | None = None, headers: tuple = ()) -> dict:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    for header in headers:
        cmd += ["-H", header]
    if script:
        cmd += ["-s", script[0], url, "--", *script[1:]]
    else:
        cmd += [url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout

    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]

    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result = {"rps": float(rps.group(1)) if rps else 0.0, "p50": latency("50"), "p99": latency("99"),
              "errors": errors + (int(non2xx.group(1)) if non2xx else 0), "raw": out}
    for key in ("BALLOTS_303", "BALLOTS_OTHER", "BALLOTS_SENT"):
        m = re.search(rf"{key} (\d+)", out)
        if m:
            result[key] = int(m.group(1))
    return result


# ---------------------------------------------------------------- the database under test

def prepare_database(tmp: Path) -> Path:
    from brandvote import ballots, campaigns, clock, db as dbmod, seed

    path = tmp / "bench.db"
    dbmod.migrate(path)
    db = dbmod.connect(path)
    now = clock.utcnow()
    seed.load_file(db, seed.bundled_catalog_path(), now)
    campaigns.schedule_demo(db, SLUG, now)
    demo = campaigns.campaign_by_slug(db, SLUG)
    cands = [b["slug"] for b in campaigns.candidates_of(db, demo["id"])]
    # an announced campaign with a few thousand ballots, for the results page
    campaigns.upsert_campaign(db, {"slug": RESULTS, "title": "基准测试：已揭晓的评选", "intro": "基准测试用。",
                                "candidates": cands, "opens_at": clock.to_db(now - timedelta(days=3)),
                                "closes_at": clock.to_db(now - timedelta(days=2)),
                                "announce_at": clock.to_db(now - timedelta(days=1))},
                           {r["slug"]: r["id"] for r in db.query("select id, slug from brands")},
                           now - timedelta(days=4))
    db.conn.commit()
    camp = campaigns.campaign_by_slug(db, RESULTS)
    import random

    rng = random.Random(1)
    with dbmod.immediate(db):
        for i in range(5000):
            ballots.cast_ballot(db, camp["id"], f"bench:{i}", rng.sample(cands, rng.randint(1, 10)),
                               now - timedelta(days=2, hours=1), page_loaded_at=now - timedelta(days=2, hours=1))
    # An announcement by time waits for a decided cut-off (campaigns.status): decide any tie
    # here as the organizer would, or the row would time the embargo page instead.
    from brandvote import tally

    tied, seats = tally.tie_at_cut_off(db, camp, now)
    if tied:
        tally.decide_tie(db, camp, [r.slug for r in tied[:seats]], now, actor="bench")
    tally.settle(db, campaigns.campaign_by_slug(db, RESULTS), now)
    assert tally.is_announced(campaigns.campaign_by_slug(db, RESULTS), now), "bench results campaign not announced"
    db.close()
    return path


def mint_ballots(db_path: Path, out: Path, count: int) -> None:
    """Valid (device cookie, CSRF token, choices) triples, minted as the ballot page would."""
    import random
    from urllib.parse import urlencode

    from brandvote import campaigns, clock, db as dbmod
    from brandvote.security import Tokens
    from brandvote.settings import secret_from_file

    tokens = Tokens(secret_from_file(db_path))
    db = dbmod.connect(db_path)
    camp = campaigns.campaign_by_slug(db, SLUG)
    cands = [b["slug"] for b in campaigns.candidates_of(db, camp["id"])]
    db.close()
    issued = clock.utcnow() - timedelta(minutes=1)
    rng = random.Random(2)
    with open(out, "w") as fh:
        for _ in range(count):
            device, cookie = tokens.new_device()
            token = tokens.csrf(tokens.voter_key("device", device), camp["id"], issued)
            choices = urlencode([("choice", c) for c in rng.sample(cands, rng.randint(1, 10))])
            fh.write(f"{cookie}\t{token}\t{choices}\n")


def stored_ballots(db_path: Path) -> int:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("select count(*) from ballots b join campaigns c on c.id = b.campaign_id"
                            " where c.slug = ?", [SLUG]).fetchone()[0]
    finally:
        conn.close()


def wire_bytes(base: str) -> dict:
    """The ballot page as a phone on a slow network fetches it: HTML + CSS + JS, gzipped."""
    def get(path):
        req = urllib.request.Request(base + path, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(req) as r:
            return r.read(), r.headers.get("Content-Encoding")

    html, enc = get(f"/c/{SLUG}")
    text = gzip.decompress(html).decode() if enc == "gzip" else html.decode()
    sizes = {"html": len(html)}
    for path in re.findall(r'(?:href|src)="(/static/[^"]+)"', text):
        body, _ = get(path)
        sizes[path.split("?")[0]] = len(body)
    return sizes


# ---------------------------------------------------------------- shared by the bench scripts

def start_hello(workers: int) -> tuple[subprocess.Popen, str]:
    """The bare Starlette app under the same server settings: the limit."""
    port = free_port()
    proc = start([sys.executable, "-m", "uvicorn", "hello:app", "--app-dir", str(HERE), "--port", str(port),
                  "--workers", str(workers), *FAST])
    url = f"http://127.0.0.1:{port}/hello"
    wait_for(url, proc)
    return proc, url


def start_app(db_path: Path, workers: int) -> tuple[subprocess.Popen, str]:
    """`brandvote serve` on the bench database, with no per-address ballot limit (one client)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start([sys.executable, "-m", "brandvote", "serve", "--db", str(db_path), "--port", str(port),
                  "--workers", str(workers)], env={"BRANDVOTE_IP_LIMIT": "0", "BRANDVOTE_BASE_URL": base})
    wait_for(base + "/healthz", proc)
    return proc, base


def wrk_runs(url: str, conns: int, seconds: int, repeat: int, headers: tuple = ()) -> list[dict]:
    wrk(url, conns, 1, headers=headers)  # warm-up
    return [wrk(url, conns, seconds, headers=headers) for _ in range(repeat)]


def median_run(runs: list[dict]) -> dict:
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def post_ballots(base: str, db_path: Path, tokens_file: Path, conns: int, seconds: int) -> dict:
    """wrk posting fresh single-use ballots; then the check that stored ballots equal the 303s
    (plus at most the requests cut off by wrk's deadline). Returns wrk's result with the check."""
    mint_ballots(db_path, tokens_file, 60000)
    before = stored_ballots(db_path)
    res = wrk(f"{base}/c/{SLUG}/ballot", conns, seconds, [str(HERE / "ballots.lua"), str(tokens_file)])
    time.sleep(1)  # let the requests still in flight at wrk's deadline finish
    stored = stored_ballots(db_path) - before
    acked, sent = res.get("BALLOTS_303", 0), res.get("BALLOTS_SENT", 0)
    unanswered = sent - acked - res.get("BALLOTS_OTHER", 0)
    ok = acked <= stored <= acked + unanswered and not res.get("BALLOTS_OTHER")
    return {**res, "before": before, "stored": stored, "acked": acked, "sent": sent, "unanswered": unanswered,
            "ok": ok}


# ---------------------------------------------------------------- the run

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "5")))
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--conns", default="16,64")
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", "3")),
                        help="runs per row; the median (by req/s) is reported, so one noisy run moves no ratio")
    parser.add_argument("--datasette", default=str(HERE / ".venv-datasette" / "bin" / "datasette"))
    args = parser.parse_args()
    workers_list = [int(w) for w in args.workers.split(",")]
    conns_list = [int(c) for c in args.conns.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="brandvote-bench-"))
    db_path = prepare_database(tmp)
    rows: list[tuple] = []
    ratios: dict = {}
    notes: list[str] = []
    hello_rps: dict = {}

    def record(name, workers, conns, runs: list[dict]) -> dict:
        """The median run by req/s stands for the row; every run's req/s is printed beside it."""
        res = {**median_run(runs), "errors": sum(r["errors"] for r in runs)}
        base = hello_rps.get((workers, conns))
        ratio = res["rps"] / base if base else float("nan")
        ratios[(name, workers, conns)] = ratio
        rows.append((name, workers, conns, res["rps"], res["p50"], res["p99"], res["errors"], ratio))
        each = "/".join(f"{r['rps']:.0f}" for r in runs)
        print(f"  {name:<22} w={workers} c={conns:<3} {res['rps']:>9.0f} req/s  p50 {res['p50']:7.2f} ms"
              f"  p99 {res['p99']:8.2f} ms  errors {res['errors']:<5} x{ratio:.2f} of hello  (runs {each})",
              flush=True)
        return res

    def measure(url, conns, headers=()) -> list[dict]:
        return wrk_runs(url, conns, args.seconds, args.repeat, headers)

    def ballot_run(base, workers, conns, run) -> dict:
        res = post_ballots(base, db_path, tmp / f"ballots-{workers}-{conns}-{run}.tsv", conns, args.seconds)
        note = (f"ballot POST w={workers} c={conns} run {run + 1} (campaign held {res['before']:,} ballots): sent "
                f"{res['sent']}, 303 answers {res['acked']}, other answers {res.get('BALLOTS_OTHER')}, in flight"
                f" at wrk's deadline {res['unanswered']}, stored {res['stored']} -> "
                f"{'OK: every 303 stored, nothing else but in-flight' if res['ok'] else 'MISMATCH'}")
        print("  " + note, flush=True)
        notes.append(note)
        return res

    rss: dict = {}
    for workers in workers_list:
        hello, hello_url = start_hello(workers)
        for conns in conns_list:
            runs = measure(hello_url, conns)
            hello_rps[(workers, conns)] = median_run(runs)["rps"]
            record("hello (limit)", workers, conns, runs)
        stop(hello)

        app, base = start_app(db_path, workers)
        endpoints = [
            ("home", "/"), ("/brands", "/brands"), ("/brands/{slug}", "/brands/guoshi-shuyuan"),
            ("/lists/{slug}", "/lists/shanghai-30-brands"), ("ballot page GET", f"/c/{SLUG}"),
            ("ballot page GET, gzip", f"/c/{SLUG}", ("Accept-Encoding: gzip",)),  # as every phone asks
            ("results (announced)", f"/c/{RESULTS}/results"), ("QR PNG", f"/c/{SLUG}/qr.png?ch=paper"),
        ]
        for conns in conns_list:
            for name, path, *headers in endpoints:
                record(name, workers, conns, measure(base + path, conns, headers[0] if headers else ()))
            record("ballot POST", workers, conns, [ballot_run(base, workers, conns, run) for run in range(args.repeat)])
        rss[workers] = [round(peak_rss_mb(pid), 1) for pid in process_tree(app.pid)[1:]] or \
            [round(peak_rss_mb(app.pid), 1)]
        if workers == workers_list[-1]:
            sizes = wire_bytes(base)
            notes.append(f"ballot page over the wire (gzip): {sizes} = {sum(sizes.values())} bytes")
        stop(app)

    if Path(args.datasette).exists():
        copy = tmp / "brands_copy.db"
        src, dst = sqlite3.connect(db_path), sqlite3.connect(copy)
        src.backup(dst)
        src.close(), dst.close()
        port = free_port()
        ds = start([args.datasette, "serve", "--immutable", str(copy), "--port", str(port),
                    "--setting", "default_page_size", "20"])
        url = f"http://127.0.0.1:{port}/brands_copy/brands?_size=20"
        wait_for(url, ds)
        for conns in conns_list:
            res = record("Datasette table page", 1, conns, measure(url, conns))
            for workers in workers_list:
                ours = ratios.get(("/brands", workers, conns), float("nan")) * hello_rps.get((workers, conns), 0)
                notes.append(f"/brands w={workers} c={conns} vs Datasette (1 process) c={conns}: "
                             f"x{ours / res['rps']:.1f}" if res["rps"] else "Datasette: no answer")
        stop(ds)
    else:
        notes.append("Datasette not installed (make bench installs it into bench/.venv-datasette)")

    print("\n| endpoint | workers | conns | req/s | p50 ms | p99 ms | errors | x hello |")
    print("|---|---|---|---|---|---|---|---|")
    for name, w, c, rps, p50, p99, err, ratio in rows:
        print(f"| {name} | {w} | {c} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {err} | {ratio:.2f} |")
    print()
    for w, values in rss.items():
        print(f"peak RSS per process, {w} worker(s): {values} MB")
    for note in notes:
        print(note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
