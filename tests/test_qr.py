"""QR codes through HTTP and the CLI, each decoded by a real decoder (zxing-cpp).

SVGs are rasterized by librsvg's rsvg-convert (Debian's librsvg2-bin), PNGs read by pypng:
no Pillow or numpy, zxing-cpp takes a 2-D memoryview of grey bytes.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import subprocess
import sys

import png
import pytest
import zxingcpp
from bs4 import BeautifulSoup
from starlette.testclient import TestClient

from brandvote import campaigns, qr, voter_codes
from brandvote.app import create_app
from brandvote.routes.qr import common_organizer

from helpers import BASE_URL, SLUG, csrf_from

BRAND = "chuxin-luntan"
SIZES = [qr.MIN_SIZE, 8, qr.MAX_SIZE]
CODE_RE = re.compile(r"^[0-9A-Z]{4}(-[0-9A-Z]{4}){7}$")


# ------------------------------------------------------------ decoding

def grey_image(data: bytes) -> memoryview:
    """Any PNG pypng reads, as a (height, width) memoryview of 0..255 grey bytes.

    Our codes are black on white, so the first colour channel is the grey; transparent
    pixels count as paper."""
    width, height, rows, info = png.Reader(bytes=data).asDirect()
    planes, top, alpha = info["planes"], (1 << info["bitdepth"]) - 1, info["alpha"]
    scale = bytes(min(v, top) * 255 // top for v in range(256)) if top <= 255 else None
    buf = bytearray()
    for row in rows:
        grey = row[0::planes]
        if alpha:
            grey = [top - (top - v) * a // top for v, a in zip(grey, row[planes - 1::planes])]
        if scale is None:  # 16-bit
            buf.extend(v >> 8 for v in grey)
        else:
            buf.extend(bytes(grey).translate(scale))
    return memoryview(buf).cast("B", (height, width))


def decode_png(data: bytes) -> list[str]:
    found = zxingcpp.read_barcodes(grey_image(data), formats=zxingcpp.BarcodeFormat.QRCode)
    return [b.text for b in found]


def svg_to_png(svg: bytes | str, width: int | None = None) -> bytes:
    tool = shutil.which("rsvg-convert")
    assert tool, "rsvg-convert is missing (Debian librsvg2-bin; `make test` installs it as root)"
    data = svg.encode() if isinstance(svg, str) else svg
    args = [tool, "-f", "png", "-b", "white"] + (["-w", str(width), "-h", str(width)] if width else [])
    return subprocess.run(args, input=data, capture_output=True, check=True, timeout=30).stdout


def decode_svg(svg: bytes | str, width: int | None = None) -> list[str]:
    return decode_png(svg_to_png(svg, width))


def decode(response) -> list[str]:
    if response.headers["content-type"].startswith("image/svg+xml"):
        return decode_svg(response.content)
    assert response.headers["content-type"] == "image/png"
    return decode_png(response.content)


# ------------------------------------------------------------ fixtures

# conftest's client, with the demo campaign open for every test here.
pytestmark = pytest.mark.usefixtures("campaign")


def url_for(channel=None, slug=SLUG):
    return f"{BASE_URL}/c/{slug}" + (f"?ch={channel}" if channel else "")


def query(size=None, channel=None) -> str:
    params = [f"{k}={v}" for k, v in (("size", size), ("ch", channel)) if v is not None]
    return "?" + "&".join(params) if params else ""


# ------------------------------------------------------------ campaign and entry codes decode

@pytest.mark.parametrize("fmt", ["svg", "png"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channel", [None, "jiefang-daily"])
def test_campaign_code_decodes_to_the_ballot_url(client, fmt, size, channel):
    r = client.get(f"/c/{SLUG}/qr.{fmt}{query(size, channel)}")
    assert r.status_code == 200
    assert r.headers["content-type"] == qr.MEDIA_TYPES[fmt]
    assert r.headers["cache-control"] == "public, max-age=86400"
    assert decode(r) == [url_for(channel)]


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_without_size_the_default_is_used_and_decodes(client, fmt):
    r = client.get(f"/c/{SLUG}/qr.{fmt}?ch=poster_a4")
    assert decode(r) == [url_for("poster_a4")]


@pytest.mark.parametrize("size", SIZES)
def test_png_size_is_the_module_box_and_the_quiet_zone_is_kept(client, size):
    body = client.get(f"/c/{SLUG}/qr.png?size={size}").content
    image = grey_image(body)
    height, width = image.shape
    assert width == height and width % size == 0
    modules = width // size
    assert (modules - 2 * qr.BORDER - 17) % 4 == 0  # a QR version's side: 17 + 4v, plus the border
    edge = qr.BORDER * size
    for y in range(height):
        for x in range(width):
            if x < edge or y < edge or x >= width - edge or y >= height - edge:
                assert image[y, x] == 255, (x, y)


@pytest.mark.parametrize("size", SIZES)
def test_svg_is_one_vector_path_sized_by_the_same_parameter(client, size):
    text = client.get(f"/c/{SLUG}/qr.svg?size={size}").text
    soup = BeautifulSoup(text, "html.parser")
    svg = soup.find("svg")
    assert len(soup.find_all("path")) == 1 and not soup.find_all("image")
    n = int(svg["viewbox"].split()[2])
    assert svg["width"] == svg["height"] == str(n * size)


@pytest.mark.parametrize("size", [qr.MIN_SIZE, qr.MAX_SIZE, None])
def test_entry_code_decodes_to_the_entry_page(client, size):
    r = client.get(f"/brands/{BRAND}/qr.svg{query(size)}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
    assert decode(r) == [f"{BASE_URL}/brands/{BRAND}"]


def test_a_forged_host_header_still_gets_codes_for_the_base_url(client):
    evil = {"host": "evil.example"}
    for path, expected in [(f"/c/{SLUG}/qr.svg?ch=wechat", url_for("wechat")),
                           (f"/c/{SLUG}/qr.png", url_for()),
                           (f"/brands/{BRAND}/qr.svg", f"{BASE_URL}/brands/{BRAND}")]:
        r = client.get(path, headers=evil)
        assert r.status_code == 200
        assert decode(r) == [expected]
    page = client.get(f"/c/{SLUG}/poster?ch=wechat", headers=evil).text
    assert "evil.example" not in page and url_for("wechat") in page


# ------------------------------------------------------------ bad input: 400, a Chinese page, no image

def assert_chinese_400(r, words):
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/html")
    assert not r.content.startswith((b"\x89PNG", b"<svg"))
    alert = BeautifulSoup(r.text, "html.parser").find(attrs={"role": "alert"}).get_text(strip=True)
    assert words in alert and re.search(r"[\u4e00-\u9fff]", alert)


@pytest.mark.parametrize("size", ["0", "1", "21", "1000", "abc", "5.5", "-3", " 5", "５", "", "1e1", "0x5"])
@pytest.mark.parametrize("path", [f"/c/{SLUG}/qr.svg", f"/c/{SLUG}/qr.png", f"/brands/{BRAND}/qr.svg"])
def test_an_invalid_size_is_400(client, path, size):
    assert_chinese_400(client.get(path, params={"size": size}), "尺寸")


@pytest.mark.parametrize("channel", ["UPPER", "a" * 40, "中文", "a/b", "-lead", "a b", "a?b", "a&size=3"])
@pytest.mark.parametrize("path", [f"/c/{SLUG}/qr.svg", f"/c/{SLUG}/qr.png", f"/c/{SLUG}/poster"])
def test_an_invalid_channel_is_400(client, path, channel):
    assert_chinese_400(client.get(path, params={"ch": channel}), "渠道")


def test_an_empty_channel_means_no_channel(client):
    assert decode(client.get(f"/c/{SLUG}/qr.svg?ch=")) == [url_for()]


@pytest.mark.parametrize("path", ["/c/no-such-campaign/qr.svg", "/c/no-such-campaign/qr.png",
                                  "/c/no-such-campaign/poster", "/brands/no-such-entry/qr.svg"])
def test_unknown_is_404(client, path):
    r = client.get(path)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")


def test_a_draft_campaign_and_an_unpublished_entry_are_404(client, db):
    db.execute("update campaigns set opens_at = null, manual_state = null where slug = ?", [SLUG])
    db.execute("update brands set published = 0 where slug = ?", [BRAND])
    db.conn.commit()
    for path in (f"/c/{SLUG}/qr.svg", f"/c/{SLUG}/qr.png", f"/c/{SLUG}/poster", f"/brands/{BRAND}/qr.svg"):
        assert client.get(path).status_code == 404, path


# ------------------------------------------------------------ caching

def test_a_strong_etag_of_the_bytes_and_304_on_a_match(client):
    path = f"/c/{SLUG}/qr.png?size=4&ch=metro"
    r = client.get(path)
    etag = r.headers["etag"]
    assert etag == '"' + hashlib.sha256(r.content).hexdigest()[:32] + '"' and not etag.startswith("W/")
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = client.get(path, headers={"if-none-match": header})
        assert again.status_code == 304, header
        assert again.content == b""
        assert again.headers["etag"] == etag
        assert again.headers["cache-control"] == "public, max-age=86400"
    assert client.get(path, headers={"if-none-match": '"stale"'}).status_code == 200


def test_each_code_is_rendered_once(client):
    codes = client.app_state["qr_codes"]
    first = client.get(f"/c/{SLUG}/qr.svg?ch=metro")
    assert codes.renders == 1 and codes.hits == 0
    second = client.get(f"/c/{SLUG}/qr.svg?ch=metro")
    assert codes.renders == 1, "served again without rendering (page cache or QR cache)"
    assert first.content == second.content
    client.get(f"/c/{SLUG}/qr.svg?ch=metro&size=12")  # another size is another image
    client.get(f"/c/{SLUG}/qr.png?ch=metro")  # and another format
    assert codes.renders == 3


def test_with_page_caching_off_nothing_is_cached(seeded_settings, campaign, clock):
    from dataclasses import replace

    with TestClient(create_app(replace(seeded_settings, cache_pages=False), now=clock),
                    base_url="https://testserver") as c:
        assert decode(c.get(f"/c/{SLUG}/qr.png")) == [url_for()]
        c.get(f"/c/{SLUG}/qr.png")
        codes = c.app_state["qr_codes"]
        assert codes.renders == 2 and len(codes) == 0 and codes.hits == 0


# ------------------------------------------------------------ the poster

def test_the_poster_has_title_rules_dates_code_url_and_organizer(client):
    r = client.get(f"/c/{SLUG}/poster?ch=jiefang-daily")
    assert r.status_code == 200
    soup = BeautifulSoup(r.text, "html.parser")
    poster = soup.select_one(".poster")
    text = poster.get_text(" ", strip=True)
    assert "十三届上海市政协履职创新亮点评选" in soup.select_one(".poster__title").get_text()
    assert "最多选择10项" in text
    assert "2026年12月4日 20:00" in text and "2026年12月11日 20:00" in text  # localtime, Beijing
    assert soup.select_one(".poster__url").get_text(strip=True) == url_for("jiefang-daily")
    assert soup.select_one(".poster__org").get_text(strip=True) == "主办：上海市政协"
    img = poster.find("img")
    assert img["src"] == f"/c/{SLUG}/qr.svg?ch=jiefang-daily" and img["alt"]
    assert decode(client.get(img["src"])) == [url_for("jiefang-daily")]
    assert 'style="' not in r.text and "<script>" not in r.text


def test_the_poster_without_a_channel(client):
    soup = BeautifulSoup(client.get(f"/c/{SLUG}/poster").text, "html.parser")
    assert soup.select_one(".poster img")["src"] == f"/c/{SLUG}/qr.svg"
    assert soup.select_one(".poster__url").get_text(strip=True) == url_for()


def test_the_organizer_is_only_what_every_candidate_shares():
    assert common_organizer([{"organizer": "上海市政协"}, {"organizer": "上海市政协、上海广播电视台"}]) == "上海市政协"
    assert common_organizer([{"organizer": "甲"}, {"organizer": "乙"}]) is None
    assert common_organizer([]) is None


# ------------------------------------------------------------ voter-code slips

def run_cli(*args, base_url=BASE_URL):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRANDVOTE_")}
    env["BRANDVOTE_BASE_URL"] = base_url
    return subprocess.run([sys.executable, "-m", "brandvote", *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.fixture
def codes_campaign(db, campaign):
    db.execute("update campaigns set electorate = 'codes' where id = ?", [campaign["id"]])
    db.conn.commit()
    return campaign


@pytest.fixture
def slips(tmp_path, seeded_settings, codes_campaign):
    """`brandvote codes … --slips` for 13 codes: (codes from the CSV, the slips HTML)."""
    out, html = tmp_path / "codes.csv", tmp_path / "slips.html"
    r = run_cli("codes", SLUG, "--count", "13", "--out", str(out), "--slips", str(html),
                "--db", str(seeded_settings.db_path))
    assert r.returncode == 0, r.stderr
    assert "2 页 A4" in r.stdout
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    return [row["code"] for row in rows], html.read_text(encoding="utf-8")


def test_slips_carry_title_code_in_groups_of_four_and_a_qr_of_the_code_url(slips):
    codes, html = slips
    soup = BeautifulSoup(html, "html.parser")
    assert [len(s.select(".slip")) for s in soup.select(".slips__sheet")] == [12, 1]
    found = soup.select(".slip")
    assert len(found) == len(codes) == 13
    for code, slip in zip(codes, found):
        assert CODE_RE.match(code)
        assert slip.select_one(".slip__code").get_text(strip=True) == code
        assert [s.get_text() for s in slip.select(".slip__line")] == [code[:20], code[20:]]
        assert slip.select_one(".slip__title").get_text(strip=True) == "十三届上海市政协履职创新亮点评选"
    for i in (0, 1, 11, 12):  # both sheets
        svg = str(found[i].find("svg"))
        assert decode_svg(svg, width=400) == [f"{BASE_URL}/v/{codes[i]}"]


def test_slips_link_the_css_from_the_base_url_and_need_no_request(slips):
    _, html = slips
    soup = BeautifulSoup(html, "html.parser")
    link = soup.find("link", rel="stylesheet")
    assert re.fullmatch(re.escape(BASE_URL) + r"/static/app\.css\?v=[0-9a-f]{10}", link["href"])
    assert not soup.find("style") and not soup.find("script") and 'style="' not in html
    assert "127.0.0.1" not in html and "testserver" not in html


def test_only_the_qr_svg_is_unescaped_on_slips(tmp_path, seeded_settings, codes_campaign, db):
    from brandvote.web.templating import make_templates

    camp = {**codes_campaign, "title": "<b>标题</b>"}
    path = tmp_path / "s.html"
    with path.open("w", encoding="utf-8") as fh:
        qr.write_slips(make_templates(seeded_settings).env, camp, ["ABCD-EFGH"],
                       lambda code: f"{seeded_settings.base_url}/v/{code}", fh)
    text = path.read_text(encoding="utf-8")
    assert "&lt;b&gt;标题&lt;/b&gt;" in text and "<b>" not in text and text.count("<svg") == 1


def test_codes_refuses_an_existing_slips_file_and_creates_no_codes(tmp_path, seeded_settings, codes_campaign, db):
    html = tmp_path / "slips.html"
    html.write_text("keep", encoding="utf-8")
    r = run_cli("codes", SLUG, "--count", "3", "--out", str(tmp_path / "c.csv"), "--slips", str(html),
                "--db", str(seeded_settings.db_path))
    assert r.returncode == 1 and "已存在" in r.stderr
    assert html.read_text(encoding="utf-8") == "keep" and not (tmp_path / "c.csv").exists()
    assert db.execute("select count(*) from voter_codes").fetchone()[0] == 0


def test_a_scanned_slip_votes_once_and_only_once(slips, client, clock, db):
    codes, html = slips
    svg = str(BeautifulSoup(html, "html.parser").select(".slip")[5].find("svg"))
    [url] = decode_svg(svg, width=400)
    assert url.startswith(BASE_URL + "/v/")
    path = url.removeprefix(BASE_URL)
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/c/{SLUG}"
    token = csrf_from(client.get(f"/c/{SLUG}").text)
    clock.advance(seconds=5)
    camp = campaigns.campaign_by_slug(db, SLUG)
    choices = [b["slug"] for b in campaigns.candidates_of(db, camp["id"])][:3]
    vote = client.post(f"/c/{SLUG}/ballot", data={"csrf_token": token, "choice": choices}, follow_redirects=False)
    assert vote.status_code == 303
    assert db.execute("select count(*) from ballots").fetchone()[0] == 1
    again = client.get(path, follow_redirects=False)
    assert again.status_code == 403 and "已经使用过" in again.text
    client.cookies.clear()  # another phone scanning the same slip
    assert client.get(path, follow_redirects=False).status_code == 403
    assert db.execute("select count(*) from ballots").fetchone()[0] == 1


def test_slip_codes_with_a_fixed_mask_decode_for_many_codes():
    urls = [f"{BASE_URL}/v/{voter_codes.format_code(c * 32)}" for c in "0123456789ABCDEFGHJKMNPQRSTVWXYZ"]
    for url, svg in zip(urls, qr.slip_svgs(urls)):  # uniform data: the worst case for one fixed mask
        assert decode_svg(svg, width=330) == [url]
