"""Printing: the A4 poster and the voter-code slips, printed to PDF by headless Chromium.

Each PDF is counted with poppler's pdfinfo, its first page rasterized with pdftoppm, and
the QR codes on that page decoded by zxing-cpp: what comes out of the printer scans.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import sqlite3
import subprocess
import sys

import pytest

from browser_support import SCREENSHOTS, screenshot
from test_qr import decode_png

pytestmark = pytest.mark.browser

SLUG = "shanghai-2022-highlights"
A4_VIEWPORT = {"width": 794, "height": 1123}  # 210 × 297 mm at 96 CSS px per inch


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing (Debian poppler-utils; `make test` installs it as root)"
    return path


def pdf_pages(pdf) -> int:
    info = subprocess.run([tool("pdfinfo"), str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)$", info, re.M).group(1))


def pdf_text(pdf) -> str:
    return subprocess.run([tool("pdftotext"), "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout


def page_png(pdf, name: str, page: int = 1, dpi: int = 150):
    """One PDF page as a PNG beside the screenshots (to look at) and its bytes (to decode)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    stem = SCREENSHOTS / name
    subprocess.run([tool("pdftoppm"), "-png", "-r", str(dpi), "-f", str(page), "-l", str(page),
                    "-singlefile", str(pdf), str(stem)], check=True)
    path = stem.with_suffix(".png")
    return path, path.read_bytes()


def print_pdf(page, name: str):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.pdf"
    page.pdf(path=str(path), format="A4", prefer_css_page_size=True)
    return path


def images_loaded(page) -> bool:
    return page.evaluate("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")


@pytest.fixture
def a4(browser):
    context = browser.new_context(viewport=A4_VIEWPORT, locale="zh-CN")
    page = context.new_page()
    yield page
    context.close()


# ------------------------------------------------------------ the poster

def test_the_poster_prints_on_one_a4_page_without_site_chrome_and_scans(live_server, a4, phone):
    url = f"{live_server.url}/c/{SLUG}/poster?ch=print-test"
    encoded = f"{live_server.url}/c/{SLUG}?ch=print-test"

    phone.goto(url)
    assert images_loaded(phone)
    assert phone.locator(".poster__url").inner_text().strip() == encoded
    qr_box = phone.locator(".poster__qr").bounding_box()
    assert qr_box["width"] >= 250 and qr_box["x"] >= 0 and qr_box["x"] + qr_box["width"] <= 390
    screenshot(phone, "print-poster-phone")

    a4.goto(url)
    assert images_loaded(a4)
    a4.emulate_media(media="print")
    assert not a4.locator(".site-header").is_visible() and not a4.locator(".site-footer").is_visible()
    assert not a4.locator(".poster__help").is_visible()
    screenshot(a4, "print-poster-a4")

    pdf = print_pdf(a4, "print-poster")
    assert pdf_pages(pdf) == 1
    text = re.sub(r"\s+", "", pdf_text(pdf))  # a long URL may wrap
    for words in ("十三届上海市政协履职创新亮点评选", "最多选择10项", "投票截止", "结果揭晓", "主办：上海市政协", encoded):
        assert words in text, words
    for chrome in ("全部条目", "跳到正文", "开放数据接口", "浏览器的“打印”功能"):
        assert chrome not in text, chrome
    png_path, data = page_png(pdf, "print-poster-pdf")
    assert decode_png(data) == [encoded], png_path


# ------------------------------------------------------------ voter-code slips

@pytest.fixture
def slips_file(tmp_path, live_server):
    """25 codes for a codes-only copy of the demo campaign; the slips link the live server's CSS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRANDVOTE_")}
    env["BRANDVOTE_BASE_URL"] = live_server.url
    db = tmp_path / "slips.db"

    def run(*args):
        r = subprocess.run([sys.executable, "-m", "brandvote", *args, "--db", str(db)], env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r

    from brandvote import seed

    run("load", str(seed.bundled_catalog_path()))
    with sqlite3.connect(db) as conn:
        conn.execute("update campaigns set electorate = 'codes' where slug = ?", [SLUG])
    html, out = tmp_path / "slips.html", tmp_path / "codes.csv"
    assert "3 页 A4" in run("codes", SLUG, "--count", "25", "--out", str(out), "--slips", str(html)).stdout
    codes = [row["code"] for row in csv.DictReader(out.open(encoding="utf-8"))]
    return html, codes


def test_slips_print_twelve_to_an_a4_page_and_every_code_on_it_scans(slips_file, live_server, a4, phone):
    html, codes = slips_file
    a4.goto(html.as_uri())
    assert a4.evaluate("() => getComputedStyle(document.querySelector('.slip')).borderBottomStyle") == "dashed"
    screenshot(a4, "print-slips-a4")
    phone.goto(html.as_uri())
    screenshot(phone, "print-slips-phone")

    pdf = print_pdf(a4, "print-slips")
    assert pdf_pages(pdf) == 3  # 12 + 12 + 1
    text = pdf_text(pdf)
    assert "沿虚线裁开" not in text  # the screen-only instructions are not printed
    assert codes[0][:19] in text and codes[24][20:] in text
    png_path, data = page_png(pdf, "print-slips-pdf", dpi=200)
    decoded = decode_png(data)
    assert sorted(decoded) == sorted(f"{live_server.url}/v/{c}" for c in codes[:12]), png_path
    _, last = page_png(pdf, "print-slips-pdf-3", page=3, dpi=200)
    assert decode_png(last) == [f"{live_server.url}/v/{codes[24]}"]


def test_slips_stay_readable_without_css(slips_file, browser):
    html, codes = slips_file
    context = browser.new_context(viewport=A4_VIEWPORT, locale="zh-CN")
    page = context.new_page()
    page.route("**/*.css*", lambda route: route.abort())  # as if opened offline
    page.goto(html.as_uri())
    assert page.evaluate("() => document.styleSheets.length === 0 || [...document.styleSheets].every(s => { try { return s.cssRules.length === 0 } catch (e) { return true } })")
    first = page.locator(".slip").first
    assert first.locator(".slip__code").inner_text().replace("\n", "") == codes[0]
    box = first.locator("svg").bounding_box()
    assert 100 <= box["width"] <= 200  # 36 mm from the SVG's own width attribute
    screenshot(page, "print-slips-no-css")
    context.close()
