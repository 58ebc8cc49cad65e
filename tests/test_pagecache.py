"""Rendered pages are cached per worker and invalidated by every edit, import and announcement."""

import copy
import gzip
import random
import re
import zlib
from collections import Counter
from datetime import timedelta

from starlette.testclient import TestClient

from brandvote import db as dbmod, seed
from brandvote.web.pagecache import Fragments
from brandvote.app import create_app

from helpers import NOW, SLUG, csrf_from, open_campaign, wait_until


class Renders:
    """The templates one app rendered since the last look, by name (templating's counter)."""

    def __init__(self, client):
        self.counter = client.app_state["templates"].env.renders
        self.seen = Counter(self.counter)

    def since(self) -> dict:
        now = Counter(self.counter)
        new, self.seen = now - self.seen, now
        return dict(new)


def test_a_second_request_is_served_from_the_cache(client):
    first = client.get("/brands")
    second = client.get("/brands")
    assert first.text == second.text
    assert second.headers["etag"] == first.headers["etag"]
    again = client.get("/brands", headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_hits_are_answered_in_front_with_the_security_headers(client):
    cache = client.app_state["page_cache"]
    first = client.get("/brands")
    hits = cache.hits
    second = client.get("/brands")
    assert cache.hits == hits + 1
    for name in ("content-security-policy", "x-content-type-options", "referrer-policy"):
        assert second.headers[name] == first.headers[name]


def test_a_failing_cache_lookup_falls_through_to_the_app(seeded_settings, clock, db, monkeypatch):
    def locked(_):
        raise RuntimeError("database is locked")
    with TestClient(create_app(seeded_settings, now=clock), base_url="https://testserver",
                    raise_server_exceptions=False) as c:
        c.get("/brands")
        cache = c.app_state["page_cache"]
        monkeypatch.setattr(cache, "key_from_scope", locked)
        monkeypatch.setattr(cache, "key", locked)
        r = c.get("/brands")
    assert r.status_code == 500 and "服务器" in r.text  # the app's own Chinese error page, not a bare 500
    assert "content-security-policy" in r.headers


def test_a_crowd_on_a_cold_page_costs_one_render(client, monkeypatch):
    """After an edit or the announcement every cached page is cold at once; the requests that
    arrive while one renders wait for it instead of each rendering the same page."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from brandvote import catalog as catalog_rules

    cache = client.app_state["page_cache"]
    renders = Renders(client)
    search = catalog_rules.search_brands
    started, release = threading.Event(), threading.Event()

    def held_search(*args, **kwargs):  # holds the one render until the crowd waits for it
        started.set()
        assert release.wait(10)
        return search(*args, **kwargs)

    monkeypatch.setattr(catalog_rules, "search_brands", held_search)
    with ThreadPoolExecutor(8) as pool:
        before = (cache.misses, cache.renders)
        first = pool.submit(client.get, "/brands")
        assert started.wait(10)
        per_request = cache.misses - before[0]  # the lookups a request makes before it renders or waits
        crowd = [pool.submit(client.get, "/brands") for _ in range(7)]
        wait_until(lambda: cache.misses == before[0] + 8 * per_request)  # all seven wait on the render
        release.set()
        pages = [first.result()] + [f.result() for f in crowd]
    assert cache.renders == before[1] + 1
    assert renders.since() == {"catalog/brands.html": 1}
    assert {p.status_code for p in pages} == {200} and len({p.text for p in pages}) == 1


def test_an_edit_is_visible_at_once(client, db, bundled):
    slug = bundled["brands"][0]["slug"]
    assert "新写的摘要" not in client.get(f"/brands/{slug}").text
    db.execute("update brands set summary = '新写的摘要：用于检查缓存是否在修改后立即失效。' where slug = ?", [slug])
    db.conn.commit()
    assert "新写的摘要" in client.get(f"/brands/{slug}").text
    assert "新写的摘要" in client.get("/brands").text
    assert "新写的摘要" in client.get(f"/api/brands/{slug}").text


def test_an_import_is_visible_at_once(client, db, bundled):
    client.get("/lists")
    doc = copy.deepcopy(bundled)
    doc["lists"][0]["title"] = "改过名字的榜单"
    seed.load_document(db, doc, NOW)
    assert "改过名字的榜单" in client.get("/lists").text


def test_the_announcement_is_visible_at_its_second(client, clock, db):
    # every candidate a winner: no ballots, yet no tie at the cut-off to hold the announcement
    announce = clock.now + timedelta(hours=1)
    open_campaign(db, SLUG, announce - timedelta(days=10), announce - timedelta(days=1), announce, winners=15)
    before = client.get(f"/c/{SLUG}/results")
    assert "结果将于" in before.text and "no-store" in before.headers["cache-control"]
    assert "查看结果" not in client.get("/").text
    clock.now = announce
    after = client.get(f"/c/{SLUG}/results")
    assert "有效选票" in after.text and "public" in after.headers["cache-control"]
    assert "查看结果" in client.get("/").text


def test_another_worker_sees_the_same_change(seeded_settings, clock, db, bundled):
    """Two apps on one database (as two uvicorn workers): an edit through one invalidates both."""
    slug = bundled["brands"][1]["slug"]
    with TestClient(create_app(seeded_settings, now=clock), base_url="https://testserver") as a, \
            TestClient(create_app(seeded_settings, now=clock), base_url="https://testserver") as b:
        a.get(f"/brands/{slug}"), b.get(f"/brands/{slug}")
        other = dbmod.connect(seeded_settings.db_path)
        other.execute("update brands set name = '另一进程改的名字' where slug = ?", [slug])
        other.conn.commit()
        assert "另一进程改的名字" in a.get(f"/brands/{slug}").text
        assert "另一进程改的名字" in b.get(f"/brands/{slug}").text


def test_pages_are_gzipped_for_clients_that_ask(client):
    r = client.get("/brands", headers={"accept-encoding": "gzip"})
    assert r.headers.get("content-encoding") == "gzip"
    assert "Accept-Encoding" in r.headers.get("vary", "")
    raw = client.get("/brands", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in raw.headers
    css = client.get("/static/app.css", headers={"accept-encoding": "gzip"})
    assert css.headers.get("content-encoding") == "gzip"


def test_png_codes_are_not_compressed_twice(client, db):
    open_campaign(db, SLUG, NOW - timedelta(days=1), NOW + timedelta(days=1), NOW + timedelta(days=2))
    for _ in ("rendered", "from the cache"):
        png = client.get(f"/c/{SLUG}/qr.png?size=20", headers={"accept-encoding": "gzip"})
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert "content-encoding" not in png.headers and png.content.startswith(b"\x89PNG")


def test_per_voter_pages_are_never_cached(client, db):
    open_campaign(db, SLUG, NOW - timedelta(days=1), NOW + timedelta(days=1), NOW + timedelta(days=2))
    first = client.get(f"/c/{SLUG}")
    client.cookies.clear()
    second = client.get(f"/c/{SLUG}")
    assert csrf_from(first.text) != csrf_from(second.text)
    assert "etag" not in second.headers and second.headers["cache-control"] == "no-store"


def test_the_ballot_page_is_small_over_the_wire(client, db):
    """≤ 30 KB with CSS and JS, gzipped, as a phone on a slow network fetches it."""
    open_campaign(db, SLUG, NOW - timedelta(days=1), NOW + timedelta(days=1), NOW + timedelta(days=2))
    page = client.get(f"/c/{SLUG}", headers={"accept-encoding": "gzip"})
    assert page.headers["content-encoding"] == "gzip"
    sizes = {}
    for path in [f"/c/{SLUG}"] + re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text):
        r = client.get(path, headers={"accept-encoding": "gzip"})
        assert r.status_code == 200
        sizes[path] = int(r.headers["content-length"])  # bytes on the wire, compressed
    assert sum(sizes.values()) <= 30 * 1024, sizes


def test_spliced_gzip_decompresses_to_the_page_with_the_slot():
    rng = random.Random(7)
    page = "<p>候选项目：读书会、协商议事厅</p>".encode() * 300
    cases = [(b"", b"", b""), (page, b"", page), (b"", b"tok", b""), (page[:1], b"x" * 35000, page[:7])]
    for _ in range(40):
        before = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 3000))) + page[: rng.randrange(len(page))]
        after = page[: rng.randrange(len(page))] + bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 300)))
        cases.append((before, rng.randbytes(rng.randrange(0, 200)), after))
    for before, slot, after in cases:
        parts = Fragments(before, after)
        assert parts.body(slot) == before + slot + after
        spliced = parts.gzipped(slot)
        assert gzip.decompress(spliced) == before + slot + after  # Python's gzip checks CRC and length
        assert zlib.decompress(spliced, wbits=31) == before + slot + after
    assert len(Fragments(page, page).gzipped(b"t" * 100)) < len(page) // 5  # compressed, not just wrapped


def test_a_phone_gets_the_ballot_gzipped_and_its_token_votes(seeded_settings, clock, db):
    open_campaign(db, SLUG, NOW - timedelta(days=1), NOW + timedelta(days=1), NOW + timedelta(days=2))
    with TestClient(create_app(seeded_settings, now=clock), base_url="https://testserver") as c:
        zipped = c.get(f"/c/{SLUG}", headers={"accept-encoding": "gzip"})
        plain = c.get(f"/c/{SLUG}", headers={"accept-encoding": "identity"})
        assert zipped.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
        assert zipped.headers["vary"] == plain.headers["vary"] == "Accept-Encoding"
        assert zipped.text.replace(csrf_from(zipped.text), "T") == plain.text.replace(csrf_from(plain.text), "T")
        candidates = re.findall(r'name="choice" value="([^"]+)"', zipped.text)
        clock.advance(seconds=5)
        r = c.post(f"/c/{SLUG}/ballot", data={"csrf_token": csrf_from(zipped.text), "choice": candidates[:10]},
                   follow_redirects=False)
        assert r.status_code == 303


def test_the_crowd_gets_the_ballot_assembled_and_everyone_else_the_rendered_page(seeded_settings, clock, db):
    """A first visit to an open ballot is spliced from fragments rendered once per campaign
    state (the crowd's cost); a voter who has voted, or a closed campaign, gets the page
    rendered for them, as before: one render per visit, however many visits."""
    open_campaign(db, SLUG, NOW - timedelta(days=1), NOW + timedelta(days=1), NOW + timedelta(days=2))
    with TestClient(create_app(seeded_settings, now=clock), base_url="https://testserver") as c:
        renders = Renders(c)
        tokens = set()
        for _ in range(5):
            c.cookies.clear()
            page = c.get(f"/c/{SLUG}", headers={"accept-encoding": "gzip"})
            assert page.status_code == 200 and page.headers["set-cookie"]
            tokens.add(csrf_from(page.text))
        assert (renders.since(), len(tokens)) == ({"vote/ballot.html": 1}, 5)
        clock.advance(seconds=5)
        candidates = re.findall(r'name="choice" value="([^"]+)"', page.text)
        voted = c.post(f"/c/{SLUG}/ballot", data={"csrf_token": csrf_from(page.text), "choice": candidates[:3]})
        assert voted.status_code == 200 and "回执" in voted.text
        renders.since()  # the receipt: counted in the receipt test below
        for _ in range(2):
            again = c.get(f"/c/{SLUG}")
            assert "回执" in again.text and 'name="csrf_token"' not in again.text
            assert renders.since() == {"vote/receipt.html": 1}
        clock.advance(days=1)
        for _ in range(2):
            c.cookies.clear()
            closed = c.get(f"/c/{SLUG}")
            assert "投票已于" in closed.text and renders.since() == {"vote/ballot.html": 1}


def test_each_voter_gets_the_receipt_assembled_as_the_router_would_render_it(seeded_settings, clock, db):
    """The receipt every voter opens after the 303 is answered in front: the page around the
    voter's part is rendered once per campaign state, the part per voter. It must be the very
    page the router renders (asked with a query, which goes the plain way), gzipped or not.
    The router renders the whole page (its part included, not counted apart); the front
    renders only the part once the page around it is kept."""
    open_campaign(db, SLUG, NOW - timedelta(days=1), NOW + timedelta(days=1), NOW + timedelta(days=2))
    with TestClient(create_app(seeded_settings, now=clock), base_url="https://testserver") as c:
        renders = Renders(c)
        pages = []
        for i in range(3):
            c.cookies.clear()
            form = c.get(f"/c/{SLUG}")
            candidates = re.findall(r'name="choice" value="([^"]+)"', form.text)
            clock.advance(seconds=5)
            picks = [candidates[i], candidates[9 - i], candidates[12]]
            voted = c.post(f"/c/{SLUG}/ballot", data={"csrf_token": csrf_from(form.text), "choice": picks},
                           follow_redirects=False)
            assert voted.status_code == 303
            renders.since()  # the ballot page: counted in the test above
            assembled = c.get(f"/c/{SLUG}/receipt", headers={"accept-encoding": "gzip"})
            around = {"vote/receipt.html": 1} if i == 0 else {}  # the page around the part, kept after the first
            assert renders.since() == {**around, "_partials/receipt.html": 1}
            assert assembled.headers["content-encoding"] == "gzip"
            plain = c.get(f"/c/{SLUG}/receipt", headers={"accept-encoding": "identity"})
            assert renders.since() == {"_partials/receipt.html": 1}
            rendered = c.get(f"/c/{SLUG}/receipt?from=test", headers={"accept-encoding": "identity"})
            assert renders.since() == {"vote/receipt.html": 1}
            assert assembled.text == plain.text == rendered.text
            for name in ("cache-control", "content-security-policy", "x-content-type-options"):
                assert plain.headers[name] == rendered.headers[name]
            assert plain.headers["cache-control"] == "no-store"
            names = dict(db.execute("select slug, name from brands"))
            listed = re.findall(r"<li>(.*?)</li>", plain.text.split('class="receipt__choices"')[1].split("</ol>")[0])
            assert listed == [names[s] for s in candidates if s in picks]
            pages.append(plain.text)
        assert len(set(pages)) == 3  # each voter's own code and choices
        db.execute("update campaigns set title = '改过的评选标题' where slug = ?", [SLUG])
        db.conn.commit()
        assert "改过的评选标题" in c.get(f"/c/{SLUG}/receipt").text  # an edit is seen at once
        c.cookies.clear()
        assert c.get(f"/c/{SLUG}/receipt", follow_redirects=False).status_code == 303  # no ballot: to the form
