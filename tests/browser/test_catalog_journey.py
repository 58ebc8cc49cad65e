"""A reader on a phone: home → search → entry, in Debian's chromium at 390×844."""

import pytest

from browser_support import screenshot

pytestmark = pytest.mark.browser


def test_home_search_entry_on_a_phone(live_server, phone):
    errors = []
    phone.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    phone.goto(live_server.url + "/")
    assert phone.locator("h2", has_text="评选").is_visible()
    assert phone.get_by_role("link", name="去投票").first.is_visible()
    screenshot(phone, "catalog-1-home")

    phone.get_by_role("searchbox").fill("读书")
    phone.get_by_role("button", name="搜索").click()
    phone.wait_for_url("**/brands?q=*")
    assert "与“读书”相关" in phone.locator(".result-count").inner_text()
    screenshot(phone, "catalog-2-search")

    phone.get_by_role("link", name="国是书院", exact=True).click()
    phone.wait_for_url("**/brands/*")
    assert phone.locator("h1").inner_text() == "国是书院"
    assert phone.get_by_role("table").first.is_visible()
    assert phone.locator(".sources li").count() >= 1
    screenshot(phone, "catalog-3-entry")

    # nothing wider than the phone: no horizontal scrolling
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    assert errors == [], errors  # no CSP violation or script error
