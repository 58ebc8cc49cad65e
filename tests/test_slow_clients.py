"""Slow and idle clients, against a live `brandvote serve` and behind the sample nginx.

A socket that sends nothing, a request head sent a line at a time, or a body that trickles
in each hold a file descriptor of the worker; enough of them and it can accept no one. The
first part talks to `brandvote serve` itself with raw sockets: an idle connection is closed
within the keep-alive timeout, a head that takes too long is cut off, an oversized head gets
431, connections beyond --limit-concurrency get 503 at once, and the open-files limit is
raised to the hard limit. The second part starts Debian's nginx (it must be installed:
`make test` installs it) from deploy/nginx.conf, with the ports and the two client timeouts
substituted, and checks that nginx cuts off slow heads and slow bodies, and that a page and
a ballot pass through with the client's address forwarded.
"""

from __future__ import annotations

import functools
import http.client
import resource
import shutil
import socket
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest import mock
from urllib.parse import urlencode

import pytest

from brandvote.security import DEVICE_COOKIE, Tokens

from helpers import LiveServer, SLUG, free_port

ROOT = Path(__file__).resolve().parent.parent
KEEP_ALIVE = 5  # seconds an idle connection is kept (brandvote serve)
HEAD_TIMEOUT = 10  # seconds for a whole request head (brandvote serve)
LIMIT = 16  # --limit-concurrency of the server under test, small enough to reach here
SLACK = 1.5  # scheduling margin on a busy 2-core machine
PROXY_TIMEOUT = 2  # the sample's client_header_timeout/client_body_timeout, shortened here
LOW_NOFILE = 256  # the server under test starts with this soft open-files limit
CLIENT = "127.0.0.2"  # the address the proxied tests connect from (loopback, not the proxy's)


# ------------------------------------------------------------------ raw-socket clients

def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    return sock


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the peer closed the socket (reading on until EOF or a reset), or None if
    it was still open after `seconds`."""
    start = time.monotonic()
    while (left := seconds - (time.monotonic() - start)) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except TimeoutError:
            return None
        except ConnectionResetError:
            return time.monotonic() - start
    return None


def trickle(sock: socket.socket, pieces: list[bytes], every: float, give_up: float) -> float | None:
    """Send one piece every `every` seconds; seconds from the first piece until the peer
    closed the connection, or None if it was still open after `give_up` seconds."""
    start = time.monotonic()
    for piece in pieces:
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - start
        if closed_within(sock, every) is not None:
            return time.monotonic() - start
        if time.monotonic() - start > give_up:
            return None
    return None


def slow_head_pieces(port: int) -> list[bytes]:
    return [b"GET /healthz HTTP/1.1\r\n", f"Host: 127.0.0.1:{port}\r\n".encode()] + \
        [f"X-Slow-{i}: {i}\r\n".encode() for i in range(30)]


def answer(sock: socket.socket, request: bytes) -> bytes:
    """Send a whole request and read the response head (and what came with it)."""
    sock.sendall(request)
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def get(port: int, path: str = "/healthz") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1."), response[:200]
    return int(response.split(b" ", 2)[1])


# ------------------------------------------------------------------ brandvote serve itself

@pytest.fixture(scope="module")
def direct(tmp_path_factory):
    """brandvote serve with --limit-concurrency LIMIT, started with a low soft open-files limit."""
    def low_nofile():
        resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_NOFILE, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    with mock.patch.object(subprocess, "Popen", functools.partial(subprocess.Popen, preexec_fn=low_nofile)):
        server = LiveServer(tmp_path_factory.mktemp("slow"), args=("--limit-concurrency", str(LIMIT)))
    yield server
    server.stop()


def test_serve_raises_its_open_files_limit_to_the_hard_limit(direct):
    limits = Path(f"/proc/{direct.proc.pid}/limits").read_text()
    soft, hard = next(line.split()[3:5] for line in limits.splitlines() if line.startswith("Max open files"))
    assert hard != str(LOW_NOFILE) and soft == hard, limits


def test_an_idle_socket_and_a_trickled_head_are_closed_and_a_slow_phone_still_gets_through(direct):
    idle, slow = connect(direct.port), connect(direct.port)
    phone = connect(direct.port)
    with ThreadPoolExecutor(3) as pool:
        idle_closed = pool.submit(closed_within, idle, KEEP_ALIVE + SLACK)
        # one header line every 2 s: it would take a minute; the head deadline ends it
        slow_closed = pool.submit(trickle, slow, slow_head_pieces(direct.port), 2, HEAD_TIMEOUT + 2 * SLACK)
        # a phone on a poor network: its head in three pieces over 2 s, well inside the deadline
        pieces = [b"GET /healthz HT", b"TP/1.1\r\nHost: 127.0.0.1\r\n", b"\r\n"]
        phone_done = pool.submit(lambda: (trickle(phone, pieces[:2], 1, 5), answer(phone, pieces[2])))
        assert idle_closed.result() is not None, "a socket that sent nothing is still open"
        assert slow_closed.result() is not None, "a head sent one line every 2 s is still being read"
        closed, response = phone_done.result()
    assert closed is None and status_of(response) == 200
    for sock in (idle, slow, phone):
        sock.close()


@pytest.mark.parametrize("finished", [True, False], ids=["whole", "unfinished"])
def test_a_request_head_over_16_kib_gets_431(direct, finished):
    with connect(direct.port) as sock:
        big = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
            f"X-Big-{i}: {'a' * 1000}\r\n".encode() for i in range(20)) + (b"\r\n" if finished else b"")
        response = answer(sock, big)
        assert status_of(response) == 431
        assert "请求头过大".encode() in response + sock.recv(4096)
    with connect(direct.port) as sock:  # an ordinary head is served as before
        assert status_of(answer(sock, get(direct.port))) == 200


def test_connections_beyond_the_limit_get_503_at_once_not_a_hang(direct):
    held = [connect(direct.port) for _ in range(LIMIT)]
    try:
        for sock in held:  # started requests: counted, and kept open by their head deadline
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(0.3)  # let the server accept them all
        with connect(direct.port) as extra:
            started = time.monotonic()
            response = answer(extra, get(direct.port))
            assert status_of(response) == 503 and time.monotonic() - started < 2
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 5
    while True:  # the server notices the closes within a moment, then serves again
        with connect(direct.port) as sock:
            status = status_of(answer(sock, get(direct.port)))
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 200


def test_the_connection_limit_leaves_room_for_the_workers_own_files():
    from brandvote.serving import FD_RESERVE, connection_limit

    assert connection_limit(4096, 1_048_576) == 4096
    assert connection_limit(4096, 1024) == 1024 - FD_RESERVE
    assert connection_limit(4096, 10) == 1


# ------------------------------------------------------------------ behind the sample nginx

def render_sample(nginx_port: int, app_port: int) -> str:
    """deploy/nginx.conf with this test's ports and short client timeouts; every value the
    test replaces must appear exactly once, so a change to the sample is noticed here."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    for old, new in [
        ("listen 80;", f"listen 127.0.0.1:{nginx_port};"),
        ("server 127.0.0.1:8000", f"server 127.0.0.1:{app_port}"),
        ("client_header_timeout 10s;", f"client_header_timeout {PROXY_TIMEOUT}s;"),
        ("client_body_timeout 10s;", f"client_body_timeout {PROXY_TIMEOUT}s;"),
    ]:
        assert text.count(old) == 1, f"deploy/nginx.conf should hold {old!r} once"
        text = text.replace(old, new)
    return text


def main_conf(prefix: Path) -> str:
    """What Debian's /etc/nginx/nginx.conf gives a site file, in a temporary prefix; one
    foreground process, so it runs as the test's user without a daemon."""
    temp = " ".join(f"{kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                     "uwsgi", "scgi"))
    return (f"daemon off;\nmaster_process off;\npid {prefix / 'nginx.pid'};\n"
            f"error_log {prefix / 'error.log'} info;\n"
            f"events {{ worker_connections 768; }}\n"
            f"http {{\n  {temp}\n  include {prefix / 'brandvote.conf'};\n}}\n")


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    assert nginx, "Debian's nginx is missing: `make test` installs it (apt-get install nginx)"
    tmp = tmp_path_factory.mktemp("proxied")
    app = LiveServer(tmp, env_extra={"BRANDVOTE_TRUSTED_PROXIES": "127.0.0.1"})
    prefix = tmp / "nginx"
    prefix.mkdir()
    port = free_port()
    (prefix / "brandvote.conf").write_text(render_sample(port, app.port))
    (prefix / "nginx.conf").write_text(main_conf(prefix))
    proc = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e",
                             str(prefix / "error.log")], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, "nginx exited:\n" + (prefix / "error.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        yield app, port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        app.stop()


def test_nginx_cuts_off_an_idle_socket_and_a_trickled_head_within_client_header_timeout(proxied):
    _, port = proxied
    idle, slow = connect(port, CLIENT), connect(port, CLIENT)
    with ThreadPoolExecutor(2) as pool:
        idle_closed = pool.submit(closed_within, idle, PROXY_TIMEOUT + SLACK)
        slow_closed = pool.submit(trickle, slow, slow_head_pieces(port), 0.5, PROXY_TIMEOUT + SLACK)
        assert idle_closed.result() is not None, "nginx kept a socket that sent nothing"
        assert slow_closed.result() is not None, "nginx kept reading a head sent one line every 0.5 s"
    idle.close()
    slow.close()


def test_nginx_cuts_off_a_slow_body_within_client_body_timeout_and_the_app_sees_nothing(proxied):
    app, port = proxied
    before = ballot_count(app)
    with connect(port, CLIENT) as sock:
        sock.sendall(f"POST /c/{SLUG}/ballot HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 400\r\n\r\n".encode())
        # ten bytes, then a pause longer than client_body_timeout, twice over
        closed = trickle(sock, [b"csrf_token", b"=abcdefghi", b"jklmnopqrs"], PROXY_TIMEOUT + SLACK,
                         3 * (PROXY_TIMEOUT + SLACK))
    # cut off during the first pause, by the timeout (nginx answers nothing, logs nothing)
    assert closed is not None and PROXY_TIMEOUT - 0.3 <= closed < PROXY_TIMEOUT + SLACK, closed
    assert ballot_count(app) == before

    # a phone sending its form in pieces 1 s apart is not cut off: the app answers it
    form = b"csrf_token=not-a-token&choice=a"
    with connect(port, CLIENT) as sock:
        sock.sendall(f"POST /c/{SLUG}/ballot HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/x-www-form-urlencoded\r\n"
                     f"Content-Length: {len(form)}\r\n\r\n".encode())
        assert trickle(sock, [form[:10], form[10:20]], 1, 5) is None
        response = answer(sock, form[20:])
    assert status_of(response) == 403  # the app's refusal of the token: the body reached it


def ballot_count(app) -> int:
    conn = sqlite3.connect(app.db_path)
    try:
        return conn.execute("select count(*) from ballots").fetchone()[0]
    finally:
        conn.close()


def test_a_page_and_a_ballot_pass_through_nginx_with_the_client_address_forwarded(proxied):
    app, port = proxied
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(CLIENT, 0))
    conn.request("GET", f"/c/{SLUG}")
    page = conn.getresponse()
    body = page.read().decode()
    assert page.status == 200 and 'name="csrf_token"' in body

    secret = app.db_path.with_name(app.db_path.name + ".secret").read_text().strip()
    tokens = Tokens(secret)
    db = sqlite3.connect(app.db_path)
    camp_id, = db.execute("select id from campaigns where slug = ?", [SLUG]).fetchone()
    slugs = [r[0] for r in db.execute("select b.slug from candidates k join brands b on b.id = k.brand_id"
                                      " where k.campaign_id = ? order by k.position limit 3", [camp_id])]
    device, cookie = tokens.new_device()
    csrf = tokens.csrf(tokens.voter_key("device", device), camp_id, datetime.now(timezone.utc) - timedelta(minutes=1))
    form = urlencode({"csrf_token": csrf, "choice": slugs}, doseq=True)
    # a forged X-Forwarded-For: nginx replaces it with the address it sees
    conn.request("POST", f"/c/{SLUG}/ballot", body=form, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"{DEVICE_COOKIE}={cookie}",
        "X-Forwarded-For": "203.0.113.9"})
    posted = conn.getresponse()
    posted.read()
    assert posted.status == 303, posted.status
    counted = {row[0] for row in db.execute("select ip_key from ip_counts where campaign_id = ?", [camp_id])}
    db.close()
    assert tokens.ip_key(CLIENT) in counted
    assert not counted & {tokens.ip_key("203.0.113.9"), tokens.ip_key("127.0.0.1")}

    conn.request("POST", f"/c/{SLUG}/ballot", body=b"x" * (1024 * 1024 + 1),
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    too_big = conn.getresponse()
    too_big.read()
    assert too_big.status == 413
    conn.close()
