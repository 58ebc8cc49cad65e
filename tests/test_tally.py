"""Counting and ranking as plain functions; the ledger; ties; the gate's clock."""

from datetime import timedelta

import pytest

from brandvote import ballots, campaigns, db as dbmod, errors, tally

from helpers import ANNOUNCE, CLOSES, OPENS, SLUG, open_campaign

AFTER = CLOSES + campaigns.GRACE  # voting is over


def cands(n):
    return [{"slug": f"c{i:02d}", "name": f"项目{i}"} for i in range(n)]


def test_competition_ranking_1_2_2_4():
    rows = tally.rank(cands(4), {"c00": 9, "c01": 5, "c02": 5, "c03": 1}, 10, winners=2)
    assert [(r.slug, r.rank) for r in rows] == [("c00", 1), ("c01", 2), ("c02", 2), ("c03", 4)]
    assert [r.share for r in rows] == [0.9, 0.5, 0.5, 0.1]


def test_a_tie_inside_the_winners_is_not_a_problem():
    rows = tally.rank(cands(4), {"c00": 9, "c01": 9, "c02": 5, "c03": 1}, 10, winners=2)
    assert [r.winner for r in rows] == [True, True, False, False]
    assert [r.tie for r in rows] == [True, True, False, False]


def test_a_tie_across_the_cut_off_is_neither_in_nor_out():
    counts = {f"c{i:02d}": 100 - i for i in range(9)} | {"c09": 50, "c10": 50, "c11": 3}
    rows = tally.rank(cands(12), counts, 120, winners=10)
    by = {r.slug: r for r in rows}
    assert all(by[f"c{i:02d}"].winner is True for i in range(9))
    assert by["c09"].winner is None and by["c10"].winner is None
    assert by["c09"].rank == by["c10"].rank == 10 and by["c09"].tie and by["c10"].tie
    assert by["c11"].winner is False and by["c11"].rank == 12
    decided = tally.rank(cands(12), counts, 120, winners=10, decided=["c10"])
    assert [r.slug for r in decided if r.winner] == [f"c{i:02d}" for i in range(9)] + ["c10"]


def test_zero_votes_and_no_ballots():
    rows = tally.rank(cands(3), {}, 0, winners=2)
    assert all(r.votes == 0 and r.share == 0 and r.rank == 1 for r in rows)
    assert all(r.winner is None for r in rows)  # three-way tie across two seats


def test_rows_keep_the_campaign_order_within_a_tie():
    rows = tally.rank(cands(3), {"c02": 4, "c00": 4, "c01": 4}, 5, winners=3)
    assert [r.slug for r in rows] == ["c00", "c01", "c02"]


# ------------------------------------------------------------ ledger

def test_ledger_parse_round_trip_and_refusals():
    rows = [("a" * 64, "x;y"), ("b" * 64, "y")]
    text = tally.ledger_csv(rows)
    assert text.splitlines()[0] == "receipt_sha256,choices"
    assert tally.parse_ledger(text) == (2, {"x": 1, "y": 2})
    for bad in ["nope\n", text + "a" * 64 + ",z\n", text + "short,z\n", text + "c" * 64 + ",z;z\n"]:
        with pytest.raises(errors.BadLedger):
            tally.parse_ledger(bad)


# ------------------------------------------------------------ on a database

@pytest.fixture
def camp(campaign):
    return campaign


def cast(db, camp, voter, choices, now=OPENS + timedelta(hours=1)):
    with dbmod.immediate(db):
        return ballots.cast_ballot(db, camp["id"], voter, choices, now)


def test_tally_is_refused_while_voting_runs_and_during_grace(db, camp):
    for at in (OPENS + timedelta(days=1), CLOSES, CLOSES + campaigns.GRACE - timedelta(seconds=1)):
        with pytest.raises(errors.StillVoting):
            tally.results(db, camp, at)
    assert tally.results(db, camp, AFTER)["ballots"] == 0


def test_tally_counts_from_choices_and_is_stored_once(db, camp, candidates):
    cast(db, camp, "device:1", candidates[:3])
    cast(db, camp, "device:2", candidates[1:3])
    res = tally.results(db, camp, AFTER)
    votes = {r.slug: r.votes for r in res["rows"]}
    assert votes[candidates[0]] == 1 and votes[candidates[1]] == 2 and votes[candidates[2]] == 2
    assert res["ballots"] == 2
    stored = db.execute("select computed_at, ledger_sha256 from tallies").fetchall()
    assert len(stored) == 1
    again = tally.results(db, camp, AFTER + timedelta(days=1))
    assert again["computed_at"] == res["computed_at"]
    ledger = tally.ledger_csv(tally.ledger_rows(db, camp["id"]))
    assert tally.sha256(ledger) == res["ledger_sha256"]


def test_the_gate_opens_at_announce_at_and_not_a_second_before(db, camp):
    counted = {**camp, "tally_ready": 1}  # tallied, no tie at the cut-off
    assert not tally.is_announced(counted, ANNOUNCE - timedelta(seconds=1))
    assert tally.is_announced(counted, ANNOUNCE)


def test_the_gate_waits_for_the_grace_period_even_if_announce_at_is_earlier(db):
    camp = {**open_campaign(db, SLUG, OPENS, CLOSES, CLOSES + timedelta(minutes=1)), "tally_ready": 1}
    assert not tally.is_announced(camp, CLOSES + timedelta(minutes=2))
    assert tally.is_announced(camp, AFTER)


def test_settle_keeps_the_tally_once_voting_is_over_and_marks_a_clear_cut_off(db, candidates):
    camp = open_campaign(db, SLUG, OPENS, CLOSES, ANNOUNCE, winners=2)
    cast(db, camp, "device:1", candidates[:2])
    assert tally.settle(db, camp, CLOSES)["tally_ready"] is None  # the grace period still runs
    settled = tally.settle(db, camp, AFTER)
    assert settled["tally_ready"] == 1
    assert campaigns.status(settled, ANNOUNCE - timedelta(seconds=1)) == "closed"
    assert tally.is_announced(settled, ANNOUNCE)


def test_an_undecided_tie_holds_the_announcement_by_time_until_the_organizer_decides(db, candidates):
    camp = open_campaign(db, SLUG, OPENS, CLOSES, ANNOUNCE)  # 10 seats
    cast(db, camp, "device:1", candidates[:10])
    cast(db, camp, "device:2", candidates[:9] + [candidates[10]])  # 9th and 10th tie for the last seat
    settled = tally.settle(db, camp, ANNOUNCE + timedelta(days=1))
    assert settled["tally_ready"] == 0
    assert not tally.is_announced(settled, ANNOUNCE + timedelta(days=1))
    tally.decide_tie(db, settled, [candidates[10]], ANNOUNCE + timedelta(days=1), "organizer")
    decided = campaigns.campaign_by_slug(db, SLUG)
    assert tally.is_announced(decided, ANNOUNCE + timedelta(days=1))
    winners = [r.slug for r in tally.results(db, decided, ANNOUNCE + timedelta(days=1))["rows"] if r.winner]
    assert candidates[10] in winners and candidates[9] not in winners and len(winners) == 10


def test_manual_announce_needs_voting_over_and_a_decided_tie(db, camp, candidates):
    # candidates 0..8 get 3 votes, 9 and 10 get 1 each (a tie across the 10th seat), the rest 0
    cast(db, camp, "device:1", candidates[:10])
    cast(db, camp, "device:2", candidates[:9] + [candidates[10]])
    cast(db, camp, "device:3", candidates[:9])
    with pytest.raises(errors.StillVoting):
        tally.announce(db, SLUG, CLOSES + timedelta(minutes=1))
    with pytest.raises(errors.TieUndecided) as err:
        tally.announce(db, SLUG, AFTER)
    assert candidates[9] in err.value.message and candidates[10] in err.value.message
    with pytest.raises(errors.BadTieChoice):
        tally.decide_tie(db, camp, [candidates[9], candidates[10]], AFTER, "organizer")  # one seat only
    with pytest.raises(errors.BadTieChoice):
        tally.decide_tie(db, camp, [candidates[11]], AFTER, "organizer")  # not tied
    tally.decide_tie(db, camp, [candidates[10]], AFTER, "organizer")
    audit = db.execute("select actor, detail from audit_log where action = 'tally.decide_tie'").fetchone()
    assert audit[0] == "organizer" and candidates[10] in audit[1]
    announced = tally.announce(db, SLUG, AFTER)
    assert tally.is_announced(announced, AFTER)
    winners_list = db.execute("select id from lists where slug = ?", [f"{SLUG}-results"]).fetchone()[0]
    items = [r[0] for r in db.execute(
        "select b.slug from list_items li join brands b on b.id = li.brand_id where li.list_id = ?"
        " order by li.position", [winners_list])]
    assert items == candidates[:9] + [candidates[10]]
    with pytest.raises(errors.AlreadyAnnounced):
        tally.decide_tie(db, announced, [candidates[9]], AFTER, "organizer")


def test_recount_matches_and_detects_a_changed_ledger(db, camp, candidates):
    for i in range(5):
        cast(db, camp, f"device:{i}", candidates[i:i + 3])
    res = tally.results(db, camp, AFTER)
    ledger = tally.ledger_csv(tally.ledger_rows(db, camp["id"]))
    published = tally.results_json(res)
    assert tally.recount(ledger, published)["matches"] is True
    lines = ledger.splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + "," + candidates[14]
    report = tally.recount("\n".join(lines) + "\n", published)
    assert report["matches"] is False and report["differences"]


def test_lookup_receipt_only_after_the_announcement(db, camp, candidates):
    ballot = cast(db, camp, "device:1", candidates[:2])
    camp = {**camp, "tally_ready": 1}
    with pytest.raises(errors.NotAnnounced):
        tally.lookup_receipt(db, camp, ballot["receipt"], ANNOUNCE - timedelta(seconds=1))
    found = tally.lookup_receipt(db, camp, ballot["receipt"].lower(), ANNOUNCE)
    assert found["hash"] == ballots.receipt_hash(ballot["receipt"])
    assert len(found["choices"]) == 2
    assert tally.lookup_receipt(db, camp, "0000-0000-0000", ANNOUNCE) is None


def test_a_tie_decision_can_be_revised_but_never_left_short(db, camp, candidates):
    cast(db, camp, "device:1", candidates[:10])
    cast(db, camp, "device:2", candidates[:9] + [candidates[10]])
    cast(db, camp, "device:3", candidates[:9])
    tally.decide_tie(db, camp, [candidates[10]], AFTER, "organizer")
    revised = tally.decide_tie(db, camp, [candidates[9]], AFTER, "organizer")
    assert [r.slug for r in revised["rows"] if r.winner] == candidates[:10]
    with pytest.raises(errors.BadTieChoice):
        tally.decide_tie(db, camp, [], AFTER, "organizer")
    assert sum(1 for r in tally.results(db, camp, AFTER)["rows"] if r.winner) == 10


def test_the_tally_refuses_when_the_ledger_and_the_choices_disagree(db, camp, candidates):
    """A ballot whose ledger line says one thing and whose choices say another (a bug, or a
    hand-made row) stops the count instead of publishing either."""
    cast(db, camp, "device:1", candidates[:2])
    with dbmod.immediate(db):
        cur = db.execute("insert into ballots (campaign_id, voter_key, receipt, receipt_hash, choice_set, cast_at)"
                         " values (?, 'device:forged', 'XXXX-XXXX-XXXX', ?, ?, ?)",
                         [camp["id"], "f" * 64, candidates[5], "2026-11-24T13:00:00+00:00"])
        db.execute("insert into choices (ballot_id, campaign_id, brand_id) select ?, ?, id from brands where slug = ?",
                   [cur.lastrowid, camp["id"], candidates[6]])
    with pytest.raises(errors.LedgerMismatch) as err:
        tally.results(db, camp, AFTER)
    assert "不一致" in err.value.message
    assert db.execute("select count(*) from tallies").fetchone()[0] == 0
