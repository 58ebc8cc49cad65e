"""An organizer on a phone (390×844): sign in, create a campaign from the catalog, open it,
watch turnout (no counts), close it, review the tally, decide the tie, announce, and see
the public results page. Ballots are cast straight into the database (the public ballot
has its own journey); the 10-minute grace period is waited out by moving closes_at back.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from brandvote import ballots, campaigns, clock, db as dbmod
from browser_support import PHONE, screenshot
from helpers import LiveServer

pytestmark = pytest.mark.browser

SLUG = "journey-2026"
PASSWORD = "organizer pass phrase"
A, B, C = "dongtan-luntan", "suzhouhe-luntan", "huiyan-zhiku-luntan"  # 东滩论坛, 苏州河论坛, “汇言”智库论坛


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("organizer"))
    subprocess.run([sys.executable, "-m", "brandvote", "user", "add", "org", "--role", "organizer",
                    "--db", str(server.db_path)], input=PASSWORD + "\n", text=True, check=True,
                   capture_output=True)
    yield server
    server.stop()


@pytest.fixture
def page(phone):
    return phone


def local_input(dt) -> str:
    return dt.astimezone(clock.LOCAL).strftime("%Y-%m-%dT%H:%M")


def fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_organizer_runs_a_campaign_from_creation_to_announcement(server, page):
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))

    page.goto(f"{server.url}/login")
    page.get_by_label("用户名").fill("org")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url("**/admin")
    page.locator("nav.staff-nav").get_by_role("link", name="评选").click()
    page.wait_for_url("**/admin/campaigns")
    assert "十三届上海市政协履职创新亮点评选" in page.locator("main").inner_text()
    assert fits(page)
    screenshot(page, "organizer-1-list")

    # create: search the catalog, tick three entries, order them, set the rules and times
    page.get_by_role("link", name="新建评选").click()
    page.wait_for_url("**/admin/campaigns/new")
    page.get_by_label("网址标识").fill(SLUG)
    page.get_by_label("评选名称").fill("论坛品牌评选（测试）")
    page.get_by_label("简介（显示在投票页顶部）").fill("从三个论坛品牌中选出两个。")
    page.get_by_label("在目录中搜索").fill("论坛")
    page.get_by_role("button", name="搜索").click()
    page.wait_for_load_state()
    assert page.get_by_label("在目录中搜索").input_value() == "论坛"
    assert page.get_by_label("评选名称").input_value() == "论坛品牌评选（测试）", "a search keeps the input"
    for slug, pos in ((A, "1"), (B, "2"), (C, "3")):
        page.locator(f"#c-{slug}").check()
        page.locator(f'input[name="position_{slug}"]').fill(pos)
    page.get_by_label("每张选票最多选几项").fill("2")
    page.get_by_label("入选数（得票前几项入选）").fill("2")
    now = clock.utcnow()
    page.get_by_label("截止投票").fill(local_input(now + timedelta(hours=2)))
    page.get_by_label("揭晓结果").fill(local_input(now + timedelta(days=1)))
    assert fits(page)
    screenshot(page, "organizer-2-form")
    page.get_by_role("button", name="创建评选").click()
    page.wait_for_url(f"**/admin/campaigns/{SLUG}?done=created")
    assert "评选已创建" in page.locator("#console-message").inner_text()
    assert "筹备中" in page.locator(".status-tag").inner_text()

    # open it: a confirmation step first
    page.get_by_role("button", name="开启投票").click()
    page.wait_for_load_state()
    assert "确定现在开启投票吗" in page.locator(".confirm").inner_text()
    page.get_by_role("button", name="确认开启投票").click()
    page.wait_for_url("**?done=open")
    assert "投票进行中" in page.locator(".status-tag").inner_text()

    conn = dbmod.connect(server.db_path)
    camp = campaigns.campaign_by_slug(conn, SLUG)
    assert [b["slug"] for b in campaigns.candidates_of(conn, camp["id"])] == [A, B, C]
    cast_at = clock.utcnow()
    for i, (choices, channel) in enumerate([([A], "paper")] * 4 + [([B, C], None)] * 2):
        with dbmod.immediate(conn):
            ballots.cast_ballot(conn, camp["id"], f"device:{i}", choices, cast_at, channel=channel)

    page.goto(f"{server.url}/admin/campaigns/{SLUG}?ch=jiefang-daily")
    assert page.locator("#turnout-total").inner_text() == "6"
    assert "paper" in page.locator("#turnout-channels").inner_text()
    assert page.locator("#tally-table").count() == 0, "no counts while voting runs"
    assert page.locator("img.console-qr").evaluate("img => img.complete && img.naturalWidth > 0")
    assert page.locator('a[href$="/poster?ch=jiefang-daily"]').count() == 1
    assert fits(page)
    screenshot(page, "organizer-3-turnout")

    # close it, again with confirmation; the tally waits for the grace period
    page.get_by_role("button", name="结束投票").click()
    page.wait_for_load_state()
    page.get_by_role("button", name="确认结束投票").click()
    page.wait_for_url("**?done=close")
    assert "投票已结束" in page.locator(".status-tag").inner_text()
    assert "宽限期" in page.locator("#tally").inner_text()
    assert page.locator("#tally-table").count() == 0
    screenshot(page, "organizer-4-closed")

    camp = campaigns.campaign_by_slug(conn, SLUG)
    back = timedelta(minutes=11)  # stands in for waiting out the 10-minute grace period
    conn.execute("update campaigns set opens_at = ?, closes_at = ? where id = ?",
                 [clock.to_db(clock.from_db(camp["opens_at"]) - back - timedelta(hours=1)),
                  clock.to_db(clock.from_db(camp["closes_at"]) - back), camp["id"]])
    conn.conn.commit()
    conn.close()

    page.reload()
    rows = page.locator("#tally-table tbody tr")
    assert rows.count() == 3
    assert "东滩论坛" in rows.nth(0).inner_text() and "入选" in rows.nth(0).inner_text()
    assert page.locator("#tally-table").inner_text().count("并列待定") == 2
    assert fits(page)
    screenshot(page, "organizer-5-tally")

    page.locator(f"#tie-{C}").check()
    page.get_by_role("button", name="确定入选项目").click()
    page.wait_for_url("**?done=tie*")
    assert "并列待定" not in page.locator("#tally-table").inner_text()

    page.get_by_role("button", name="揭晓结果…").click()
    page.wait_for_load_state()
    assert "确定现在揭晓结果吗" in page.locator(".confirm").inner_text()
    page.get_by_role("button", name="确认揭晓结果").click()
    page.wait_for_url("**?done=announce")
    assert "结果已揭晓" in page.locator(".status-tag").inner_text()
    screenshot(page, "organizer-6-announced")

    page.get_by_role("link", name="查看公开结果页").click()
    page.wait_for_url(f"**/c/{SLUG}/results")
    assert "共 6 张有效选票" in page.locator(".lead").inner_text()
    assert page.locator("li.result").count() == 3
    assert page.locator("li.result--winner").count() == 2
    assert "智库论坛" in page.locator("li.result--winner").nth(1).inner_text(), "the tie went to C"
    assert fits(page)
    screenshot(page, "organizer-7-results")
    assert errors == [], errors
