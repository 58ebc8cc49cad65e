"""After the announcement, on a phone: the results page, the chart, a receipt lookup."""

import random
from datetime import timedelta

import pytest

from brandvote import ballots, campaigns, clock, db as dbmod, tally
from browser_support import screenshot
from helpers import LiveServer

pytestmark = pytest.mark.browser
SLUG = "shanghai-2022-highlights"


@pytest.fixture(scope="module")
def announced_server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("results"))
    conn = dbmod.connect(server.db_path)
    camp = campaigns.campaign_by_slug(conn, SLUG)
    cands = [b["slug"] for b in campaigns.candidates_of(conn, camp["id"])]
    now = clock.utcnow()
    rng = random.Random(5)
    receipts = []
    for i in range(240):
        picks = rng.sample(cands, rng.randint(1, 10))
        with dbmod.immediate(conn):
            receipts.append(ballots.cast_ballot(conn, camp["id"], f"device:{i}", picks, now)["receipt"])
    conn.execute("update campaigns set closes_at = ?, announce_at = ?, manual_state = null where id = ?",
                 [clock.to_db(now - timedelta(hours=1)), clock.to_db(now - timedelta(minutes=1)), camp["id"]])
    conn.conn.commit()
    # a tie at the last seat holds the announcement: the organizer decides it, as the console does
    camp = tally.settle(conn, campaigns.campaign_by_slug(conn, SLUG), now)
    if camp["tally_ready"] == 0:
        res = tally.results(conn, camp, now)
        seats = camp["winners"] - sum(1 for r in res["rows"] if r.winner is True)
        tally.decide_tie(conn, camp, res["undecided_tie"][:seats], now, "organizer")
    conn.close()
    server.receipts = receipts
    yield server
    server.stop()


def test_results_and_receipt_lookup_on_a_phone(announced_server, phone):
    errors = []
    phone.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    phone.goto(f"{announced_server.url}/c/{SLUG}/results")
    assert "共 240 张有效选票" in phone.locator(".lead").inner_text()
    rows = phone.locator("li.result")
    assert rows.count() == 15
    assert phone.locator("li.result svg.result__bar").count() == 15
    winners = phone.locator("li.result--winner").count()
    assert winners == 10
    votes = [int(t.split()[0]) for t in phone.locator(".result__votes").all_inner_texts()]
    assert votes == sorted(votes, reverse=True)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(phone, "results-1-page")

    phone.get_by_label("用回执码查询您的选票").fill(announced_server.receipts[3].lower())
    phone.get_by_role("button", name="查询").click()
    phone.wait_for_url("**/receipt?code=*")
    assert "这张选票已计入结果" in phone.locator("h2").first.inner_text()
    screenshot(phone, "results-2-lookup")
    assert errors == [], errors
