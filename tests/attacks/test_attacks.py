"""Attacks from reliability-anchors.md §3 not already proved elsewhere (see README.md here)."""

import base64
import re
import sqlite3
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from brandvote import audit, ballots, campaigns, db as dbmod
from brandvote.app import create_app
from brandvote.security import DEVICE_COOKIE, Tokens

from helpers import CLOSES, NOW, OPENS, SLUG, FakeClock, LiveServer, csrf_from, live_ballots


# conftest's client, with the demo campaign open for every test here.
pytestmark = pytest.mark.usefixtures("campaign")


def stored_ballots(db):
    return db.execute("select count(*) from ballots").fetchone()[0]


# A2 ------------------------------------------------------------------------------------------

def test_a2_spoofed_forwarded_for_does_not_escape_the_ip_limit_on_a_real_server(tmp_path):
    """Against uvicorn itself (TestClient has no proxy layer): no trusted proxy configured."""
    server = LiveServer(tmp_path, workers=1, env_extra={"BRANDVOTE_IP_LIMIT": "3"})
    try:
        statuses, stored = live_ballots(server, [{"X-Forwarded-For": f"203.0.113.{i}", "X-Real-IP": f"203.0.113.{i}"}
                                                 for i in range(4)])
    finally:
        server.stop()
    assert statuses == [303, 303, 303, 429]
    assert stored == 3


# A3 / A6 -------------------------------------------------------------------------------------

def test_a3_a_script_posting_without_a_page_view_stores_nothing(client, db, candidates):
    r = client.post(f"/c/{SLUG}/ballot", data={"choice": candidates[:3]})
    assert r.status_code == 403
    assert stored_ballots(db) == 0


def test_a3_another_devices_token_is_refused(client, clock, db, candidates, seeded_settings):
    """A bot farm sharing one harvested token across fresh cookies gets nothing."""
    token = csrf_from(client.get(f"/c/{SLUG}").text)
    clock.advance(seconds=5)
    tokens = Tokens(seeded_settings.secret)
    for _ in range(3):
        _, cookie = tokens.new_device()
        client.cookies.clear()
        client.cookies.set(DEVICE_COOKIE, cookie)
        assert client.post(f"/c/{SLUG}/ballot", data={"csrf_token": token, "choice": candidates[:2]},
                           follow_redirects=False).status_code == 403
    assert stored_ballots(db) == 0


def test_a6_bit_flips_and_purpose_confusion_are_4xx_never_500(client, clock, db, candidates, seeded_settings):
    token = csrf_from(client.get(f"/c/{SLUG}").text)
    device_cookie = client.cookies.get(DEVICE_COOKIE)
    clock.advance(seconds=5)
    tokens = Tokens(seeded_settings.secret)
    payload, sig = token.rsplit(".", 1)
    flipped = []
    for i in range(0, len(payload), 7):
        ch = "A" if payload[i] != "A" else "B"
        flipped.append(payload[:i] + ch + payload[i + 1:] + "." + sig)
    confused = [device_cookie,  # a device token offered as a CSRF token
                tokens.code_cookie(1, "h"), base64.urlsafe_b64encode(b'{"v":"x","c":1,"t":0}').decode()]
    for bad in flipped + confused + ["", "." * 600, "\x00", "😀" * 10]:
        r = client.post(f"/c/{SLUG}/ballot", data={"csrf_token": bad, "choice": candidates[:2]}, follow_redirects=False)
        assert (r.status_code, "表单校验失败" in r.text) == (403, True), (bad[:40], r.status_code)
    # a tampered device cookie, and a CSRF token offered as a device cookie
    for cookie in (device_cookie[:-3] + "xyz", token):
        client.cookies.clear()
        client.cookies.set(DEVICE_COOKIE, cookie)
        r = client.post(f"/c/{SLUG}/ballot", data={"csrf_token": token, "choice": candidates[:2]}, follow_redirects=False)
        assert r.status_code == 403
    assert stored_ballots(db) == 0


# A7 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("choices", [["-1"], ["1e9"], ["٣"], ["１"], [" 3 "], ["1_0"], ["0"], ["%00"],
                                     ["shanghai-2022-highlights"], ["../../etc/passwd"]])
def test_a7_number_tricks_and_junk_never_reach_the_database(client, clock, db, choices):
    token = csrf_from(client.get(f"/c/{SLUG}").text)
    clock.advance(seconds=5)
    r = client.post(f"/c/{SLUG}/ballot", data={"csrf_token": token, "choice": choices}, follow_redirects=False)
    assert r.status_code == 422
    assert stored_ballots(db) == 0


def test_a7_a_json_body_is_not_a_ballot(client, clock, db, candidates):
    token = csrf_from(client.get(f"/c/{SLUG}").text)
    clock.advance(seconds=5)
    for body in ('{"choices": {}}', '{"choice": "1"}', f'{{"csrf_token": "{token}", "choice": {candidates[:2]!r}}}'):
        r = client.post(f"/c/{SLUG}/ballot", content=body.encode(), headers={"content-type": "application/json"},
                        follow_redirects=False)
        # not a form the browser sends: no fields, so no CSRF token, and the ballot page says so
        assert (r.status_code, "表单校验失败" in r.text) == (403, True), body
    assert stored_ballots(db) == 0


# A10 -----------------------------------------------------------------------------------------

def test_a10_receipts_and_ballot_order_reveal_no_turnout(client, clock, db, candidates, seeded_settings):
    """Consecutive receipts are unrelated, and the ballot page's order is the organizer's after 100 ballots."""
    order_before = re.findall(r'name="choice" value="([^"]+)"', client.get(f"/c/{SLUG}").text)
    tokens = Tokens(seeded_settings.secret)
    receipts = []
    for i in range(100):
        device, cookie = tokens.new_device()
        key = tokens.voter_key("device", device)
        client.cookies.clear()
        client.cookies.set(DEVICE_COOKIE, cookie)
        picks = [candidates[-1]] + ([candidates[-2]] if i % 2 else [])  # the last ones become the most popular
        r = client.post(f"/c/{SLUG}/ballot", data={"csrf_token": tokens.csrf(key, 1, clock.now - timedelta(minutes=1)),
                                                    "choice": picks}, follow_redirects=False)
        assert r.status_code == 303
        receipts.append(db.execute("select receipt from ballots where voter_key = ?", [key]).fetchone()[0])
    client.cookies.clear()
    order_after = re.findall(r'name="choice" value="([^"]+)"', client.get(f"/c/{SLUG}").text)
    assert order_after == order_before == candidates
    assert len(set(receipts)) == 100
    assert receipts != sorted(receipts) and receipts != sorted(receipts, reverse=True)
    # no two consecutive receipts share a prefix longer than chance would give
    prefix = lambda a, b: next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), len(a))
    assert max(prefix(a, b) for a, b in zip(receipts, receipts[1:])) <= 3
    # ballot ids are not exposed anywhere public: the receipt page shows only the receipt
    page = client.get(f"/c/{SLUG}/receipt")
    assert "ballot_id" not in page.text


def test_a10_the_organizer_cannot_announce_by_a_forged_request(seeded_settings, campaign, db):
    """Announce is POST + CSRF + organizer role: a GET or a tokenless POST changes nothing."""
    from brandvote import accounts

    from helpers import PASSWORD, login

    accounts.create_user(db, "org", PASSWORD, "organizer", NOW)
    clock = FakeClock(CLOSES + timedelta(hours=1))
    with TestClient(create_app(seeded_settings, now=clock), base_url="https://testserver") as c:
        login(c, "org")
        for method, path in [("get", f"/admin/campaigns/{SLUG}/announce"), ("post", f"/admin/campaigns/{SLUG}/announce")]:
            getattr(c, method)(path, follow_redirects=False)
        c.post(f"/admin/campaigns/{SLUG}/announce", data={"confirm": "yes"},
               headers={"origin": "https://evil.example"}, follow_redirects=False)
    assert campaigns.campaign_by_slug(db, SLUG)["manual_state"] is None


# A13 -----------------------------------------------------------------------------------------

def test_a13_an_insider_cannot_rewrite_ballots_through_sql(db, campaign, candidates):
    with dbmod.immediate(db):
        ballots.cast_ballot(db, campaign["id"], "device:x", candidates[:2], OPENS)
        audit.record(db, OPENS, "organizer", "campaign.open", SLUG)
    for sql in ("update choices set brand_id = (select id from brands limit 1)", "delete from choices",
                "update ballots set campaign_id = 0", "delete from ballots", "update audit_log set actor = 'x'"):
        with pytest.raises(sqlite3.IntegrityError):
            db.execute(sql)
