"""axe-core (WCAG 2.1 A and AA) on every page kind, in Debian's chromium at phone size.

One server for the module, walked from an open vote to an announced one; one browser.
axe.min.js comes from the npm package `axe-core` (`make test` runs `npm ci --prefix tools`)
and is evaluated in the page, so the site's CSP stays on while axe runs.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from brandvote import ballots, campaigns, clock, db as dbmod
from browser_support import phone_page, screenshot
from helpers import LiveServer, PASSWORD, fill_path, staff_get_paths

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
AXE_JS = ROOT / "tools" / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
SLUG = "shanghai-2022-highlights"
CSRF_MIN_AGE_MS = 2200
STAFF = {"boss": "admin", "ed": "editor", "org": "organizer"}


STAFF_PATHS = staff_get_paths()


# ------------------------------------------------------------------ axe

def axe_violations(page) -> list[str]:
    """Run axe on the page as it is now; one line per failing node."""
    assert AXE_JS.exists(), f"{AXE_JS} is missing: run `npm ci --prefix tools` (make test does)"
    if page.evaluate("() => typeof window.axe") != "object":
        page.evaluate(AXE_JS.read_text(encoding="utf-8"))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
                           TAGS)
    return [f"{v['id']} ({v['impact']}): {' '.join(map(str, n['target']))}: {n['failureSummary']}".replace("\n", " ")
            for v in result["violations"] for n in v["nodes"]]


def check(page, name: str):
    problems = axe_violations(page)
    if problems:
        screenshot(page, f"a11y-{name}")
    assert problems == [], f"{name} ({page.url}):\n" + "\n".join(problems)


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = LiveServer(tmp_path_factory.mktemp("a11y"))
    for name, role in STAFF.items():
        subprocess.run([sys.executable, "-m", "brandvote", "user", "add", name, "--role", role,
                        "--db", str(srv.db_path)], input=PASSWORD + "\n", text=True, check=True,
                       capture_output=True)
    conn = dbmod.connect(srv.db_path)
    srv.brand = conn.execute("select slug from brands where published = 1 order by id limit 1").fetchone()[0]
    srv.list = conn.execute("select slug from lists order by id limit 1").fetchone()[0]
    conn.close()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def reader(browser):
    page = phone_page(browser)
    yield page
    page.context.close()


def sign_in(browser, server, username: str):
    page = phone_page(browser)
    page.goto(f"{server.url}/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    with page.expect_navigation():
        page.locator("form button[type=submit]").click()
    assert "/admin" in page.url, page.url
    return page


@pytest.fixture(scope="module")
def admin(browser, server):
    page = sign_in(browser, server, "boss")
    yield page
    page.context.close()


def submit_unchecked(page, button):
    """Submit as a client that skips the browser's own form checks (the server must catch them)."""
    page.evaluate("() => document.querySelectorAll('form').forEach(f => f.noValidate = true)")
    with page.expect_navigation() as nav:
        button.click()
    return nav.value


def set_times(server, *, closes_in: timedelta, announce_in: timedelta):
    conn = dbmod.connect(server.db_path)
    camp = campaigns.campaign_by_slug(conn, SLUG)
    now = clock.utcnow()
    conn.execute("update campaigns set closes_at = ?, announce_at = ?, manual_state = null where id = ?",
                 [clock.to_db(now + closes_in), clock.to_db(now + announce_in), camp["id"]])
    conn.conn.commit()
    conn.close()


def test_axe_really_reports_violations(server, reader):
    """A canary: a broken page in the same browser must fail, or a silent axe proves nothing."""
    reader.goto(f"{server.url}/no-such-page")
    reader.set_content('<html><head><title>x</title></head><body><img src="a.png"><a href="/"></a></body></html>')
    found = "\n".join(axe_violations(reader))
    assert "html-has-lang" in found and "image-alt" in found and "link-name" in found, found


# ------------------------------------------------------------------ public pages

PUBLIC = {
    "home": "/", "brands": "/brands", "brands-search": "/brands?q=协商", "brands-empty": "/brands?q=不存在的词语组合",
    "brand": "/brands/{brand}", "lists": "/lists", "list": "/lists/{list}", "poster": f"/c/{SLUG}/poster?ch=newspaper",
    "not-found": "/no-such-page", "login": "/login", "results-embargoed": f"/c/{SLUG}/results",
}


@pytest.mark.parametrize("name", PUBLIC)
def test_public_page(name, server, reader):
    reader.goto(server.url + PUBLIC[name].format(brand=server.brand, list=server.list))
    check(reader, name)


def test_login_error(server, browser):
    page = phone_page(browser)
    try:
        page.goto(f"{server.url}/login")
        page.get_by_label("用户名").fill("boss")
        page.get_by_label("密码").fill("wrong password")
        with page.expect_navigation():
            page.locator("form button[type=submit]").click()
        assert page.get_by_role("alert").count() >= 1
        check(page, "login-error")
    finally:
        page.context.close()


# ------------------------------------------------------------------ the ballot, step by step

def test_ballot_steps_with_js(server, browser):
    page = phone_page(browser)
    try:
        page.goto(f"{server.url}/c/{SLUG}")
        counter = page.locator("[data-counter]")
        assert counter.get_attribute("aria-live") == "polite"  # the count is announced to screen readers
        check(page, "ballot-empty")
        labels = page.locator("form.ballot label.choice__label")
        for i in range(10):
            labels.nth(i).click()
        assert counter.inner_text().strip() == "已选 10/10"
        check(page, "ballot-ten-ticked")
        labels.nth(10).click()  # refused: the counter turns into a warning
        assert counter.inner_text().strip().startswith("最多只能选择10项")
        check(page, "ballot-eleventh-refused")
        page.wait_for_timeout(CSRF_MIN_AGE_MS)
        page.get_by_role("button", name="提交选票").click()
        sheet = page.get_by_role("dialog")
        assert sheet.is_visible()
        check(page, "ballot-confirm-sheet")  # the modal sheet: named, focus inside, contrast
        with page.expect_navigation() as nav:
            sheet.get_by_role("button", name="确认提交").click()
        assert nav.value.status == 200 and page.url.endswith("/receipt")
        check(page, "receipt")
        page.goto(f"{server.url}/c/{SLUG}")  # has voted: the receipt again
        check(page, "ballot-has-voted")
    finally:
        page.context.close()


def test_ballot_error_page_from_a_no_js_submit(server, browser):
    """JS off: 11 ticks reach the server, which answers 422; axe (which needs JS) then
    checks that very response, replayed with its status and headers into a JS page."""
    nojs = phone_page(browser, java_script_enabled=False)
    try:
        nojs.goto(f"{server.url}/c/{SLUG}")
        labels = nojs.locator("form.ballot label.choice__label")
        for i in range(11):
            labels.nth(i).click()
        nojs.wait_for_timeout(CSRF_MIN_AGE_MS)
        with nojs.expect_navigation() as nav:
            nojs.get_by_role("button", name="提交选票").click()
        response = nav.value
        assert response.status == 422
        html, headers = nojs.content(), response.all_headers()
    finally:
        nojs.context.close()
    page = phone_page(browser)
    try:
        replay = f"{server.url}/c/{SLUG}/ballot-error-replay"
        page.route(replay, lambda route: route.fulfill(status=422, headers=headers, body=html))
        assert page.goto(replay).status == 422
        assert page.get_by_role("alert").count() == 1
        check(page, "ballot-error-422")
    finally:
        page.context.close()


# ------------------------------------------------------------------ the staff console

@pytest.mark.parametrize("path", STAFF_PATHS)
def test_staff_page(path, server, admin):
    url = fill_path(path, SLUG, server.brand)
    admin.goto(server.url + url)
    assert "/login" not in admin.url
    check(admin, path)


@pytest.mark.parametrize("username", ["ed", "org"])
def test_dashboard_per_role(username, server, browser):
    page = sign_in(browser, server, username)
    try:
        check(page, f"dashboard-{username}")
    finally:
        page.context.close()


def test_brand_edit_with_errors(server, admin):
    admin.goto(f"{server.url}/admin/brands/{server.brand}/edit")
    admin.locator("#f-year_founded").fill("十九")
    admin.locator("#f-summary").fill("短")
    admin.locator("#f-figures").fill("没有竖线")
    response = submit_unchecked(admin, admin.locator("button[name=action][value=save]"))
    assert response.status == 422
    assert admin.locator(".field-error").count() >= 2
    check(admin, "brand-edit-errors")


def test_import_with_errors(server, admin, tmp_path):
    bad = tmp_path / "brands.json"
    bad.write_text("{nope", encoding="utf-8")
    admin.goto(f"{server.url}/admin/import")
    admin.locator("input[type=file]").set_input_files(str(bad))
    with admin.expect_navigation() as nav:
        admin.locator("form:has(input[type=file]) button[type=submit]").click()
    assert nav.value.status == 422
    check(admin, "import-errors")


def test_new_campaign_with_errors(server, admin):
    admin.goto(f"{server.url}/admin/campaigns/new")
    admin.locator("#f-slug").fill("Bad Slug!")
    admin.locator("#f-title").fill("")
    response = submit_unchecked(admin, admin.locator("button[name=action][value=save]"))
    assert response.status == 422  # field errors: the form comes back marked
    check(admin, "campaign-new-errors")


# ------------------------------------------------------------------ closed, then announced (runs last)

def test_closed_then_announced(server, admin, reader):
    conn = dbmod.connect(server.db_path)
    camp = campaigns.campaign_by_slug(conn, SLUG)
    cands = [b["slug"] for b in campaigns.candidates_of(conn, camp["id"])]
    receipts = []
    for i in range(12):
        with dbmod.immediate(conn):
            receipts.append(ballots.cast_ballot(conn, camp["id"], f"device:a11y-{i}", cands[i % 5:i % 5 + 3 + i % 4],
                                               clock.utcnow())["receipt"])
    conn.close()

    set_times(server, closes_in=-timedelta(hours=1), announce_in=timedelta(days=1))
    reader.goto(f"{server.url}/c/{SLUG}")
    check(reader, "ballot-closed")
    admin.goto(f"{server.url}/admin/campaigns/{SLUG}")
    check(admin, "campaign-closed")

    set_times(server, closes_in=-timedelta(hours=1), announce_in=-timedelta(minutes=1))
    reader.goto(f"{server.url}/c/{SLUG}/results")
    assert reader.locator("li.result").count() == 15
    check(reader, "results-announced")
    reader.goto(f"{server.url}/c/{SLUG}/receipt?code={receipts[0]}")
    check(reader, "receipt-lookup")
    admin.goto(f"{server.url}/admin/campaigns/{SLUG}")
    check(admin, "campaign-announced")
