"""Results through HTTP: a seeded simulation, the embargo over every public route, downloads."""

import csv
import io
import random
import re
from collections import Counter
from dataclasses import replace
from datetime import timedelta

from bs4 import BeautifulSoup
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from brandvote import ballots, campaigns, db as dbmod, tally
from brandvote.app import create_app
from brandvote.security import DEVICE_COOKIE, Tokens

from helpers import ANNOUNCE, OPENS, SLUG, FakeClock, copy_db


def generate_ballots(candidates, n, seed):
    """Valid random ballots, made in advance: popularity skewed so ranks are distinct-ish."""
    rng = random.Random(seed)
    weights = [rng.random() ** 2 + 0.05 for _ in candidates]
    ballots = []
    for _ in range(n):
        k = rng.randint(1, 10)
        picked = set()
        while len(picked) < k:
            picked.add(rng.choices(candidates, weights)[0])
        ballots.append(sorted(picked))
    return ballots


def independent_count(ballots):
    return Counter(slug for b in ballots for slug in b)


def cast_through_http(client, settings, clock, ballots):
    tokens = Tokens(settings.secret)
    for choices in ballots:
        device, cookie = tokens.new_device()
        key = tokens.voter_key("device", device)
        csrf = tokens.csrf(key, 1, clock.now - timedelta(seconds=30))
        client.cookies.clear()
        client.cookies.set(DEVICE_COOKIE, cookie)
        r = client.post(f"/c/{SLUG}/ballot", data={"csrf_token": csrf, "choice": choices}, follow_redirects=False)
        assert r.status_code == 303, r.text[:500]
        clock.advance(seconds=1)


def test_seeded_simulation_tally_equals_independent_count_equals_recount(seeded_settings, campaign, candidates, db):
    ballots = generate_ballots(candidates, 1500, seed=20221231)
    clock = FakeClock(OPENS + timedelta(hours=1))
    settings = replace(seeded_settings, ip_limit=0)
    with TestClient(create_app(settings, now=clock), base_url="https://testserver") as c:
        cast_through_http(c, settings, clock, ballots)
        clock.now = ANNOUNCE - timedelta(seconds=1)
        assert c.get(f"/api/campaigns/{SLUG}/results").status_code == 403
        clock.now = ANNOUNCE + timedelta(seconds=1)
        api = c.get(f"/api/campaigns/{SLUG}/results").json()
        ledger = c.get(f"/c/{SLUG}/ledger.csv")
        page = c.get(f"/c/{SLUG}/results")
    expected = independent_count(ballots)
    assert api["ballots"] == len(ballots)
    assert {x["slug"]: x["votes"] for x in api["candidates"]} == {s: expected.get(s, 0) for s in candidates}
    for x in api["candidates"]:
        assert x["share"] == round(expected.get(x["slug"], 0) / len(ballots), 4)
    # ranks: competition ranking over the independent count
    for x in api["candidates"]:
        assert x["rank"] == 1 + sum(1 for s in candidates if expected.get(s, 0) > expected.get(x["slug"], 0))
    # the ledger recounts to the same numbers and its digest is the one published
    report = tally.recount(ledger.text, api)
    assert report["matches"] is True, report["differences"]
    assert ledger.headers["x-ledger-sha256"] == api["ledger_sha256"] == tally.sha256(ledger.text)
    assert api["ledger_sha256"] in page.text
    # the results page shows every count, winners marked
    soup = BeautifulSoup(page.text, "html.parser")
    shown = {li.select_one(".result__name")["href"].split("/")[-1]: int(li.select_one(".result__votes").get_text().split()[0])
             for li in soup.select("li.result")}
    assert shown == {s: expected.get(s, 0) for s in candidates}
    assert len(soup.select("li.result--winner")) == sum(1 for x in api["candidates"] if x["winner"])


def test_the_ledger_holds_no_voter_key_and_no_time(seeded_settings, campaign, candidates, db):
    for i, choices in enumerate(generate_ballots(candidates, 20, seed=7)):
        with dbmod.immediate(db):
            ballots.cast_ballot(db, campaign["id"], f"device:secret-key-{i}", choices, OPENS + timedelta(hours=i))
    with TestClient(create_app(seeded_settings, now=FakeClock(ANNOUNCE)), base_url="https://testserver") as c:
        text = c.get(f"/c/{SLUG}/ledger.csv").text
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["receipt_sha256", "choices"]
    assert [r[0] for r in rows[1:]] == sorted(r[0] for r in rows[1:])
    assert "secret-key" not in text and "device" not in text
    assert not re.search(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}", text)
    receipts = {r[0] for r in db.execute("select receipt from ballots")}
    assert not any(rc in text for rc in receipts), "receipts are published only as hashes"


def test_results_csv_opens_in_excel_with_chinese_intact(seeded_settings, campaign, candidates, db):
    with dbmod.immediate(db):
        db.execute("update campaigns set winners = 3 where id = ?", [campaign["id"]])  # a clear cut-off
        ballots.cast_ballot(db, campaign["id"], "device:1", candidates[:3], OPENS)
    with TestClient(create_app(seeded_settings, now=FakeClock(ANNOUNCE)), base_url="https://testserver") as c:
        r = c.get(f"/c/{SLUG}/results.csv")
    assert r.content.startswith(b"\xef\xbb\xbf")
    assert r.headers["content-type"].startswith("text/csv")
    text = r.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:4] == ["名次", "项目", "主办单位", "票数"]
    names = {b["name"] for b in campaigns.candidates_of(db, campaign["id"])}
    assert {row[1] for row in rows[1:16]} == names


def test_receipt_lookup_after_the_announcement(seeded_settings, campaign, candidates, db):
    with dbmod.immediate(db):
        db.execute("update campaigns set winners = 2 where id = ?", [campaign["id"]])  # a clear cut-off
        ballot = ballots.cast_ballot(db, campaign["id"], "device:1", candidates[:2], OPENS)
    clock = FakeClock(ANNOUNCE - timedelta(seconds=1))
    with TestClient(create_app(seeded_settings, now=clock), base_url="https://testserver") as c:
        before = c.get(f"/c/{SLUG}/receipt", params={"code": ballot["receipt"]})
        assert before.status_code == 403 and "揭晓" in before.text
        clock.now = ANNOUNCE
        found = c.get(f"/c/{SLUG}/receipt", params={"code": ballot["receipt"].lower()})
        raw = ballot["receipt"].replace("-", "")
        full_width = "".join(chr(ord(ch) + 0xFEE0) for ch in raw)  # typed with a Chinese IME
        variants = [raw, f" {raw[:4]} {raw[4:8]} {raw[8:]} ", full_width, raw.lower().replace("0", "o")]
        as_typed = [c.get(f"/c/{SLUG}/receipt", params={"code": v}) for v in variants]
        missing = c.get(f"/c/{SLUG}/receipt", params={"code": "0000-0000-0000"})
    assert found.status_code == 200 and "已计入" in found.text
    for variant, r in zip(variants, as_typed):
        assert (r.status_code, ballot["receipt"] in r.text) == (200, True), variant
    assert missing.status_code == 404 and "没有找到回执码" in missing.text


def test_announced_winners_become_a_catalog_list(seeded_settings, campaign, candidates, db):
    for i in range(3):
        with dbmod.immediate(db):
            ballots.cast_ballot(db, campaign["id"], f"device:{i}", candidates[: 10 - i], OPENS)
    with TestClient(create_app(seeded_settings, now=FakeClock(ANNOUNCE)), base_url="https://testserver") as c:
        c.get(f"/c/{SLUG}/results")
        listing = c.get(f"/lists/{SLUG}-results")
    assert listing.status_code == 200
    soup = BeautifulSoup(listing.text, "html.parser")
    assert len(soup.select("ol.ranked .card__title")) == 10


# ------------------------------------------------------------ the embargo over every public route

def get_routes(app):
    """Every GET path template in the app's route table (mounts included)."""
    found = []

    def walk(routes, prefix):
        for r in routes:
            if isinstance(r, Mount):
                if r.routes:
                    walk(r.routes, prefix + r.path)
                else:
                    found.append(prefix + r.path + "/{path}")
            elif isinstance(r, Route) and "GET" in (r.methods or set()):
                found.append(prefix + r.path)

    walk(app.routes, "")
    return found


def sample_paths(template, ctx):
    """Concrete URLs for a route template; a route this does not know fails the test."""
    values = {
        "/brands/{slug}": ctx["brands"], "/api/brands/{slug}": ctx["brands"], "/brands/{slug}/qr.svg": ctx["brands"],
        "/lists/{slug}": ctx["lists"], "/api/lists/{slug}": ctx["lists"],
        "/static/{path}": ["app.css", "app.js"],
    }
    if "{slug}" in template and (template.startswith("/c/") or template.startswith("/api/campaigns/")):
        paths = [template.replace("{slug}", SLUG)]
        if template.endswith("/receipt"):
            paths.append(paths[0] + "?code=" + ctx["receipt"])
        if template in ("/c/{slug}", "/c/{slug}/qr.svg", "/c/{slug}/qr.png", "/c/{slug}/poster"):
            paths.append(paths[0] + "?ch=paper")
        return paths
    if template == "/v/{code}":
        return ["/v/" + "A" * 32]
    if template.startswith("/admin/"):  # staff pages: the public (anonymous) view of them
        admin_values = {"slug": SLUG if template.startswith("/admin/campaigns") else ctx["brands"][0],
                        "rev": "1", "import_id": "none", "attachment": "1"}
        return [re.sub(r"\{(\w+)\}", lambda m: admin_values[m.group(1)], template)]
    if template in values:
        return [re.sub(r"\{\w+\}", v, template) for v in values[template]]
    assert "{" not in template, f"new route {template}: teach sample_paths about it"
    if template == "/brands":
        return ["/brands", "/brands?q=协商", "/brands?list=" + ctx["lists"][1]]
    return [template]


# What each public GET route answers an anonymous visitor one second before the announcement:
# the ballot, its codes and poster, the catalog and the API as always; the results page says
# when they come (200) while every download of them is refused (403); staff pages send to the
# sign-in (303). A new route fails the test until it is listed here.
BEFORE_ANNOUNCEMENT = {
    "/": 200, "/healthz": 200, "/login": 200, "/logout": 303,
    "/brands": 200, "/brands/{slug}": 200, "/brands/{slug}/qr.svg": 200, "/lists": 200, "/lists/{slug}": 200,
    "/c/{slug}": 200, "/c/{slug}/qr.svg": 200, "/c/{slug}/qr.png": 200, "/c/{slug}/poster": 200,
    "/c/{slug}/receipt": 303,  # no ballot cookie: to the ballot
    "/v/{code}": 403,  # an unknown voter code
    "/c/{slug}/results": 200, "/c/{slug}/results.csv": 403, "/c/{slug}/results.json": 403,
    "/c/{slug}/ledger.csv": 403,
    "/admin": 303, "/admin/users": 303, "/admin/audit": 303, "/admin/campaigns": 303,
    "/admin/campaigns/new": 303, "/admin/campaigns/{slug}": 303, "/admin/campaigns/{slug}/edit": 303,
    "/admin/brands": 303, "/admin/brands/new": 303, "/admin/brands/{slug}/edit": 303,
    "/admin/brands/{slug}/delete": 303, "/admin/brands/{slug}/history": 303, "/admin/import": 303,
    "/admin/export": 303,
    "/admin/reviews": 303, "/admin/reviews/{slug}": 303, "/admin/reviews/{slug}/attachments/{attachment}": 303,
    "/api/brands": 200, "/api/brands/{slug}": 200, "/api/lists": 200, "/api/lists/{slug}": 200,
    "/api/campaigns": 200, "/api/campaigns/{slug}": 200, "/api/openapi.json": 200,
    "/api/campaigns/{slug}/results": 403,
    "/static/{path}": 200,
}


def before_announcement(template, path, ctx):
    """The status BEFORE_ANNOUNCEMENT gives, but for the samples of a route that answer otherwise."""
    samples = {f"/c/{SLUG}/receipt?code={ctx['receipt']}": 403,  # a receipt lookup waits for the announcement
               f"/lists/{SLUG}-results": 404, f"/api/lists/{SLUG}-results": 404}  # the winners' list: not yet
    return samples.get(path, BEFORE_ANNOUNCEMENT[template])


def normalize(response):
    body = response.content
    if response.headers.get("content-type", "").startswith("text/html"):
        body = re.sub(rb'name="csrf_token" value="[^"]*"', b"", body)
    return response.status_code, response.headers.get("content-type"), body


def test_no_count_share_rank_or_order_leaks_before_the_announcement(seeded_settings, seeded_template, campaign, db,
                                                                     candidates, tmp_path, bundled):
    """Non-interference: two databases whose ballots differ (in number and in winner) must look
    the same through every public GET route one second before the announcement; one second
    after, the results differ and are exact."""
    other_path = copy_db(seeded_settings.db_path, tmp_path / "other.db")
    other = dbmod.connect(other_path)
    a = generate_ballots(candidates, 300, seed=1)
    b = [[c for c in candidates if c not in ballot][:10] for ballot in generate_ballots(candidates, 211, seed=2)]
    receipt = None
    for conn, batch in ((db, a), (other, b)):
        for i, choices in enumerate(batch):
            with dbmod.immediate(conn):
                stored = ballots.cast_ballot(conn, campaign["id"], f"device:{i}", choices,
                                            OPENS + timedelta(minutes=i), channel="paper" if i % 3 else None)
            receipt = receipt or stored["receipt"]
    other.close()
    ctx = {"brands": candidates[:3] + [bundled["brands"][0]["slug"]],
           "lists": [item["slug"] for item in bundled["lists"]] + [f"{SLUG}-results"], "receipt": receipt}
    clock = FakeClock(ANNOUNCE - timedelta(seconds=1))
    settings_b = replace(seeded_settings, db_path=other_path)
    app_a, app_b = create_app(seeded_settings, now=clock), create_app(settings_b, now=clock)
    templates = get_routes(app_a)
    assert set(templates) == set(BEFORE_ANNOUNCEMENT), "a route added or gone: list it in BEFORE_ANNOUNCEMENT"
    paths = [(t, p) for t in templates for p in sample_paths(t, ctx)]
    assert any("/results" in p for _, p in paths) and any("ledger" in p for _, p in paths)
    with TestClient(app_a, base_url="https://testserver") as ca, TestClient(app_b, base_url="https://testserver") as cb:
        for template, path in paths:
            ra, rb = ca.get(path, follow_redirects=False), cb.get(path, follow_redirects=False)
            assert normalize(ra) == normalize(rb), f"{path} depends on the ballots before the announcement"
            assert ra.status_code == before_announcement(template, path, ctx), (path, ra.status_code)
        for path in (f"/c/{SLUG}/results", f"/api/campaigns/{SLUG}/results", f"/c/{SLUG}/ledger.csv"):
            assert "no-store" in ca.get(path).headers.get("cache-control", ""), path
        assert ca.get(f"/api/campaigns/{SLUG}/results").status_code == 403
        assert "结果将于" in ca.get(f"/c/{SLUG}/results").text

        clock.now = ANNOUNCE + timedelta(seconds=1)
        res_a, res_b = ca.get(f"/api/campaigns/{SLUG}/results").json(), cb.get(f"/api/campaigns/{SLUG}/results").json()
    count_a = independent_count(a)
    assert res_a["ballots"] == len(a) and res_b["ballots"] == len(b)
    assert {x["slug"]: x["votes"] for x in res_a["candidates"]} == {s: count_a.get(s, 0) for s in candidates}
    assert res_a != res_b


def test_an_early_announcement_shows_and_exposes_the_real_time(seeded_settings, campaign, candidates, db):
    """Announced by hand two days before the planned date: the results page and the API say
    when it really happened (and the planned date as 原定); before, announced_at is null."""
    from helpers import CLOSES

    with dbmod.immediate(db):
        db.execute("update campaigns set winners = 1 where id = ?", [campaign["id"]])  # a clear cut-off
        ballots.cast_ballot(db, campaign["id"], "device:1", candidates[:1], OPENS)
    early = CLOSES + timedelta(days=5)
    clock = FakeClock(early - timedelta(hours=1))
    with TestClient(create_app(seeded_settings, now=clock), base_url="https://testserver") as c:
        assert c.get(f"/api/campaigns/{SLUG}").json()["announced_at"] is None
        clock.now = early
        tally.announce(db, SLUG, early)
        page = c.get(f"/c/{SLUG}/results").text
        api = c.get(f"/api/campaigns/{SLUG}").json()
    assert api["announced_at"] == "2026-12-09T12:00:00+00:00" and api["announce_at"] == "2026-12-11T12:00:00+00:00"
    assert "揭晓：2026年12月9日 20:00（原定 2026年12月11日 20:00）" in page
