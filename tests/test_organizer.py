"""The organizer's console through HTTP: create, edit, open/close, codes, turnout, tally, announce."""

import csv
import dataclasses
from datetime import timedelta
import io
import json
import re

import pytest
from starlette.testclient import TestClient

from brandvote import accounts, ballots, campaigns, db as dbmod, errors, voter_codes
from brandvote.app import create_app

from helpers import BASE_URL, NOW, PASSWORD, SLUG as DEMO_SLUG, FakeClock, login, open_campaign, staff_csrf

A, B, C = "guoshi-shuyuan", "dongtan-luntan", "suzhouhe-luntan"  # 国是书院, 东滩论坛, 苏州河论坛
SLUG = "test-vote"


@pytest.fixture
def clock_at_now():
    """NOW itself (20:00 in Beijing), not conftest's hour later: the assertions here read statuses at NOW."""
    return FakeClock(NOW)


@pytest.fixture
def app(seeded_settings, db, clock_at_now):
    accounts.create_user(db, "org", PASSWORD, "organizer", NOW)
    accounts.create_user(db, "ed", PASSWORD, "editor", NOW)
    accounts.create_user(db, "boss", PASSWORD, "admin", NOW)
    return create_app(seeded_settings, now=clock_at_now)


@pytest.fixture
def client(app):
    with TestClient(app, base_url="https://testserver") as c:
        assert login(c, "org").status_code == 303
        c.token = staff_csrf(c)
        yield c


def form(client, **over):
    data = {"csrf_token": client.token, "slug": SLUG, "title": "测试评选", "intro": "简介",
            "candidate": [A, B, C], f"position_{A}": "1", f"position_{B}": "2", f"position_{C}": "3",
            "min_choices": "1", "max_choices": "2", "winners": "2", "electorate": "open",
            "opens_at": "2026-11-24T19:00", "closes_at": "2026-11-25T20:00", "announce_at": "2026-11-26T20:00",
            "ip_limit": "", "action": "save"}
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def create(client, **over):
    r = client.post("/admin/campaigns/new", data=form(client, **over), follow_redirects=False)
    assert r.status_code == 303, r.text[:2000]
    assert r.headers["location"] == f"/admin/campaigns/{over.get('slug', SLUG)}?done=created"
    return r


def signed_in_again(client):
    """After the fake clock jumps past the staff session's idle timeout."""
    assert login(client, "org").status_code == 303
    client.token = staff_csrf(client)


def camp(db, slug=SLUG):
    return campaigns.campaign_by_slug(db, slug)


def audit_rows(db, action):
    return [dict(r) for r in db.query("select * from audit_log where action = ? order by id", [action])]


def visible_text(html):
    """What a reader sees: tags (and their attributes: tokens, hashes) removed."""
    body = html.split('<main id="main"', 1)[1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def cast(db, campaign_id, n, choices, now, start=0, **kw):
    for i in range(start, start + n):
        with dbmod.immediate(db):
            ballots.cast_ballot(db, campaign_id, f"device:{i}", choices, now, **kw)


# ------------------------------------------------------------ create and edit

def test_create_through_the_form_then_open_it_and_it_is_public(client, db):
    create(client, opens_at="", closes_at="2026-11-25T20:00", announce_at="")
    c = camp(db)
    assert campaigns.status(c, NOW) == "draft"
    assert [b["slug"] for b in campaigns.candidates_of(db, c["id"])] == [A, B, C]
    assert client.get(f"/c/{SLUG}").status_code == 404
    listing = client.get("/admin/campaigns")
    assert "测试评选" in listing.text and "筹备中" in listing.text

    ask = client.post(f"/admin/campaigns/{SLUG}/state", data={"csrf_token": client.token, "action": "open"})
    assert ask.status_code == 200 and "确认开启投票" in ask.text
    assert campaigns.status(camp(db), NOW) == "draft", "no change without confirm=yes"
    r = client.post(f"/admin/campaigns/{SLUG}/state",
                    data={"csrf_token": client.token, "action": "open", "confirm": "yes"}, follow_redirects=False)
    assert r.status_code == 303
    assert campaigns.status(camp(db), NOW) == "open"
    public = client.get(f"/c/{SLUG}")
    assert public.status_code == 200 and "测试评选" in public.text and "国是书院" in public.text
    opened = audit_rows(db, "campaign.open")
    assert opened[-1]["actor"] == "org" and opened[-1]["target"] == SLUG
    assert audit_rows(db, "campaign.create")[-1]["actor"] == "org"


def test_positions_order_the_candidates_and_extra_fields_are_ignored(client, db):
    create(client, **{f"position_{A}": "3", f"position_{B}": "1", f"position_{C}": "",
                      "frozen_at": "2020-01-01T00:00:00+00:00", "manual_state": "announced", "id": "99",
                      "created_at": "2000-01-01"})
    c = camp(db)
    assert [b["slug"] for b in campaigns.candidates_of(db, c["id"])] == [B, A, C]
    assert c["frozen_at"] is None and c["manual_state"] is None and c["id"] != 99
    assert c["created_at"] != "2000-01-01"
    assert c["opens_at"] == "2026-11-24T11:00:00+00:00", "datetime-local input is Beijing time"


def test_validation_errors_are_shown_beside_the_fields_and_input_is_kept(client, db):
    r = client.post("/admin/campaigns/new", data=form(client, slug="Bad Slug", max_choices="5",
                                                      closes_at="2026-11-24T18:00", title="保留的名称"))
    assert r.status_code == 422
    assert 'id="err-slug"' in r.text and 'id="err-max_choices"' in r.text and 'id="err-closes_at"' in r.text
    assert 'value="保留的名称"' in r.text and 'value="Bad Slug"' in r.text
    assert 'value="2026-11-24T18:00"' in r.text and 'value="5"' in r.text
    for slug in (A, B, C):
        assert re.search(rf'value="{slug}" id="c-{slug}" checked', r.text)
    assert db.execute("select count(*) from campaigns").fetchone()[0] == 1
    taken = client.post("/admin/campaigns/new", data=form(client, slug="shanghai-2022-highlights"))
    assert taken.status_code == 422 and "已被其他评选使用" in taken.text
    few = client.post("/admin/campaigns/new", data=form(client, candidate=[A], max_choices="1", winners="1"))
    assert few.status_code == 422 and "至少选择 2 个" in few.text
    junk = client.post("/admin/campaigns/new", data=form(client, candidate=[A, "no-such-brand"]))
    assert junk.status_code == 422 and "no-such-brand" in junk.text


def test_catalog_search_filters_the_entries_and_keeps_the_ticks(client):
    page = client.get("/admin/campaigns/new", params={"q": "国是书院"})
    assert page.status_code == 200
    assert f'value="{A}"' in page.text and f'value="{B}"' not in page.text
    r = client.post("/admin/campaigns/new", data=form(client, candidate=[B], q="国是书院", action="search",
                                                      title="未保存"))
    assert r.status_code == 200 and 'value="未保存"' in r.text
    assert re.search(rf'value="{B}" id="c-{B}" checked', r.text), "a ticked entry survives the search"
    assert re.search(rf'value="{A}" id="c-{A}">', r.text)
    for q in ("\x00", "书院\x00'\"", '"', "a\x00bcd"):  # a NUL once ended the FTS5 string early: a 500
        assert client.get("/admin/campaigns/new", params={"q": q}).status_code == 200
        r = client.post("/admin/campaigns/new", data=form(client, q=q, action="search"))
        assert r.status_code == 200, (q, r.status_code)


def test_edit_shows_beijing_times_and_rules_freeze_at_the_first_ballot(client, db, clock_at_now):
    create(client)
    page = client.get(f"/admin/campaigns/{SLUG}/edit")
    assert page.status_code == 200 and 'value="2026-11-24T19:00"' in page.text
    c = camp(db)
    cast(db, c["id"], 1, [A], NOW)
    frozen = client.post(f"/admin/campaigns/{SLUG}/edit", data=form(client, max_choices="3"))
    assert frozen.status_code == 409 and errors.RulesFrozen.message in frozen.text
    assert 'value="3"' in frozen.text
    dropped = client.post(f"/admin/campaigns/{SLUG}/edit", data=form(client, candidate=[A, B], winners="1"))
    assert dropped.status_code == 409
    assert camp(db)["max_choices"] == 2 and len(campaigns.candidates_of(db, c["id"])) == 3

    moved = client.post(f"/admin/campaigns/{SLUG}/edit", data=form(client, closes_at="2026-11-27T20:00",
                                                                   announce_at="2026-11-28T20:00"),
                        follow_redirects=False)
    assert moved.status_code == 303
    assert camp(db)["closes_at"] == "2026-11-27T12:00:00+00:00"
    logged = audit_rows(db, "campaign.times")
    assert logged[-1]["actor"] == "org"
    assert json.loads(logged[-1]["detail"])["closes_at"] == ["2026-11-25T12:00:00+00:00", "2026-11-27T12:00:00+00:00"]
    assert "2026年11月27日 20:00" in client.get(f"/admin/campaigns/{SLUG}").text
    with TestClient(client.app, base_url="https://testserver") as admin:  # the audit log page is admin-only
        login(admin, "boss")
        page = admin.get("/admin/audit").text
        assert "campaign.times" in page and "修改评选时间" in page
        assert "截止时间：2026年11月25日 20:00 → 2026年11月27日 20:00" in page  # Beijing time, not JSON


def test_an_unchanged_save_logs_nothing(client, db):
    create(client)
    r = client.post(f"/admin/campaigns/{SLUG}/edit", data=form(client), follow_redirects=False)
    assert r.status_code == 303
    assert audit_rows(db, "campaign.times") == []


# ------------------------------------------------------------ open and close

def test_close_needs_confirmation_and_is_audited(client, db):
    create(client)
    assert campaigns.status(camp(db), NOW) == "open"
    page = client.get(f"/admin/campaigns/{SLUG}")
    assert "结束投票" in page.text
    ask = client.post(f"/admin/campaigns/{SLUG}/state", data={"csrf_token": client.token, "action": "close"})
    assert ask.status_code == 200 and "确认结束投票" in ask.text and 'name="confirm" value="yes"' in ask.text
    assert campaigns.status(camp(db), NOW) == "open"
    r = client.post(f"/admin/campaigns/{SLUG}/state",
                    data={"csrf_token": client.token, "action": "close", "confirm": "yes"}, follow_redirects=False)
    assert r.status_code == 303
    assert campaigns.status(camp(db), NOW) == "closed"
    assert audit_rows(db, "campaign.closed")[-1]["actor"] == "org"
    again = client.post(f"/admin/campaigns/{SLUG}/state",
                        data={"csrf_token": client.token, "action": "open", "confirm": "yes"})
    assert again.status_code == 409 and "不能重新开启" in again.text
    bad = client.post(f"/admin/campaigns/{SLUG}/state", data={"csrf_token": client.token, "action": "explode"})
    assert bad.status_code == 422


def test_an_editor_cannot_run_campaigns(app, db):
    with TestClient(app, base_url="https://testserver") as c:
        login(c, "ed")
        assert c.get("/admin/campaigns").status_code == 403
        r = c.post("/admin/campaigns/shanghai-2022-highlights/state",
                   data={"csrf_token": staff_csrf(c), "action": "open", "confirm": "yes"})
        assert r.status_code == 403
    assert camp(db, "shanghai-2022-highlights")["manual_state"] is None


# ------------------------------------------------------------ voter codes

def test_codes_download_as_csv_and_only_hashes_are_kept(client, db):
    create(client, electorate="codes")
    r = client.post(f"/admin/campaigns/{SLUG}/codes", data={"csrf_token": client.token, "count": "7",
                                                            "format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["cache-control"] == "no-store"
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["code", "url"] and len(rows) == 1 + 7
    codes = [row[0] for row in rows[1:]]
    assert all(row[1] == f"https://vote.example.org/v/{row[0]}" for row in rows[1:])
    stored = {r[0] for r in db.execute("select code_hash from voter_codes where campaign_id = ?", [camp(db)["id"]])}
    assert stored == {voter_codes.hash_code(code) for code in codes}
    dump = "\n".join(db.conn.iterdump())
    assert not any(code in dump for code in codes), "the codes themselves are never stored"
    logged = audit_rows(db, "codes.create")
    assert logged[-1]["actor"] == "org" and json.loads(logged[-1]["detail"])["count"] == 7

    slips = client.post(f"/admin/campaigns/{SLUG}/codes", data={"csrf_token": client.token, "count": "3",
                                                                "format": "slips"})
    assert slips.status_code == 200 and slips.headers["content-type"].startswith("text/html")
    assert slips.text.count('class="slip"') == 3
    assert db.execute("select count(*) from voter_codes").fetchone()[0] == 10

    for bad in ("0", "100001", "abc", ""):
        r = client.post(f"/admin/campaigns/{SLUG}/codes", data={"csrf_token": client.token, "count": bad,
                                                                "format": "csv"})
        assert r.status_code == 422 and "数量" in r.text
    assert db.execute("select count(*) from voter_codes").fetchone()[0] == 10


def test_codes_are_refused_for_an_open_electorate(client, db):
    create(client)
    r = client.post(f"/admin/campaigns/{SLUG}/codes", data={"csrf_token": client.token, "count": "5",
                                                            "format": "csv"})
    assert r.status_code == 409 and "公开投票" in r.text
    assert db.execute("select count(*) from voter_codes").fetchone()[0] == 0
    assert audit_rows(db, "codes.create") == []


# ------------------------------------------------------------ turnout, never counts

def test_turnout_shows_totals_and_channels_but_never_a_candidates_count(client, db):
    create(client)
    c = camp(db)
    cast(db, c["id"], 20, [A], NOW, channel="paper")
    cast(db, c["id"], 17, [A], NOW, start=20)
    cast(db, c["id"], 10, [B, C], NOW, start=40, channel="wechat")
    cast(db, c["id"], 3, [B, C], NOW, start=60)  # A: 37 votes, B and C: 13 each; 50 ballots
    page = client.get(f"/admin/campaigns/{SLUG}")
    assert page.status_code == 200
    text = visible_text(page.text)
    assert re.search(r"已投 50 张选票", text)
    assert re.search(r"paper 20 ", text) and re.search(r"wechat 10 ", text) and re.search(r"（直接访问） 20 ", text)
    assert re.search(r"2026年11月24日 20:00 起 50 ", text)
    assert "37" not in text and "13" not in text, "no candidate's count while voting runs"
    assert 'id="tally-table"' not in page.text and "计票结果</caption>" not in page.text
    assert "37" not in visible_text(client.get("/admin/campaigns").text)
    # after closing, still nothing during the grace period
    client.post(f"/admin/campaigns/{SLUG}/state", data={"csrf_token": client.token, "action": "close",
                                                       "confirm": "yes"})
    closed = client.get(f"/admin/campaigns/{SLUG}")
    assert "37" not in visible_text(closed.text) and 'id="tally-table"' not in closed.text
    assert "宽限期" in closed.text


def test_a_burst_from_one_address_shows_as_an_anomaly(client, db):
    create(client)
    c = camp(db)
    burst = "f00dfeed" + "9" * 24
    cast(db, c["id"], 25, [A], NOW, ip_key=burst, ip_limit=1000)
    for i in range(5):
        cast(db, c["id"], 1, [B], NOW, start=100 + i, ip_key=f"other{i}", ip_limit=1000)
    page = client.get(f"/admin/campaigns/{SLUG}")
    assert 'id="anomalies"' in page.text
    text = visible_text(page.text)
    assert re.search(r"2026年11月24日 20:00 起 f00dfeed… 25 83%", text), text
    assert burst not in page.text, "the stored key is shown cut short"
    assert "other0" not in text
    assert ballots.anomalies(db, c["id"], 26) == []
    quiet = client.get(f"/admin/campaigns/{SLUG}", params={"threshold": "30"})
    assert 'id="anomalies"' not in quiet.text and 'id="no-anomalies"' in quiet.text


# ------------------------------------------------------------ tally, ties, announcement

def test_tally_after_closing_then_tie_decided_then_announced(client, db, clock_at_now):
    create(client)
    c = camp(db)
    cast(db, c["id"], 5, [A], NOW)
    cast(db, c["id"], 3, [B, C], NOW, start=10)  # A 5, B 3, C 3: B and C tie for the last seat
    client.post(f"/admin/campaigns/{SLUG}/state", data={"csrf_token": client.token, "action": "close",
                                                       "confirm": "yes"})
    early = client.post(f"/admin/campaigns/{SLUG}/announce", data={"csrf_token": client.token, "confirm": "yes"})
    assert early.status_code == 409 and "宽限期" in early.text
    assert 'id="tally-table"' not in early.text

    clock_at_now.advance(minutes=11)
    page = client.get(f"/admin/campaigns/{SLUG}")
    assert 'id="tally-table"' in page.text and "并列待定" in page.text and 'id="tie-form"' in page.text
    text = visible_text(page.text)
    assert "共 8 张有效选票" in text

    ask = client.post(f"/admin/campaigns/{SLUG}/announce", data={"csrf_token": client.token})
    assert ask.status_code == 200 and "确认揭晓结果" in ask.text
    assert campaigns.status(camp(db), clock_at_now.now) == "closed"
    undecided = client.post(f"/admin/campaigns/{SLUG}/announce", data={"csrf_token": client.token, "confirm": "yes"})
    assert undecided.status_code == 409 and "并列" in undecided.text
    assert campaigns.status(camp(db), clock_at_now.now) == "closed"

    both = client.post(f"/admin/campaigns/{SLUG}/tie", data={"csrf_token": client.token, "in": [B, C]})
    assert both.status_code == 422 and "选出 1 项" in both.text
    r = client.post(f"/admin/campaigns/{SLUG}/tie", data={"csrf_token": client.token, "in": [C]},
                    follow_redirects=False)
    assert r.status_code == 303
    decided = audit_rows(db, "tally.decide_tie")
    assert decided[-1]["actor"] == "org" and json.loads(decided[-1]["detail"])["in"] == [C]
    assert client.get(f"/c/{SLUG}/results").text.count('<li class="result') == 0, "not public yet"
    emptied = client.post(f"/admin/campaigns/{SLUG}/tie", data={"csrf_token": client.token})
    assert emptied.status_code == 422, "an empty choice may not undo the decision and leave a seat empty"
    assert len(audit_rows(db, "tally.decide_tie")) == 1

    r = client.post(f"/admin/campaigns/{SLUG}/announce", data={"csrf_token": client.token, "confirm": "yes"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert campaigns.status(camp(db), clock_at_now.now) == "announced"
    assert audit_rows(db, "campaign.announced")[-1]["actor"] == "org"
    public = client.get(f"/c/{SLUG}/results")
    assert public.status_code == 200 and "共 <strong>8</strong> 张有效选票" in public.text
    assert public.text.count("result--winner") == 2
    shown = client.get(f"/admin/campaigns/{SLUG}")
    assert "结果已公开" in shown.text and 'id="tie-form"' not in shown.text
    locked = client.post(f"/admin/campaigns/{SLUG}/edit", data=form(client, title="改名"))
    assert locked.status_code == 409 and "已揭晓" in locked.text


def test_announce_without_confirm_changes_nothing(client, db, clock_at_now):
    create(client)
    clock_at_now.advance(days=1, minutes=11)  # past closing and its grace period
    signed_in_again(client)
    client.get(f"/admin/campaigns/{SLUG}")  # the first read after voting keeps the tally (tally.settle)
    before = db.execute("select * from campaigns where slug = ?", [SLUG]).fetchall()
    audits = db.execute("select count(*) from audit_log").fetchone()[0]
    r = client.post(f"/admin/campaigns/{SLUG}/announce", data={"csrf_token": client.token, "confirm": "no"})
    assert r.status_code == 200 and "确认揭晓结果" in r.text
    assert db.execute("select * from campaigns where slug = ?", [SLUG]).fetchall() == before
    assert db.execute("select count(*) from audit_log").fetchone()[0] == audits
    assert client.get(f"/c/{SLUG}/results").status_code == 200
    assert "result--winner" not in client.get(f"/c/{SLUG}/results").text


def test_window_cannot_move_once_voting_is_over(client, db, clock_at_now):
    create(client)
    clock_at_now.advance(days=2)
    signed_in_again(client)
    r = client.post(f"/admin/campaigns/{SLUG}/edit", data=form(client, closes_at="2026-11-30T08:00",
                                                               announce_at="2026-12-01T08:00"))
    assert r.status_code == 409 and "不能再修改" in r.text
    assert camp(db)["closes_at"] == "2026-11-25T12:00:00+00:00"
    later = client.post(f"/admin/campaigns/{SLUG}/edit", data=form(client, announce_at="2026-12-02T08:00"),
                        follow_redirects=False)
    assert later.status_code == 303


def test_posters_per_channel_link_to_the_public_codes(client, db):
    create(client)
    page = client.get(f"/admin/campaigns/{SLUG}", params={"ch": "jiefang-daily"})
    assert f'href="/c/{SLUG}/poster?ch=jiefang-daily"' in page.text
    assert f'/c/{SLUG}/qr.svg?ch=jiefang-daily' in page.text and f'/c/{SLUG}/qr.png?ch=jiefang-daily' in page.text
    assert client.get(f"/c/{SLUG}/qr.svg?ch=jiefang-daily").status_code == 200
    bad = client.get(f"/admin/campaigns/{SLUG}", params={"ch": "<script>"})
    assert bad.status_code == 200 and "渠道名只能" in bad.text and "<script>" not in bad.text.split("</header>")[-1]


def test_unknown_campaign_is_404(client):
    assert client.get("/admin/campaigns/no-such/edit").status_code == 404
    assert client.post("/admin/campaigns/no-such/state", data={"csrf_token": client.token}).status_code == 404


def test_the_console_warns_while_qr_codes_point_at_this_machine(seeded_settings, db, clock_at_now):
    """The default base URL (127.0.0.1) makes QR codes no phone can open: the console says so and how to fix
    it; with a real address the warning is gone."""
    accounts.create_user(db, "org", PASSWORD, "organizer", NOW)
    open_campaign(db, DEMO_SLUG, NOW - timedelta(days=1), NOW + timedelta(days=1), NOW + timedelta(days=2))
    pages = {}
    for base in ("http://127.0.0.1:8000", "http://localhost:8000", "http://192.168.1.20:8000", BASE_URL):
        settings = dataclasses.replace(seeded_settings, base_url=base)
        with TestClient(create_app(settings, now=clock_at_now), base_url="https://testserver") as c:
            login(c, "org")
            pages[base] = c.get(f"/admin/campaigns/{DEMO_SLUG}").text
    warning = "二维码和海报现在指向本机地址"
    assert [warning in pages[b] for b in pages] == [True, True, False, False]
    assert "BRANDVOTE_BASE_URL" in pages["http://127.0.0.1:8000"]
