"""QR codes for a URL: SVG (one vector path, for print) and PNG (for chat apps).

Error correction M, the 4-module quiet zone kept. `size` is the box size of one module
(pixels in the PNG, CSS pixels in the SVG's width/height; the SVG scales anyway), an integer
from MIN_SIZE to MAX_SIZE. Served codes go through a worker's `Codes`: rendered once per
(URL, format, size), kept in an LRU bounded in entries and bytes, and rendered one at a
time, because anyone can ask for a new channel on every request. Printed voter-code slips
use `slip_svgs()`, which fixes the mask and the version: qrcode's mask search is most of a
code's cost, and 10,000 slips must print in seconds (bench/FIGURES.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import anyio.to_thread
import png
import qrcode
from qrcode.exceptions import DataOverflowError

from .errors import BadQrSize, QrBusy

MIN_SIZE, MAX_SIZE = 2, 20
DEFAULT_SIZE = {"svg": 10, "png": 8}
MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png"}
BORDER = 4  # the quiet zone the standard asks for
ERROR_CORRECTION = qrcode.ERROR_CORRECT_M
SLIP_MASK = 0  # any of the 8 masks is valid; readers take it from the format bits
# Served codes per worker: an image is 0.3-2 KB (PNG) or 2-8 KB (SVG), so 512 of them fit in
# 4 MiB; a poster campaign uses a few dozen channels.
CACHE_ENTRIES, CACHE_BYTES = 512, 4 * 1024 * 1024
_SIZE_RE = re.compile(r"^[0-9]{1,3}$")


def parse_size(text: str | None, fmt: str) -> int:
    """`?size=`: absent → the format's default; anything but an integer in range → 400."""
    if text is None:
        return DEFAULT_SIZE[fmt]
    if not _SIZE_RE.match(text) or not MIN_SIZE <= int(text) <= MAX_SIZE:
        raise BadQrSize(f"二维码尺寸参数 size 必须是 {MIN_SIZE} 到 {MAX_SIZE} 之间的整数。")
    return int(text)


# ---------------------------------------------------------------- the module matrix

def matrix(url: str, *, version: int | None = None, mask_pattern: int | None = None) -> list[list[bool]]:
    """Dark modules, quiet zone included. Without a mask, qrcode picks the best of 8 (slow)."""
    code = qrcode.QRCode(version=version, error_correction=ERROR_CORRECTION, border=BORDER,
                         mask_pattern=mask_pattern)
    code.add_data(url)
    code.make(fit=version is None)
    return code.get_matrix()


def version_for(url: str) -> int:
    code = qrcode.QRCode(error_correction=ERROR_CORRECTION, border=BORDER, mask_pattern=SLIP_MASK)
    code.add_data(url)
    code.make(fit=True)
    return code.version


def svg_from_matrix(rows: list[list[bool]], size: int = DEFAULT_SIZE["svg"], *, width: str | None = None,
                    label: str | None = None) -> str:
    """One <path> of horizontal runs over a white square (so the quiet zone survives a dark
    background); viewBox in modules, crispEdges so adjacent runs leave no hairlines."""
    n = len(rows)
    parts = []
    for y, row in enumerate(rows):
        x = 0
        while x < n:
            if row[x]:
                start = x
                while x < n and row[x]:
                    x += 1
                parts.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    dims = width or str(n * size)
    aria = f' role="img" aria-label="{_xml_attr(label)}"' if label else ""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{dims}" height="{dims}" viewBox="0 0 {n} {n}"'
            f' shape-rendering="crispEdges"{aria}><rect width="{n}" height="{n}" fill="#fff"/>'
            f'<path fill="#000" d="{"".join(parts)}"/></svg>')


def png_from_matrix(rows: list[list[bool]], size: int = DEFAULT_SIZE["png"]) -> bytes:
    """A 1-bit greyscale PNG (pypng; no Pillow): dark modules 0, light 1.

    Rows go to pypng already packed, 8 pixels a byte, each module row built once and
    repeated `size` times, because handing pypng one int per pixel is many times slower at
    large sizes; the bytes are the same (padding bits 0, as pypng packs them)."""
    width = len(rows) * size
    pad = -width % 8
    dark, light = "0" * size, "1" * size
    pixel_rows = []
    for row in rows:
        bits = "".join(dark if module else light for module in row) + "0" * pad
        pixel_rows.extend([int(bits, 2).to_bytes((width + pad) // 8, "big")] * size)
    out = io.BytesIO()
    png.Writer(width, width, greyscale=True, bitdepth=1).write_packed(out, pixel_rows)
    return out.getvalue()


def _xml_attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------------- served codes (cached)

@dataclass(frozen=True)
class Image:
    body: bytes
    media_type: str
    etag: str  # strong: a hash of the bytes, quoted


def draw(url: str, fmt: str, size: int) -> bytes:
    """The image's bytes: the mask search (the costly part) and then the SVG path or the PNG."""
    rows = matrix(url)
    return svg_from_matrix(rows, size).encode() if fmt == "svg" else png_from_matrix(rows, size)


def image_of(body: bytes, fmt: str) -> Image:
    return Image(body, MEDIA_TYPES[fmt], '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


class Codes:
    """The served codes of one worker: its cache and its render turn.

    Anyone can ask for /c/{slug}/qr.png?ch=<new> on every request, and each is a render of
    several ms of CPU that holds the GIL. So images are kept in an LRU bounded in entries
    and in bytes (many channels evict old images, never grow the worker), and at most
    `concurrent` renders run at once: up to `max_waiting` requests wait for their turn on
    the event loop (no thread held) for at most `wait_seconds`; beyond that, QrBusy (503).
    `max_entries=0` keeps nothing (pages and codes uncached). `draw` is the renderer, a seam
    for tests; `renders` counts its calls.
    """

    def __init__(self, *, max_entries: int = CACHE_ENTRIES, max_bytes: int = CACHE_BYTES,
                 concurrent: int = 1, max_waiting: int = 8, wait_seconds: float = 2.0,
                 draw: Callable[[str, str, int], bytes] = draw):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.max_waiting, self.wait_seconds = max_waiting, wait_seconds
        self._draw = draw
        self._images: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._turn = asyncio.Semaphore(concurrent)  # bound to the loop at first use
        self.bytes = self.renders = self.hits = 0
        self.waiting = 0  # requests waiting for a turn now (event loop only)

    def __len__(self) -> int:
        return len(self._images)

    def cached(self, url: str, fmt: str, size: int) -> Image | None:
        with self._lock:
            image = self._images.get((url, fmt, size))
            if image is not None:
                self._images.move_to_end((url, fmt, size))
                self.hits += 1
            return image

    def render(self, url: str, fmt: str, size: int) -> Image:
        """Render now (in the caller's thread) and keep the image."""
        if fmt not in MEDIA_TYPES or not MIN_SIZE <= size <= MAX_SIZE:
            raise ValueError((fmt, size))
        self.renders += 1
        image = image_of(self._draw(url, fmt, size), fmt)
        self._keep((url, fmt, size), image)
        return image

    def _keep(self, key, image: Image) -> None:
        if self.max_entries <= 0 or len(image.body) > self.max_bytes:
            return
        with self._lock:
            old = self._images.pop(key, None)
            self.bytes -= len(old.body) if old else 0
            self._images[key] = image
            self.bytes += len(image.body)
            while len(self._images) > self.max_entries or self.bytes > self.max_bytes:
                _, dropped = self._images.popitem(last=False)
                self.bytes -= len(dropped.body)

    async def image(self, url: str, fmt: str, size: int) -> Image:
        """The image, from the cache or rendered in the threadpool in its turn; QrBusy if the
        queue is full or the turn does not come within wait_seconds."""
        image = self.cached(url, fmt, size)
        if image is not None:
            return image
        if self._turn.locked() and self.waiting >= self.max_waiting:
            raise QrBusy()
        self.waiting += 1
        try:
            await asyncio.wait_for(self._turn.acquire(), self.wait_seconds)
        except TimeoutError:
            raise QrBusy() from None
        finally:
            self.waiting -= 1
        try:
            # the render we waited behind may have been this very image
            return self.cached(url, fmt, size) or await anyio.to_thread.run_sync(self.render, url, fmt, size)
        finally:
            self._turn.release()


# ---------------------------------------------------------------- printed slips (fast)

def slip_svgs(urls: Iterable[str], *, width: str = "36mm", label: str | None = None) -> Iterator[str]:
    """Inline SVGs for many URLs of one shape (voter codes): one version, one fixed mask.

    The mask search is most of qrcode's cost; fixing it (and the version, found once from
    the first URL) is what makes slips fast. A URL that does not fit the version is fitted alone.
    """
    version = None
    for url in urls:
        if version is None:
            version = version_for(url)
        try:
            rows = matrix(url, version=version, mask_pattern=SLIP_MASK)
        except DataOverflowError:
            rows = matrix(url, mask_pattern=SLIP_MASK)
        yield svg_from_matrix(rows, width=width, label=label)


SLIPS_PER_SHEET = 12  # 3 × 4 on A4 (see app.css, "poster and slips (print)")


def write_slips(env, campaign: dict, codes: list[str], url_of, out, progress=None) -> int:
    """Voter-code slips as one standalone HTML file (streamed to the open text file `out`),
    rendered without a request: `env` is make_templates(settings).env. Returns the sheets."""
    urls = (url_of(code) for code in codes)
    svgs = slip_svgs(urls, label="投票二维码")

    def sheets():
        sheet = []
        for i, (code, svg) in enumerate(zip(codes, svgs), start=1):
            sheet.append({"code": code, "svg": svg})
            if len(sheet) == SLIPS_PER_SHEET or i == len(codes):
                yield sheet
                sheet = []
                if progress:
                    progress(i, len(codes))

    template = env.get_template("qr/slips.html")
    for chunk in template.generate(campaign=campaign, count=len(codes), per_sheet=SLIPS_PER_SHEET,
                                   sheets=sheets()):
        out.write(chunk)
    return -(-len(codes) // SLIPS_PER_SHEET)
