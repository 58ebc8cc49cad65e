"""A client asking for QR codes with a new `ch=` every time cannot slow the site down.

Each new channel is a new image to render. The render must be cheap (the PNG is written
from packed rows, not pixel by pixel), kept in a per-worker cache that stays within its
bound however many channels are asked, never rendered twice for one (campaign, channel,
format, size), and only one render at a time runs per worker: a few more wait their turn on
the event loop, the rest get a Chinese 503 with Retry-After. Renders are counted by the
worker's qr.Codes (passed to create_app, the seam tests use); images are decoded with zxing-cpp.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bs4 import BeautifulSoup
from starlette.testclient import TestClient

from brandvote import qr
from brandvote.app import create_app

from helpers import BASE_URL, SLUG, wait_until
from test_qr import decode

LONGEST_CHANNEL = "c" * 32


def url_for(channel=None):
    return f"{BASE_URL}/c/{SLUG}" + (f"?ch={channel}" if channel else "")


def client_with(settings, clock, codes):
    return TestClient(create_app(settings, now=clock, qr_codes=codes), base_url="https://testserver")


def test_many_channels_keep_the_code_cache_within_its_bound(seeded_settings, campaign, clock):
    codes = qr.Codes(max_entries=16, max_bytes=64 * 1024)
    with client_with(seeded_settings, clock, codes) as c:
        for i in range(60):
            fmt = "png" if i % 2 else "svg"
            r = c.get(f"/c/{SLUG}/qr.{fmt}?ch=flood-{i}&size=20")
            assert r.status_code == 200
            assert len(codes) <= 16 and codes.bytes <= 64 * 1024
        assert codes.renders == 60
        assert decode(c.get(f"/c/{SLUG}/qr.png?ch=flood-59&size=20")) == [url_for("flood-59")]


def test_the_second_request_for_one_code_does_not_render_it_again(seeded_settings, campaign, clock, db):
    codes = qr.Codes()
    with client_with(seeded_settings, clock, codes) as c:
        first = c.get(f"/c/{SLUG}/qr.png?ch=metro&size=12")
        assert codes.renders == 1
        # an edit makes every cached page cold: the image comes back from the code cache
        db.execute("update campaigns set intro = '改过的说明' where slug = ?", [SLUG])
        db.conn.commit()
        second = c.get(f"/c/{SLUG}/qr.png?ch=metro&size=12&utm_source=junk")
        assert codes.renders == 1 and second.content == first.content
        assert decode(second) == [url_for("metro")]
        c.get(f"/c/{SLUG}/qr.png?ch=metro&size=13")  # another size is another image
        c.get(f"/c/{SLUG}/qr.svg?ch=metro&size=12")  # and another format
        assert codes.renders == 3


def test_a_size_out_of_range_is_refused_in_chinese_and_renders_nothing(seeded_settings, campaign, clock):
    codes = qr.Codes()
    with client_with(seeded_settings, clock, codes) as c:
        for size in (qr.MIN_SIZE - 1, qr.MAX_SIZE + 1, 10_000):
            r = c.get(f"/c/{SLUG}/qr.png?ch=big&size={size}")
            assert r.status_code == 400 and not r.content.startswith(b"\x89PNG")
            alert = BeautifulSoup(r.text, "html.parser").find(attrs={"role": "alert"}).get_text(strip=True)
            assert "尺寸" in alert and f"{qr.MIN_SIZE} 到 {qr.MAX_SIZE}" in alert
        assert codes.renders == 0


def test_a_bad_channel_is_refused_before_any_render(seeded_settings, campaign, clock):
    codes = qr.Codes()
    with client_with(seeded_settings, clock, codes) as c:
        assert c.get(f"/c/{SLUG}/qr.png", params={"ch": "x" * 33}).status_code == 400
        assert codes.renders == 0


class Gate:
    """A renderer that holds every render until the test opens it, and records how many
    ran at once."""

    def __init__(self):
        self.open = threading.Event()
        self.running = self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, url, fmt, size):
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            assert self.open.wait(30)
            return qr.draw(url, fmt, size)
        finally:
            with self.lock:
                self.running -= 1


def test_one_render_at_a_time_a_few_wait_and_the_rest_get_a_chinese_503(seeded_settings, campaign, clock):
    gate = Gate()
    codes = qr.Codes(draw=gate, max_waiting=2, wait_seconds=30)
    with client_with(seeded_settings, clock, codes) as c, ThreadPoolExecutor(4) as pool:
        first = pool.submit(c.get, f"/c/{SLUG}/qr.png?ch=wait-0")
        wait_until(lambda: gate.running == 1)
        waiting = [pool.submit(c.get, f"/c/{SLUG}/qr.png?ch=wait-{i}") for i in (1, 2)]
        wait_until(lambda: codes.waiting == 2)
        busy = c.get(f"/c/{SLUG}/qr.png?ch=wait-3")
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert busy.headers["cache-control"] == "no-store"
        alert = BeautifulSoup(busy.text, "html.parser").find(attrs={"role": "alert"}).get_text(strip=True)
        assert "二维码" in alert and "稍后" in alert
        gate.open.set()
        answers = [first.result(30)] + [f.result(30) for f in waiting]
        assert [decode(r) for r in answers] == [[url_for(f"wait-{i}")] for i in range(3)]
        assert gate.peak == 1 and codes.renders == 3
        assert c.get(f"/c/{SLUG}/qr.png?ch=wait-3").status_code == 200  # once the crowd has gone


def test_a_waiter_gives_up_after_its_wait_with_a_503(seeded_settings, campaign, clock):
    gate = Gate()
    codes = qr.Codes(draw=gate, max_waiting=4, wait_seconds=0.05)
    with client_with(seeded_settings, clock, codes) as c, ThreadPoolExecutor(2) as pool:
        first = pool.submit(c.get, f"/c/{SLUG}/qr.svg?ch=slow")
        wait_until(lambda: gate.running == 1)
        late = c.get(f"/c/{SLUG}/qr.svg?ch=late")
        assert late.status_code == 503 and late.headers["retry-after"] == "1"
        gate.open.set()
        assert first.result(30).status_code == 200
        assert codes.waiting == 0


def cpu_ms(fn, repeat=5) -> float:
    """The fastest of a few runs, in ms of this thread's CPU: what the work costs, not the
    machine's other load."""
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        fn()
        best = min(best, time.thread_time() - start)
    return best * 1000


def test_the_largest_png_is_written_in_a_few_ms():
    """Pixel by pixel through pypng's generic rows, a size-20 PNG cost 35-60 ms of CPU; from
    packed rows it costs ~1 ms. The bound leaves 8x headroom for a slow machine."""
    rows = qr.matrix(f"{BASE_URL}/c/{SLUG}?ch={LONGEST_CHANNEL}")
    assert cpu_ms(lambda: qr.png_from_matrix(rows, qr.MAX_SIZE)) < 8


def test_packed_png_rows_are_the_pixels_of_the_matrix():
    import png

    rows = qr.matrix(f"{BASE_URL}/c/{SLUG}?ch=pixels")
    for size in (qr.MIN_SIZE, 3, 8, qr.MAX_SIZE):  # 3: rows that end mid-byte
        width, height, pixels, _ = png.Reader(bytes=qr.png_from_matrix(rows, size)).read()
        assert width == height == len(rows) * size
        for y, line in enumerate(pixels):
            assert list(line) == [0 if rows[y // size][x // size] else 1 for x in range(width)]
