"""What leaves the server is safe to open: CSV cells never start a formula, JSON is JSON,
and a draft campaign leaves no trace on public pages (issue 16, items 8, 9 and 10)."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from starlette.testclient import TestClient

from brandvote import accounts, ballots, campaigns, spreadsheet
from brandvote.app import create_app

from helpers import ANNOUNCE, NOW, PASSWORD, SLUG, FakeClock, login, open_campaign, staff_csrf, OPENS, CLOSES


def strict_json(text: str):
    """JSON as a browser reads it: NaN and Infinity are errors."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


# ---------------------------------------------------------------- 8: CSV formula injection

@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\",\"点击\")", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_a_cell_that_would_start_a_formula_is_text(text):
    assert spreadsheet.cell(text) == "'" + text


@pytest.mark.parametrize("value", ["国是书院", "12.5%", "shanghai-2022", 7, -3, 0.25, ""])
def test_other_cells_are_left_as_they_are(value):
    assert spreadsheet.cell(value) == value


def test_names_from_editors_reach_the_results_csv_as_text(seeded_settings, db, candidates):
    db.execute("update campaigns set winners = 2 where slug = ?", [SLUG])  # a clear cut-off
    db.execute("update brands set name = ?, organizer = ? where slug = ?",
               ['=HYPERLINK("http://evil.example/","点击领奖")', "@SUM(1+1)*cmd|' /C calc'!A0", candidates[0]])
    db.conn.commit()
    from brandvote import db as dbmod
    with dbmod.immediate(db):
        ballots.cast_ballot(db, campaigns.campaign_by_slug(db, SLUG)["id"], "device:1", candidates[:2], OPENS)
    with TestClient(create_app(seeded_settings, now=FakeClock(ANNOUNCE)), base_url="https://testserver") as c:
        r = c.get(f"/c/{SLUG}/results.csv")
        ledger = c.get(f"/c/{SLUG}/ledger.csv").text
    assert r.status_code == 200
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    cells = [value for row in rows for value in row]
    assert not [v for v in cells if v.startswith(spreadsheet.FORMULA_STARTS)]
    assert "'=HYPERLINK(\"http://evil.example/\",\"点击领奖\")" in cells
    assert "'@SUM(1+1)*cmd|' /C calc'!A0" in cells
    ledger_cells = [v for row in csv.reader(io.StringIO(ledger)) for v in row]
    assert not [v for v in ledger_cells if v.startswith(spreadsheet.FORMULA_STARTS)]


def test_the_voter_codes_csv_goes_through_the_same_writer():
    out = io.StringIO()
    spreadsheet.write_codes(out, ["=1+1", "ABCD-EFGH"], lambda code: f"https://vote.example.org/v/{code}")
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows == [["code", "url"], ["'=1+1", "https://vote.example.org/v/=1+1"], ["ABCD-EFGH", "https://vote.example.org/v/ABCD-EFGH"]]


# ---------------------------------------------------------------- 9: no Infinity, no NaN

@pytest.fixture
def editor(seeded_settings, db):
    accounts.create_user(db, "ed", PASSWORD, "editor", NOW)
    with TestClient(create_app(seeded_settings, now=FakeClock(NOW)), base_url="https://testserver") as c:
        assert login(c, "ed").status_code == 303
        c.token = staff_csrf(c)
        yield c


def upload(c, text: str):
    return c.post("/admin/import", data={"csrf_token": c.token},
                  files={"file": ("brands.json", text.encode(), "application/json")})


def test_a_400_digit_figure_typed_in_the_form_is_refused(editor, db, bundled):
    slug = bundled["brands"][0]["slug"]
    page = editor.get(f"/admin/brands/{slug}/edit")
    fields = dict(re.findall(r'<input[^>]*name="([a-z_]+)"[^>]*value="([^"]*)"', page.text))
    textareas = dict(re.findall(r'<textarea[^>]*name="([a-z_]+)"[^>]*>([^<]*)</textarea>', page.text))
    form = {**fields, **textareas, "csrf_token": editor.token, "action": "save",
            "figures": "参与人次 | " + "9" * 400 + ".5 | 人", "kind": bundled["brands"][0]["kind"]}
    before = db.execute("select figures from brands where slug = ?", [slug]).fetchone()
    r = editor.post(f"/admin/brands/{slug}/edit", data=form, follow_redirects=False)
    assert r.status_code == 422 and "整数部分最多 15 位" in r.text
    assert db.execute("select figures from brands where slug = ?", [slug]).fetchone() == before


@pytest.mark.parametrize("value, message", [("1e400", "$.brands[0].figures[0].value"),
                                            ("-1e400", "$.brands[0].figures[0].value"),
                                            ("NaN", "不是数字"), ("Infinity", "不是数字")])
def test_a_file_with_a_number_json_cannot_hold_is_refused(editor, db, bundled, value, message):
    doc = json.loads(json.dumps(bundled))
    doc["brands"][0]["figures"] = [{"label": "参与人次", "value": 1, "unit": "人"}]
    text = json.dumps(doc, ensure_ascii=False).replace('"value": 1,', f'"value": {value},', 1)
    before = db.execute("select group_concat(figures) from brands").fetchone()
    r = upload(editor, text)
    assert r.status_code == 422 and message in r.text
    assert db.execute("select group_concat(figures) from brands").fetchone() == before


def test_the_api_never_emits_a_non_finite_number(client, db, bundled):
    """A figure stored as Infinity before the bounds (an old database) is left out, not sent."""
    slug = bundled["brands"][0]["slug"]
    db.execute("update brands set figures = ? where slug = ?",
               ['[{"label": "参与人次", "unit": "人", "value": Infinity}, {"label": "场次", "unit": "场", "value": 3}]',
                slug])
    db.conn.commit()
    one = client.get(f"/api/brands/{slug}")
    assert one.status_code == 200
    assert strict_json(one.text)["figures"] == [{"label": "场次", "unit": "场", "value": 3}]
    strict_json(client.get("/api/brands").text)
    assert "Infinity" not in client.get(f"/brands/{slug}").text


# ---------------------------------------------------------------- 10: drafts leave no trace

def test_a_draft_campaign_is_not_named_on_its_candidates_entry_pages(client, db):
    camp = campaigns.campaign_by_slug(db, SLUG)
    assert campaigns.status(camp, NOW) == "draft"
    entry = campaigns.candidates_of(db, camp["id"])[0]["slug"]
    page = client.get(f"/brands/{entry}")
    assert page.status_code == 200
    assert camp["title"] not in page.text and f"/c/{SLUG}" not in page.text
    assert client.get(f"/c/{SLUG}").status_code == 404
    open_campaign(db, SLUG, OPENS, CLOSES, ANNOUNCE)  # scheduled: now it is public
    shown = client.get(f"/brands/{entry}")
    assert camp["title"] in shown.text and f"/c/{SLUG}" in shown.text
