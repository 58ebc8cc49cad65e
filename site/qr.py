"""QR codes for a URL: SVG (one vector path, for print) and PNG (for chat apps).

Error correction M, the 4-module quiet zone kept. `size` is the box size of one module
(pixels in the PNG, CSS pixels in the SVG's width/height; the SVG scales anyway).
Served codes are rendered once per (URL, format, size) and kept in a small LRU; printed
voter-code slips use `slip_svgs()`, which fixes the mask and the version so 10,000 codes
take seconds instead of the ~6 ms each that qrcode's mask search costs.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Iterator

import png
import qrcode
from qrcode.exceptions import DataOverflowError

from .errors import BrandvoteError

MIN_SIZE, MAX_SIZE = 2, 20
DEFAULT_SIZE = {"svg": 10, "png": 8}
MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png"}
BORDER = 4  # the quiet zone the standard asks for
ERROR_CORRECTION = qrcode.ERROR_CORRECT_M
SLIP_MASK = 0  # any of the 8 masks is valid; readers take it from the format bits
CACHE_SIZE = 512
_SIZE_RE = re.compile(r"^[0-9]{1,3}$")


class BadSize(BrandvoteError):
    status = 400
    code = "bad_qr_size"
    message = f"二维码尺寸参数 size 必须是 {MIN_SIZE} 到 {MAX_SIZE} 之间的整数。"


def parse_size(text: str | None, fmt: str) -> int:
    """`?size=`: absent → the format's default; anything but an integer in range → 400."""
    if text is None:
        return DEFAULT_SIZE[fmt]
    if not _SIZE_RE.match(text) or not MIN_SIZE <= int(text) <= MAX_SIZE:
        raise BadSize()
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
    """A 1-bit greyscale PNG (pypng; no Pillow): dark modules 0, light 1."""
    pixel_rows = []
    for row in rows:
        line = [v for dark in row for v in ([0] * size if dark else [1] * size)]
        pixel_rows.extend([line] * size)
    out = io.BytesIO()
    png.Writer(len(rows) * size, len(rows) * size, greyscale=True, bitdepth=1).write(out, pixel_rows)
    return out.getvalue()


def _xml_attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------------- served codes (cached)

@dataclass(frozen=True)
class Image:
    body: bytes
    media_type: str
    etag: str  # strong: a hash of the bytes, quoted


def _render(url: str, fmt: str, size: int) -> Image:
    rows = matrix(url)
    body = svg_from_matrix(rows, size).encode() if fmt == "svg" else png_from_matrix(rows, size)
    return Image(body, MEDIA_TYPES[fmt], '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


_cached_render = lru_cache(maxsize=CACHE_SIZE)(_render)


def render(url: str, fmt: str, size: int, *, cache: bool = True) -> Image:
    """The image for a URL; rendered once per (URL, format, size) while `cache` is on."""
    if fmt not in MEDIA_TYPES or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError((fmt, size))
    return _cached_render(url, fmt, size) if cache else _render(url, fmt, size)


def cache_info():
    """hits / misses / currsize of the render cache (misses = renders done)."""
    return _cached_render.cache_info()


def cache_clear() -> None:
    _cached_render.cache_clear()


# ---------------------------------------------------------------- printed slips (fast)

def slip_svgs(urls: Iterable[str], *, width: str = "36mm", label: str | None = None) -> Iterator[str]:
    """Inline SVGs for many URLs of one shape (voter codes): one version, one fixed mask.

    The mask search is ~90% of qrcode's cost; fixing it (and the version, found once from
    the first URL) makes a code ~0.6 ms. A URL that does not fit the version is fitted alone.
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


def write_slips(env, settings, campaign: dict, codes: list[str], out, progress=None) -> int:
    """Voter-code slips as one standalone HTML file (streamed to the open text file `out`),
    rendered without a request: `env` is make_templates(settings).env. Returns the sheets."""
    urls = (f"{settings.base_url}/v/{code}" for code in codes)
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
