"""Every page kind is valid HTML by the Nu HTML checker (vnu.jar on Java 17).

The pages are rendered in-process (one app, one database, a clock the test moves) and
written to files that one `java -jar vnu.jar --errors-only` run checks together: one JVM
start instead of one per page. vnu refuses loopback URLs, so it never fetches anything.
`make test` installs vnu.jar with `npm ci --prefix tools`.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from brandvote import accounts, campaigns, db as dbmod
from brandvote.app import create_app
from brandvote.settings import Settings

from brandvote.routes import build_routes

from helpers import (ANNOUNCE, BASE_URL, CLOSES, NOW, OPENS, PASSWORD, SLUG, STAFF_DOWNLOADS, FakeClock, copy_db,
                    csrf_from, fill_path, login, open_campaign, page_links, resolves, staff_get_paths)

ROOT = Path(__file__).resolve().parents[1]
VNU = ROOT / "tools" / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"
BAD_BRAND = {  # every field wrong at once: the edit page with all its error messages
    "slug": "Bad Slug!", "name": "", "kind": "nope", "organizer": "", "region": "", "district": "",
    "year_founded": "十九", "summary": "短", "tags": "", "figures": "没有竖线", "sources": "javascript:alert(1)",
    "action": "save",
}


STAFF_PATHS = staff_get_paths()
PUBLIC_PAGES = [
    "home", "brands", "brands-search", "brands-filtered-empty", "brand", "lists", "list", "ballot-empty",
    "ballot-error-422", "ballot-confirm", "receipt", "ballot-again-409", "ballot-has-voted", "results-embargoed",
    "ballot-closed", "results-announced", "receipt-lookup", "poster", "not-found", "brand-not-found",
    "login", "login-error",
]
CANARY = "canary-broken"  # a page vnu must fault: proves the run really reports errors
BROKEN = '<!DOCTYPE html><html lang="zh-CN"><head><title>坏</title></head><body><div><img src="a.png"></body></html>'
STAFF_EXTRA = ["brand-edit-errors", "import-errors", "import-preview", "campaign-closed", "campaign-announced",
               "campaign-new-errors", "review-screening", "review-load-errors", "review-confirm", "review-deciding",
               "review-decide-error", "review-published"]
REVIEW = "beijing-district-innovation-cases"


def review_in_screening(db) -> None:
    """The demo review in screening, one nominated case with a PDF (attachment 1)."""
    from brandvote import nominations, review_results, reviews

    reviews.load_review(db, reviews.read_review_file(reviews.DEMO_REVIEW), NOW)
    accounts.create_user(db, "unit-a", PASSWORD, "nominator", NOW, unit="海淀区政协")
    review_results.set_stage(db, REVIEW, "nominating", NOW)
    nominations.nominate(db, REVIEW, "unit-a", {"title": "海淀的案例", "summary": "说明", "contact": "张老师"},
                         [nominations.Upload("材料.pdf", b"%PDF-1.4\n")], NOW)
    review_results.set_stage(db, REVIEW, "screening", NOW)


def review_scored(db) -> None:
    """Every case accepted and scored by the demo panel (a spread of marks), then deciding."""
    from brandvote import nominations, review_results, review_scores, reviews

    nominations.accept_all(db, REVIEW, "", NOW, "test")
    review_results.set_stage(db, REVIEW, "scoring", NOW)
    review = reviews.review_by_slug(db, REVIEW)
    for j, juror in enumerate(reviews.jurors_of(db, review["id"])):
        for i, case in enumerate(reviews.cases_of(db, review["id"], "accepted")):
            total = 40 - 2 * i  # distinct per case: no tie at a boundary; jurors 1 and 5 score lower
            marks = {c["key"]: total // 4 + (k < total % 4) for k, c in enumerate(review["criteria"])}
            marks["innovation"] -= {0: 2, 4: 1}.get(j, 0)
            review_scores.save_score(db, REVIEW, case["slug"], juror["username"], marks, "", NOW)
    review_results.set_stage(db, REVIEW, "deciding", NOW)


def html_of(response, status: int = 200) -> str:
    assert response.status_code == status, (response.request.url, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("text/html"), response.headers["content-type"]
    return response.text


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, seeded_template) -> dict[str, str]:
    """name -> HTML for every page kind, walking one campaign from open to announced."""
    tmp = tmp_path_factory.mktemp("vnu")
    settings = Settings(db_path=tmp / "vnu.db", secret="test-secret-not-for-production", base_url=BASE_URL,
                        ip_limit=0)
    copy_db(seeded_template, settings.db_path)
    dbmod.migrate(settings.db_path)
    db = dbmod.connect(settings.db_path)
    accounts.create_user(db, "boss", PASSWORD, "admin", NOW)
    campaign = open_campaign(db, SLUG, OPENS, CLOSES, ANNOUNCE)
    cands = [b["slug"] for b in campaigns.candidates_of(db, campaign["id"])]
    brand = db.execute("select slug from brands where published = 1 order by id limit 1").fetchone()[0]
    lst = db.execute("select slug from lists order by id limit 1").fetchone()[0]
    review_in_screening(db)
    db.close()

    clock = FakeClock(OPENS + timedelta(hours=1))
    pages: dict[str, str] = {}
    with TestClient(create_app(settings, now=clock), base_url="https://testserver") as c:
        get = c.get
        pages["home"] = html_of(get("/"))
        pages["brands"] = html_of(get("/brands"))
        pages["brands-search"] = html_of(get("/brands", params={"q": "协商"}))
        pages["brands-filtered-empty"] = html_of(get("/brands", params={"q": "不存在的词语组合", "region": "上海"}))
        pages["brand"] = html_of(get(f"/brands/{brand}"))
        pages["lists"] = html_of(get("/lists"))
        pages["list"] = html_of(get(f"/lists/{lst}"))
        pages["poster"] = html_of(get(f"/c/{SLUG}/poster", params={"ch": "newspaper"}))
        pages["not-found"] = html_of(get("/no-such-page"), 404)
        pages["brand-not-found"] = html_of(get("/brands/no-such-brand"), 404)
        pages["results-embargoed"] = html_of(get(f"/c/{SLUG}/results"))  # the page that says when

        # the ballot, step by step, as a phone without JS sends it
        pages["ballot-empty"] = html_of(get(f"/c/{SLUG}"))
        token = csrf_from(pages["ballot-empty"])
        clock.advance(seconds=5)
        eleven = c.post(f"/c/{SLUG}/ballot", data={"csrf_token": token, "choice": cands[:11]})
        pages["ballot-error-422"] = html_of(eleven, 422)
        token = csrf_from(pages["ballot-error-422"])
        clock.advance(seconds=5)
        pages["ballot-confirm"] = html_of(c.post(f"/c/{SLUG}/ballot", data={"csrf_token": token, "choice": cands[:10],
                                                                           "step": "review"}))
        pages["receipt"] = html_of(c.post(f"/c/{SLUG}/ballot", data={"csrf_token": token, "choice": cands[:10]}))
        receipt_code = re.search(r'class="receipt__code"[^>]*>\s*([0-9A-Z-]+)', pages["receipt"]).group(1)
        pages["ballot-has-voted"] = html_of(get(f"/c/{SLUG}"))
        again = c.post(f"/c/{SLUG}/ballot", data={"csrf_token": token, "choice": cands[5:9]})
        pages["ballot-again-409"] = html_of(again, 409)

        # the staff console while voting runs: every GET page in the route table
        c.cookies.clear()
        pages["login"] = html_of(get("/login"))
        bad = c.post("/login", data={"username": "boss", "password": "wrong", "csrf_token": csrf_from(pages["login"])})
        pages["login-error"] = html_of(bad, 400)
        assert login(c, "boss").status_code == 303
        pages["review-screening"] = html_of(get(f"/admin/reviews/{REVIEW}"))
        for path in STAFF_PATHS:
            pages[path] = html_of(get(fill_path(path, SLUG, brand)))
        for path in STAFF_DOWNLOADS:
            assert not get(fill_path(path, SLUG, brand)).headers["content-type"].startswith("text/html"), path
        token = csrf_from(get("/admin").text)
        pages["review-load-errors"] = html_of(c.post("/admin/reviews/load", data={"csrf_token": token},
                                                     files={"file": ("r.json", io.BytesIO(b'{"slug": "x"}'))}), 400)
        pages["review-confirm"] = html_of(c.post(f"/admin/reviews/{REVIEW}/stage",
                                                 data={"csrf_token": token, "stage": "scoring"}))
        review_scored(dbmod.connect(settings.db_path))
        pages["review-deciding"] = html_of(get(f"/admin/reviews/{REVIEW}"))
        pages["review-decide-error"] = html_of(c.post(f"/admin/reviews/{REVIEW}/decide", data={
            "csrf_token": token, "case": "dongcheng-sanzhu-gongcheng", "tier": "excellent", "reason": ""}), 422)
        pages["brand-edit-errors"] = html_of(
            c.post(f"/admin/brands/{brand}/edit", data={"csrf_token": token, **BAD_BRAND}), 422)
        pages["import-errors"] = html_of(c.post("/admin/import", data={"csrf_token": token},
                                                files={"file": ("brands.json", io.BytesIO(b"{nope"))}), 422)
        exported = get("/admin/export").content  # the bundled file would move the open campaign's times: 409
        pages["import-preview"] = html_of(c.post("/admin/import", data={"csrf_token": token},
                                                 files={"file": ("brands.json", io.BytesIO(exported))}))
        made = c.post("/admin/campaigns/new", data={"csrf_token": token, "slug": "Bad Slug!", "title": ""})
        pages["campaign-new-errors"] = html_of(made, 422)
        # published last: its tier lists (sources []) would not pass the catalog import above
        published = c.post(f"/admin/reviews/{REVIEW}/stage", data={"csrf_token": token, "stage": "published",
                                                                    "confirm": "yes"}, follow_redirects=False)
        assert published.status_code == 303, published.text[:2000]
        pages["review-published"] = html_of(get(f"/admin/reviews/{REVIEW}"))

        # closed, then announced
        clock.now = CLOSES + timedelta(hours=1)
        pages["ballot-closed"] = html_of(get(f"/c/{SLUG}"))  # the page that says voting is over
        assert login(c, "boss").status_code == 303
        pages["campaign-closed"] = html_of(get(f"/admin/campaigns/{SLUG}"))
        clock.now = ANNOUNCE + timedelta(hours=1)
        assert login(c, "boss").status_code == 303
        pages["campaign-announced"] = html_of(get(f"/admin/campaigns/{SLUG}"))
        c.cookies.clear()
        pages["results-announced"] = html_of(get(f"/c/{SLUG}/results"))
        pages["receipt-lookup"] = html_of(get(f"/c/{SLUG}/receipt", params={"code": receipt_code}))
    return pages


@pytest.fixture(scope="module")
def vnu_errors(rendered, tmp_path_factory) -> dict[str, list[str]]:
    """Run vnu once over every rendered page; name -> its error messages."""
    java = shutil.which("java")
    assert java, "java is missing: `make test` installs openjdk-17-jre-headless as root"
    assert VNU.exists(), f"{VNU} is missing: run `npm ci --prefix tools` (make test does)"
    folder = tmp_path_factory.mktemp("vnu-pages")
    files = {}
    for n, (name, html) in enumerate(sorted({**rendered, CANARY: BROKEN}.items())):
        path = folder / f"page{n:03d}.html"
        path.write_text(html, encoding="utf-8")
        files[path.name] = name
    run = subprocess.run([java, "-jar", str(VNU), "--errors-only", "--format", "json", "--stdout",
                          *(str(folder / f) for f in sorted(files))], capture_output=True, text=True, timeout=300)
    report = json.loads(run.stdout)
    found: dict[str, list[str]] = {name: [] for name in files.values()}
    for m in report["messages"]:
        name = files.get(m.get("url", "").rsplit("/", 1)[-1], m.get("url", "?"))
        found.setdefault(name, []).append(
            f"line {m.get('lastLine', '?')}: {m.get('type')}: {m.get('message')} [{m.get('extract', '').strip()}]")
    assert run.returncode in (0, 1), run.stderr
    return found


@pytest.mark.parametrize("name", PUBLIC_PAGES + STAFF_EXTRA + STAFF_PATHS)
def test_page_is_valid_html(name, rendered, vnu_errors):
    assert name in rendered, f"page {name} was not rendered"
    assert vnu_errors[name] == [], "\n".join(vnu_errors[name])


def test_every_page_kind_was_checked_and_vnu_really_reports_errors(rendered, vnu_errors):
    assert len(rendered) >= 30, sorted(rendered)
    assert set(vnu_errors) == set(rendered) | {CANARY}, set(vnu_errors) ^ (set(rendered) | {CANARY})
    canary = "\n".join(vnu_errors[CANARY])
    assert "alt" in canary and "Unclosed element" in canary, canary


def test_every_link_and_form_action_on_every_page_kind_is_a_route(rendered):
    """Links come from route names (path_for); this catches a path typed by hand or a route
    renamed under a template: every "/…" href, src and action must be answered by the route
    table with the method the page uses."""
    routes = build_routes()
    assert not resolves(routes, "GET", f"/c/{SLUG}/nope") and not resolves(routes, "GET", f"/c/{SLUG}/ballot")
    checked, broken = set(), []
    for name, html in sorted(rendered.items()):
        for method, path in page_links(html):
            checked.add((method, path))
            if not resolves(routes, method, path):
                broken.append(f"{name}: {method} {path}")
    assert broken == [], "\n".join(broken)
    assert {("POST", f"/c/{SLUG}/ballot"), ("GET", f"/c/{SLUG}/results"), ("GET", "/admin/campaigns"),
            ("POST", f"/admin/campaigns/{SLUG}/announce")} <= checked, sorted(checked)
