"""A voter on a phone: open the ballot, tick at most 10 of 15, submit, get a receipt.

Three voters (each fixture context is a fresh device): by touch with JS, without JS
(the server enforces the limit), and by keyboard only.
"""

import re

import pytest

from browser_support import screenshot

pytestmark = pytest.mark.browser

SLUG = "shanghai-2022-highlights"
RECEIPT_RE = re.compile(r"^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$")
CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ-")
CSRF_MIN_AGE_MS = 2200  # a ballot posted within 2 s of the device's first ballot page is refused


def collect_errors(page) -> list:
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    return errors


def assert_valid_receipt_code(code: str):
    assert RECEIPT_RE.match(code), code
    assert set(code) <= CROCKFORD, f"not Crockford base32: {code}"


def submit_in_viewport(page) -> bool:
    """The submit button is fully inside the viewport and nothing covers its centre."""
    return page.evaluate(
        """() => {
            const b = document.querySelector('form.ballot button[type=submit]');
            const r = b.getBoundingClientRect();
            if (r.width === 0 || r.height === 0) return false;
            if (r.top < 0 || r.left < 0 || r.bottom > innerHeight || r.right > innerWidth) return false;
            const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
            return hit === b || b.contains(hit);
        }"""
    )


def test_ballot_ten_of_fifteen_with_js(live_server, phone):
    page = phone
    errors = collect_errors(page)
    page.goto(f"{live_server.url}/c/{SLUG}")
    rule = page.locator(".ballot__rule")
    assert rule.is_visible()
    assert rule.inner_text().strip() == "最多选择10项，提交后不可更改"

    boxes = page.locator("form.ballot input[name=choice]")
    labels = page.locator("form.ballot label.choice__label")
    names = [n.strip() for n in page.locator("form.ballot .choice__name").all_inner_texts()]
    assert boxes.count() == 15 and labels.count() == 15 and len(names) == 15
    counter = page.locator("[data-counter]")
    assert counter.get_attribute("aria-live") == "polite"
    assert counter.inner_text().strip() == "已选 0/10"

    # tap 10 labels in a scrambled order; the receipt must list them in the page's order
    order = [14, 0, 7, 3, 11, 5, 9, 1, 12, 6]
    for n, i in enumerate(order, start=1):
        labels.nth(i).click()
        assert boxes.nth(i).is_checked()
        assert counter.inner_text().strip() == f"已选 {n}/10"
    assert counter.inner_text().strip() == "已选 10/10"
    screenshot(page, "ballot-1-ten-ticked")

    # the eleventh tap is undone and refused
    eleventh = next(i for i in range(15) if i not in order)
    labels.nth(eleventh).click()
    assert not boxes.nth(eleventh).is_checked()
    assert counter.inner_text().strip() == "最多只能选择10项，这一项没有选上。如要换选，请先取消一项。（已选 10/10）"
    assert sum(boxes.nth(i).is_checked() for i in range(15)) == 10
    screenshot(page, "ballot-2-eleventh-refused")

    # the submit button sits in a sticky bar: reachable without scrolling to the end
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(100)
    assert submit_in_viewport(page), "submit button not visible at the top of the page"
    page.evaluate("window.scrollTo(0, (document.documentElement.scrollHeight - innerHeight) / 2)")
    page.wait_for_timeout(100)
    assert page.evaluate("scrollY") > 0
    assert submit_in_viewport(page), "submit button not visible in the middle of the page"

    page.wait_for_timeout(CSRF_MIN_AGE_MS)
    # a sheet asks to confirm; 返回修改 closes it with the ticks as they were
    page.get_by_role("button", name="提交选票").click()
    sheet = page.get_by_role("dialog")
    assert sheet.is_visible() and page.url.endswith(f"/c/{SLUG}")
    assert sheet.locator("[data-sheet-count]").inner_text().strip() == "您选择了 10 项："
    assert [t.strip() for t in sheet.locator("li").all_inner_texts()] == [names[i] for i in sorted(order)]
    screenshot(page, "ballot-2b-confirm-sheet")
    sheet.get_by_role("button", name="返回修改").click()
    assert not sheet.is_visible() and sum(boxes.nth(i).is_checked() for i in range(15)) == 10
    page.get_by_role("button", name="提交选票").click()
    with page.expect_navigation() as nav:
        sheet.get_by_role("button", name="确认提交").click()
    assert nav.value.status == 200
    assert page.url.endswith(f"/c/{SLUG}/receipt")
    assert page.locator(".receipt__title").inner_text().strip() == "您的选票已记录"
    code = page.locator(".receipt__code").inner_text().strip()
    assert_valid_receipt_code(code)
    chosen = [c.strip() for c in page.locator("ol.receipt__choices li").all_inner_texts()]
    assert chosen == [names[i] for i in sorted(order)]
    screenshot(page, "ballot-3-receipt")

    # same device, ballot page again: the receipt, not a second form
    page.goto(f"{live_server.url}/c/{SLUG}")
    assert page.locator(".receipt__code").inner_text().strip() == code
    assert page.locator("form.ballot").count() == 0
    assert page.locator("input[name=choice]").count() == 0

    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"]  # no horizontal scrolling
    assert errors == [], errors  # no CSP violation or script error


def test_ballot_without_js_server_enforces_the_limit(live_server, phone_no_js):
    page = phone_no_js
    page.goto(f"{live_server.url}/c/{SLUG}")
    boxes = page.locator("form.ballot input[name=choice]")
    labels = page.locator("form.ballot label.choice__label")
    names = [n.strip() for n in page.locator("form.ballot .choice__name").all_inner_texts()]
    assert boxes.count() == 15

    for i in range(11):
        labels.nth(i).click()
    assert sum(boxes.nth(i).is_checked() for i in range(15)) == 11  # no script to stop the 11th

    page.wait_for_timeout(CSRF_MIN_AGE_MS)
    with page.expect_navigation() as nav:
        page.get_by_role("button", name="提交选票").click()
    assert nav.value.status == 422
    alert = page.get_by_role("alert")
    assert alert.count() == 1
    assert "notice--error" in (alert.get_attribute("class") or "")
    assert alert.inner_text().strip() == "选票未保存：最多只能选择 10 项，您选择了 11 项。"
    checked = [i for i in range(15) if boxes.nth(i).is_checked()]
    assert checked == list(range(11)), checked  # the ticks are kept
    screenshot(page, "ballot-nojs-1-error")

    labels.nth(10).click()  # untick the eleventh
    assert not boxes.nth(10).is_checked()
    # no wait now: the re-rendered form's token is new, but this device has had the ballot for seconds
    with page.expect_navigation() as nav:
        page.get_by_role("button", name="提交选票").click()
    assert nav.value.status == 200  # the server's confirm page: nothing stored yet
    assert [t.strip() for t in page.locator(".confirm__choices li").all_inner_texts()] == names[:10]
    screenshot(page, "ballot-nojs-1b-confirm")
    with page.expect_navigation() as nav:
        page.get_by_role("button", name="返回修改").click()
    assert [i for i in range(15) if boxes.nth(i).is_checked()] == list(range(10))  # ticks kept
    with page.expect_navigation():
        page.get_by_role("button", name="提交选票").click()
    with page.expect_navigation() as nav:
        page.get_by_role("button", name="确认提交").click()
    assert nav.value.status == 200
    assert page.url.endswith(f"/c/{SLUG}/receipt")
    assert page.locator(".receipt__title").inner_text().strip() == "您的选票已记录"
    assert_valid_receipt_code(page.locator(".receipt__code").inner_text().strip())
    chosen = [c.strip() for c in page.locator("ol.receipt__choices li").all_inner_texts()]
    assert chosen == names[:10]
    screenshot(page, "ballot-nojs-2-receipt")


def _active(page) -> dict:
    return page.evaluate(
        """() => { const a = document.activeElement;
                   return {tag: a.tagName, type: a.type || '', name: a.name || '', id: a.id || '',
                           text: (a.innerText || '').trim()}; }"""
    )


def _tab_until(page, wanted, limit: int) -> dict:
    for _ in range(limit):
        page.keyboard.press("Tab")
        active = _active(page)
        if wanted(active):
            return active
    raise AssertionError(f"no wanted element after {limit} Tab presses; focus on {_active(page)}")


def _is_choice(active) -> bool:
    return active["tag"] == "INPUT" and active["type"] == "checkbox" and active["name"] == "choice"


def test_ballot_keyboard_only(live_server, phone):
    page = phone
    errors = collect_errors(page)
    page.goto(f"{live_server.url}/c/{SLUG}")
    boxes = page.locator("form.ballot input[name=choice]")
    names = [n.strip() for n in page.locator("form.ballot .choice__name").all_inner_texts()]
    counter = page.locator("[data-counter]")

    # from the top of the page: skip link, header links, ... then the first checkbox
    first = _tab_until(page, _is_choice, limit=30)
    assert first["id"] == boxes.nth(0).get_attribute("id")
    ticked_ids = []
    for n in range(1, 4):
        if n > 1:
            # between two boxes: the <details> summary (and a link when open) also take focus
            active = _tab_until(page, _is_choice, limit=10)
            assert active["id"] not in ticked_ids
        page.keyboard.press("Space")
        ticked_ids.append(_active(page)["id"])
        assert counter.inner_text().strip() == f"已选 {n}/10"
    assert ticked_ids == [boxes.nth(i).get_attribute("id") for i in range(3)]
    assert [i for i in range(15) if boxes.nth(i).is_checked()] == [0, 1, 2]

    # every box reached by Tab is visible, never hidden under the sticky submit bar
    for _ in range(15):
        _tab_until(page, _is_choice, limit=10)
        covered_by = page.evaluate("""() => {
            const el = document.activeElement, r = el.getBoundingClientRect();
            const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
            return hit === el || el.closest('.choice').contains(hit) ? null : (hit ? hit.className : 'offscreen');
        }""")
        assert covered_by is None, f"focused box hidden by {covered_by}"
        if _active(page)["id"] == boxes.nth(14).get_attribute("id"):
            break

    page.wait_for_timeout(CSRF_MIN_AGE_MS)
    _tab_until(page, lambda a: a["tag"] == "BUTTON" and a["text"] == "提交选票", limit=40)
    page.keyboard.press("Enter")  # the sheet opens with focus on its first button
    assert page.get_by_role("dialog").is_visible() and _active(page)["text"] == "确认提交"
    with page.expect_navigation() as nav:
        page.keyboard.press("Enter")
    assert nav.value.status == 200
    assert page.url.endswith(f"/c/{SLUG}/receipt")
    assert page.locator(".receipt__title").inner_text().strip() == "您的选票已记录"
    assert_valid_receipt_code(page.locator(".receipt__code").inner_text().strip())
    chosen = [c.strip() for c in page.locator("ol.receipt__choices li").all_inner_texts()]
    assert chosen == names[:3]
    assert errors == [], errors


def test_going_back_from_an_entry_recounts_and_submits_at_once(live_server, phone):
    """Tick three, open 查看条目页, come back, submit within a second: the bar counts what is
    ticked, and the ballot is stored (the device has had the ballot for seconds)."""
    page = phone
    errors = collect_errors(page)
    page.goto(f"{live_server.url}/c/{SLUG}")
    labels = page.locator("form.ballot label.choice__label")
    boxes = page.locator("form.ballot input[name=choice]")
    for i in (2, 5, 8):
        labels.nth(i).click()
    page.wait_for_timeout(CSRF_MIN_AGE_MS)
    page.locator(".choice__details summary").nth(0).click()
    page.get_by_role("link", name="查看条目页").first.click()
    page.wait_for_url(re.compile(r"/brands/"))
    page.go_back()
    page.wait_for_url(re.compile(f"/c/{SLUG}$"))
    ticked = [i for i in range(15) if boxes.nth(i).is_checked()]
    assert page.locator("[data-counter]").inner_text().strip() == f"已选 {len(ticked)}/10"
    screenshot(page, "ballot-4-after-back")
    if not ticked:  # a browser that did not restore the ticks: the voter ticks again
        for i in (2, 5, 8):
            labels.nth(i).click()
    page.get_by_role("button", name="提交选票").click()
    with page.expect_navigation() as nav:
        page.get_by_role("dialog").get_by_role("button", name="确认提交").click()
    assert nav.value.status == 200 and page.url.endswith(f"/c/{SLUG}/receipt")
    assert len(page.locator("ol.receipt__choices li").all_inner_texts()) == 3
    assert errors == [], errors
