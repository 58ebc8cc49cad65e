"""An editor on a phone signs in, corrects an entry, and sees the public page change."""

import subprocess
import sys

import pytest

from browser_support import screenshot
from helpers import PASSWORD

pytestmark = pytest.mark.browser
SLUG = "guoshi-shuyuan"


def test_editor_fixes_an_entry_and_sees_it_public(live_server, phone):
    r = subprocess.run([sys.executable, "-m", "brandvote", "user", "add", "editor1", "--role", "editor",
                        "--db", str(live_server.db_path)], input=PASSWORD + "\n", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    errors = []
    phone.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    phone.goto(f"{live_server.url}/admin/brands/{SLUG}/edit")
    assert "/login" in phone.url
    phone.get_by_label("用户名").fill("editor1")
    phone.get_by_label("密码").fill(PASSWORD)
    screenshot(phone, "editor-1-login")
    phone.get_by_role("button", name="登录").click()
    phone.wait_for_url(f"**/admin/brands/{SLUG}/edit")

    summary = phone.get_by_label("摘要（20–400字，用本站自己的话写）")
    corrected = summary.input_value().replace("读书频道", "线上读书频道（已核对）", 1)
    assert corrected != summary.input_value()
    summary.fill(corrected)
    phone.get_by_role("button", name="预览").click()
    assert phone.get_by_role("heading", name="预览（尚未保存）").is_visible()
    screenshot(phone, "editor-2-preview")
    phone.get_by_role("button", name="保存").click()
    phone.wait_for_url("**/edit?saved=1")
    assert "已保存" in phone.locator(".notice").inner_text()
    screenshot(phone, "editor-3-saved")

    phone.goto(f"{live_server.url}/brands/{SLUG}")
    assert "线上读书频道（已核对）" in phone.locator(".entry__summary").inner_text()
    phone.goto(f"{live_server.url}/admin/brands/{SLUG}/history")
    assert phone.locator("article.revision ins").first.inner_text() == "线上"
    screenshot(phone, "editor-4-history")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    assert errors == [], errors
