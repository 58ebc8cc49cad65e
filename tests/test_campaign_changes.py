"""Every change to a campaign, from every door (console form, JSON import, `brandvote load`),
goes through one rule path (campaigns.check_change): campaigns are the organizer's, rules freeze,
times only move forward, and no announcement skips the grace period or an undecided tie.

Issue 16 items 1 and 2: on 0349279 an editor's import ended a running vote and published its
results, then reopened it; the organizer's form did the same with times in the past.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from brandvote import accounts, campaigns, clock as clockmod, db as dbmod, errors, seed
from brandvote.app import create_app

from helpers import ANNOUNCE, CLOSES, NOW, OPENS, PASSWORD, SLUG, FakeClock, login, staff_csrf

RUNNING = NOW + timedelta(days=1)  # the demo campaign is open: OPENS = NOW, CLOSES = NOW + 10 days


# ---------------------------------------------------------------- the rule, as a plain function

def _row(**times) -> dict:
    base = {"slug": SLUG, "title": "t", "intro": "", "min_choices": 1, "max_choices": 10, "winners": 10,
            "electorate": "open", "ip_limit": None, "frozen_at": None, "manual_state": None, "tally_ready": None,
            "opens_at": clockmod.to_db(OPENS), "closes_at": clockmod.to_db(CLOSES),
            "announce_at": clockmod.to_db(ANNOUNCE)}
    base.update({k: clockmod.to_db(v) if v else None for k, v in times.items()})
    return base


def _new(old: dict, **times) -> dict:
    keys = ("slug", "title", "intro", "min_choices", "max_choices", "winners", "electorate", "ip_limit",
            *campaigns.TIME_FIELDS)
    new = {k: old[k] for k in keys}
    new.update({k: clockmod.to_db(v) if v else None for k, v in times.items()})
    return new


@pytest.mark.parametrize("now, change, message", [
    (RUNNING, {"closes_at": RUNNING - timedelta(minutes=1), "announce_at": RUNNING - timedelta(seconds=30)},
     "截止时间不能早于现在"),
    (RUNNING, {"announce_at": RUNNING - timedelta(hours=1)}, "揭晓时间不能早于现在"),
    (RUNNING, {"announce_at": CLOSES + timedelta(minutes=5)}, "截止时间 10 分钟之后"),
    (RUNNING, {"opens_at": RUNNING + timedelta(days=1)}, "开始时间不能再修改"),
    (CLOSES + timedelta(hours=1), {"closes_at": CLOSES + timedelta(days=5)}, "开始和截止时间不能再修改"),
    (ANNOUNCE + timedelta(hours=1), {"announce_at": ANNOUNCE + timedelta(days=9)}, "结果已揭晓"),
])
def test_a_change_the_state_forbids_is_refused(now, change, message):
    old = _row()
    if now >= ANNOUNCE:
        old["tally_ready"] = 1
    with pytest.raises(errors.CampaignLocked) as refused:
        campaigns.check_change(old, _new(old, **change), [1, 2], [1, 2], now)
    assert message in refused.value.message and refused.value.status == 409


@pytest.mark.parametrize("now, change", [
    (RUNNING, {"closes_at": CLOSES + timedelta(days=3), "announce_at": ANNOUNCE + timedelta(days=3)}),  # extended
    (RUNNING, {"closes_at": RUNNING + timedelta(hours=1)}),  # shortened, still ahead
    (CLOSES + timedelta(hours=1), {"announce_at": ANNOUNCE + timedelta(days=1)}),  # announcement put off
    (NOW - timedelta(days=1), {"opens_at": NOW - timedelta(hours=1)}),  # not yet open: opens now
])
def test_times_may_move_forward(now, change):
    old = _row()
    campaigns.check_change(old, _new(old, **change), [1], [1], now)


def test_a_new_campaign_cannot_be_born_closed_or_announced():
    new = _new(_row(), opens_at=NOW - timedelta(days=3), closes_at=NOW - timedelta(days=2),
               announce_at=NOW - timedelta(days=1))
    with pytest.raises(errors.CampaignLocked):
        campaigns.check_change(None, new, [], [1, 2], NOW)


def test_frozen_rules_stay_frozen():
    old = {**_row(), "frozen_at": clockmod.to_db(OPENS)}
    with pytest.raises(errors.RulesFrozen):
        campaigns.check_change(old, {**_new(old), "max_choices": 5}, [1, 2], [1, 2], RUNNING)
    with pytest.raises(errors.RulesFrozen):
        campaigns.check_change(old, _new(old), [1, 2], [2, 1], RUNNING)


# ---------------------------------------------------------------- through HTTP

@pytest.fixture
def clock_running():
    """A day into the vote, not conftest's hour: the cases here are written against RUNNING."""
    return FakeClock(RUNNING)


@pytest.fixture
def app(seeded_settings, db, clock_running, campaign):
    for name, role in (("ed", "editor"), ("org", "organizer"), ("boss", "admin")):
        accounts.create_user(db, name, PASSWORD, role, NOW)
    return create_app(seeded_settings, now=clock_running)


def signed_in(app, name):
    c = TestClient(app, base_url="https://testserver")
    c.__enter__()
    assert login(c, name).status_code == 303
    c.token = staff_csrf(c)
    return c


@pytest.fixture
def editor(app):
    c = signed_in(app, "ed")
    yield c
    c.__exit__(None, None, None)


@pytest.fixture
def admin(app):
    c = signed_in(app, "boss")
    yield c
    c.__exit__(None, None, None)


def import_doc(c, campaigns: list[dict]):
    """Upload a file holding only campaigns, then apply it if the preview allows."""
    doc = {"brands": [], "lists": [], "campaigns": campaigns}
    r = c.post("/admin/import", data={"csrf_token": c.token},
               files={"file": ("brands.json", json.dumps(doc).encode(), "application/json")})
    found = re.search(r'action="(/admin/import/[^"]+/apply)"', r.text)
    if r.status_code != 200 or not found:
        return r
    return c.post(found.group(1), data={"csrf_token": c.token})


def exported_campaign(db, **change) -> dict:
    camp = next(c for c in campaigns.export_campaigns(db) if c["slug"] == SLUG)
    return {**camp, **change}


def state_of(db):
    row = db.execute("select opens_at, closes_at, announce_at, manual_state, tally_ready from campaigns"
                     " where slug = ?", [SLUG]).fetchone()
    audits = db.execute("select count(*) from audit_log where action like 'campaign.%'").fetchone()[0]
    return row, audits


def cast_one(client, clock, choices):
    page = client.get(f"/c/{SLUG}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    clock.advance(seconds=3)  # the form token's minimum age
    return client.post(f"/c/{SLUG}/ballot", data={"choice": choices, "csrf_token": token}, follow_redirects=False)


def test_an_editor_cannot_end_a_running_vote_and_publish_it_through_the_import(editor, db, clock_running, candidates):
    before = state_of(db)
    past = exported_campaign(db, opens_at=clockmod.to_db(RUNNING - timedelta(days=3)),
                             closes_at=clockmod.to_db(RUNNING - timedelta(days=2)),
                             announce_at=clockmod.to_db(RUNNING - timedelta(days=1)))
    r = import_doc(editor, [past])
    assert r.status_code == 403 and "评选由组织方管理" in r.text
    assert state_of(db) == before
    assert editor.get(f"/api/campaigns/{SLUG}").json()["status"] == "open"
    assert editor.get(f"/api/campaigns/{SLUG}/results").status_code == 403
    assert editor.get(f"/c/{SLUG}/ledger.csv").status_code == 403


def test_an_editor_may_read_back_an_export_that_leaves_campaigns_as_they_are(editor, db):
    r = import_doc(editor, [exported_campaign(db)])
    assert r.status_code == 200 and "已导入" in r.text


def test_even_an_admin_cannot_close_or_announce_in_the_past_by_import(admin, db):
    before = state_of(db)
    past = exported_campaign(db, closes_at=clockmod.to_db(RUNNING - timedelta(hours=2)),
                             announce_at=clockmod.to_db(RUNNING - timedelta(hours=1)))
    r = import_doc(admin, [past])
    assert r.status_code == 409 and f"$.campaigns[0] ({SLUG})" in r.text and "截止时间不能早于现在" in r.text
    assert state_of(db) == before


def test_an_announced_campaign_cannot_be_reopened_and_its_ledger_stays_the_tally(admin, db, clock_running, candidates):
    db.execute("update campaigns set winners = 2 where slug = ?", [SLUG])  # a clear cut-off
    db.conn.commit()
    assert cast_one(admin, clock_running, candidates[:2]).status_code == 303
    late_voter = TestClient(admin.app, base_url="https://testserver")
    late_voter.__enter__()
    late_page = late_voter.get(f"/c/{SLUG}")  # a page opened while voting ran, submitted after
    clock_running.now = ANNOUNCE + timedelta(minutes=1)
    admin.__exit__(None, None, None)
    admin = signed_in(admin.app, "boss")  # the staff session idled out while the clock moved
    assert admin.get(f"/c/{SLUG}/results").status_code == 200
    results = admin.get(f"/api/campaigns/{SLUG}/results").json()
    ledger = admin.get(f"/c/{SLUG}/ledger.csv").text
    reopened = exported_campaign(db, closes_at=clockmod.to_db(clock_running.now + timedelta(days=5)),
                                 announce_at=clockmod.to_db(clock_running.now + timedelta(days=6)))
    r = import_doc(admin, [reopened])
    assert r.status_code == 409 and "结果已揭晓" in r.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', late_page.text).group(1)
    late = late_voter.post(f"/c/{SLUG}/ballot", data={"choice": candidates[2:4], "csrf_token": token})
    assert late.status_code == 403  # refused, whatever the reason it names first
    assert db.execute("select count(*) from ballots").fetchone()[0] == 1
    late_voter.__exit__(None, None, None)
    assert admin.get(f"/api/campaigns/{SLUG}/results").json() == results
    assert admin.get(f"/c/{SLUG}/ledger.csv").text == ledger
    admin.__exit__(None, None, None)


def organizer_form(c, db, **times) -> dict:
    camp = campaigns.campaign_by_slug(db, SLUG)
    chosen = [b["slug"] for b in campaigns.candidates_of(db, camp["id"])]

    def local(value):
        return clockmod.from_db(value).astimezone(clockmod.LOCAL).strftime("%Y-%m-%dT%H:%M") if value else ""

    data = {"csrf_token": c.token, "title": camp["title"], "intro": camp["intro"], "candidate": chosen,
            "min_choices": "1", "max_choices": "10", "winners": "10", "electorate": "open", "ip_limit": "",
            "action": "save", **{k: local(camp[k]) for k in campaigns.TIME_FIELDS}}
    data.update({k: v.astimezone(clockmod.LOCAL).strftime("%Y-%m-%dT%H:%M") for k, v in times.items()})
    return data


def test_the_organizers_form_cannot_publish_by_moving_times_into_the_past(app, db, clock_running):
    org = signed_in(app, "org")
    before = state_of(db)
    r = org.post(f"/admin/campaigns/{SLUG}/edit", data=organizer_form(
        org, db, closes_at=RUNNING - timedelta(hours=2), announce_at=RUNNING - timedelta(hours=1)))
    assert r.status_code == 409 and "截止时间不能早于现在" in r.text
    inside_grace = org.post(f"/admin/campaigns/{SLUG}/edit", data=organizer_form(
        org, db, closes_at=RUNNING + timedelta(hours=1), announce_at=RUNNING + timedelta(hours=1, minutes=5)))
    assert inside_grace.status_code == 409 and "10 分钟之后" in inside_grace.text
    assert state_of(db) == before
    assert org.get(f"/api/campaigns/{SLUG}").json()["status"] == "open"
    org.__exit__(None, None, None)


def test_an_announcement_by_time_waits_for_a_decided_tie(app, db, clock_running, candidates):
    """At announce_at with a tie across the last seat, nothing is public until the organizer decides."""
    voter = signed_in(app, "ed")  # any browser; the ballot does not care who is signed in
    assert cast_one(voter, clock_running, candidates[:10]).status_code == 303
    voter.cookies.delete("bv_device")
    assert cast_one(voter, clock_running, candidates[:9] + [candidates[10]]).status_code == 303
    clock_running.now = ANNOUNCE + timedelta(hours=1)
    assert voter.get(f"/c/{SLUG}/results.csv").status_code == 403
    assert voter.get(f"/api/campaigns/{SLUG}").json()["status"] == "closed"
    assert "待定" not in voter.get(f"/c/{SLUG}/results").text
    org = signed_in(app, "org")
    r = org.post(f"/admin/campaigns/{SLUG}/tie", data={"csrf_token": org.token, "in": [candidates[9]]},
                 follow_redirects=False)
    assert r.status_code == 303, re.findall(r"<p class=\"notice[^<]*", r.text)
    published = voter.get(f"/api/campaigns/{SLUG}/results").json()
    assert [c["slug"] for c in published["candidates"] if c["winner"]] == candidates[:10]
    assert all(c["winner"] is not None for c in published["candidates"])
    org.__exit__(None, None, None)
    voter.__exit__(None, None, None)


# ---------------------------------------------------------------- the CLI

def test_load_from_the_command_line_takes_the_same_path(tmp_path, bundled):
    db_path = tmp_path / "a.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRANDVOTE_")}
    run = lambda *a: subprocess.run([sys.executable, "-m", "brandvote", *a, "--db", str(db_path)],  # noqa: E731
                                    capture_output=True, text=True, env=env, timeout=120)
    assert run("load", str(seed.bundled_catalog_path())).returncode == 0
    doc = json.loads(json.dumps(bundled))
    doc["campaigns"][0].update(opens_at="2020-01-01T00:00:00+00:00", closes_at="2020-01-02T00:00:00+00:00",
                               announce_at="2020-01-03T00:00:00+00:00")
    path = tmp_path / "past.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    r = run("load", str(path))
    assert r.returncode != 0 and "截止时间不能早于现在" in r.stderr
    conn = dbmod.connect(db_path)
    assert conn.execute("select closes_at, announce_at from campaigns").fetchone() == (None, None)
    conn.close()
