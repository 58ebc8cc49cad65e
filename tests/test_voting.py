"""Voting rules as plain functions: windows, choices, one ballot per voter, codes."""

import hashlib
import hmac
import sqlite3
from datetime import timedelta

import pytest
from itsdangerous import URLSafeSerializer

from brandvote import ballots, campaigns, db as dbmod, errors, voter_codes
from brandvote.addresses import client_ip
from brandvote.security import Tokens, TokenExpired, TokenInvalid

from helpers import ANNOUNCE, CLOSES, NOW, OPENS, SLUG, open_campaign


@pytest.fixture
def camp(campaign):
    return campaign


def cast(db, camp, voter, choices, now=OPENS + timedelta(hours=1), **kw):
    with dbmod.immediate(db):
        return ballots.cast_ballot(db, camp["id"], voter, choices, now, **kw)


def stored_ballots(db):
    return db.execute("select count(*) from ballots").fetchone()[0]


# ------------------------------------------------------------ status and windows

@pytest.mark.parametrize("offset, manual, expected", [
    (timedelta(seconds=-1), None, "scheduled"),
    (timedelta(0), None, "open"),
    (timedelta(days=10) - timedelta(seconds=1), None, "open"),
    (timedelta(days=10), None, "closed"),
    (timedelta(days=17) - timedelta(seconds=1), None, "closed"),
    (timedelta(days=17), None, "announced"),
    (timedelta(days=1), "closed", "closed"),
    (timedelta(seconds=-5), "open", "open"),
    (timedelta(days=11), "open", "closed"),
    (timedelta(days=11), "announced", "announced"),
])
def test_status_follows_the_clock_and_the_organizer(camp, offset, manual, expected):
    assert campaigns.status({**camp, "manual_state": manual, "tally_ready": 1}, OPENS + offset) == expected


@pytest.mark.parametrize("tally_ready", [None, 0])
def test_an_announcement_by_time_waits_for_the_tally_and_the_tie(camp, tally_ready):
    """Not counted yet (NULL) or held by an undecided tie (0): still closed, however late."""
    later = OPENS + timedelta(days=40)
    assert campaigns.status({**camp, "tally_ready": tally_ready}, later) == "closed"
    assert campaigns.status({**camp, "tally_ready": 1}, later) == "announced"


def test_a_campaign_without_times_is_a_draft(db):
    camp = campaigns.campaign_by_slug(db, SLUG)
    assert campaigns.status(camp, NOW) == "draft"


def test_grace_period_only_for_a_page_loaded_before_closing(camp):
    ballots.check_open(camp, CLOSES + timedelta(minutes=5), page_loaded_at=CLOSES - timedelta(minutes=1))
    with pytest.raises(errors.NotOpen):
        ballots.check_open(camp, CLOSES + campaigns.GRACE, page_loaded_at=CLOSES - timedelta(minutes=1))
    with pytest.raises(errors.NotOpen):
        ballots.check_open(camp, CLOSES + timedelta(seconds=3), page_loaded_at=CLOSES)
    with pytest.raises(errors.NotOpen):
        ballots.check_open(camp, CLOSES, page_loaded_at=None)


# ------------------------------------------------------------ choices

@pytest.mark.parametrize("make, message", [
    (lambda c: c[:11], "最多只能选择 10 项"),
    (lambda c: [], "至少选择 1 项"),
    (lambda c: [c[0], c[0]], "重复"),
    (lambda c: [c[0], "no-such-entry"], "候选名单"),
    (lambda c: [c[0], "guoshi-shuyuan"], "候选名单"),  # a real entry, but not a candidate here
])
def test_broken_ballot_rules_are_refused_and_nothing_is_stored(db, camp, candidates, make, message):
    with pytest.raises(errors.BallotRejected) as err:
        cast(db, camp, "device:a", make(candidates))
    assert message in err.value.message
    assert stored_ballots(db) == 0
    assert db.execute("select frozen_at from campaigns where id = ?", [camp["id"]]).fetchone()[0] is None


def test_a_valid_ballot_stores_its_choices_in_the_campaign_order_and_freezes_the_rules(db, camp, candidates):
    picked = [candidates[9], candidates[2], candidates[0]]
    ballot = cast(db, camp, "device:a", picked)
    assert ballot["choices"] == [candidates[0], candidates[2], candidates[9]]
    assert stored_ballots(db) == 1
    assert db.execute("select count(*) from choices").fetchone()[0] == 3
    assert campaigns.campaign_by_slug(db, SLUG)["frozen_at"] is not None


def test_same_voter_same_choices_gets_the_same_receipt(db, camp, candidates):
    first = cast(db, camp, "device:a", candidates[:3])
    again = cast(db, camp, "device:a", list(reversed(candidates[:3])))
    assert again["receipt"] == first["receipt"]
    assert stored_ballots(db) == 1


def test_same_voter_other_choices_is_refused(db, camp, candidates):
    cast(db, camp, "device:a", candidates[:3])
    with pytest.raises(errors.AlreadyVoted):
        cast(db, camp, "device:a", candidates[:4])
    assert stored_ballots(db) == 1


def test_receipts_are_random_not_sequential(db, camp, candidates):
    receipts = [cast(db, camp, f"device:{i}", candidates[:2])["receipt"] for i in range(30)]
    assert len(set(receipts)) == 30
    assert all(len(r) == 14 and r[4] == r[9] == "-" for r in receipts)
    assert receipts != sorted(receipts)


def test_receipt_symbols_are_crockford_and_every_position_varies():
    raws = [ballots.new_receipt().replace("-", "") for _ in range(400)]
    assert set("".join(raws)) == set(ballots.RECEIPT_ALPHABET)  # all 32 symbols, nothing else
    for position in range(12):
        assert len({r[position] for r in raws}) > 20, position  # no stuck or low-entropy position


def test_ballots_and_choices_are_append_only(db, camp, candidates):
    cast(db, camp, "device:a", candidates[:2])
    for sql in ("update ballots set receipt = 'x'", "delete from ballots",
                "update choices set brand_id = 1", "delete from choices"):
        with pytest.raises(sqlite3.IntegrityError):
            db.execute(sql)


def test_ballot_rows_hold_no_ip_agent_or_raw_token(db):
    columns = {c.name for c in db["ballots"].columns}
    assert columns == {"id", "campaign_id", "voter_key", "receipt", "receipt_hash", "choice_set", "channel", "cast_at"}


def test_ip_limit_counts_stored_ballots_per_hour(db, camp, candidates):
    for i in range(3):
        cast(db, camp, f"device:{i}", candidates[:1], ip_key="ip1", ip_limit=3)
    with pytest.raises(errors.RateLimited) as err:
        cast(db, camp, "device:x", candidates[:1], ip_key="ip1", ip_limit=3)
    assert 0 < err.value.retry_after <= 3600
    assert stored_ballots(db) == 3
    cast(db, camp, "device:y", candidates[:1], ip_key="ip2", ip_limit=3)  # another network
    cast(db, camp, "device:z", candidates[:1], ip_key="ip1", ip_limit=3,
         now=OPENS + timedelta(hours=2))  # the next hour
    assert stored_ballots(db) == 5


def test_a_campaign_may_override_the_site_ip_limit(db, camp, candidates):
    db.execute("update campaigns set ip_limit = 1 where id = ?", [camp["id"]])
    db.conn.commit()
    cast(db, camp, "device:1", candidates[:1], ip_key="ip1", ip_limit=100)
    with pytest.raises(errors.RateLimited):
        cast(db, camp, "device:2", candidates[:1], ip_key="ip1", ip_limit=100)


def test_turnout_has_no_per_candidate_counts(db, camp, candidates):
    cast(db, camp, "device:1", candidates[:2], channel="paper")
    cast(db, camp, "device:2", candidates[:3], channel="paper")
    cast(db, camp, "device:3", candidates[:1])
    t = ballots.turnout(db, camp["id"])
    assert t["ballots"] == 3
    assert {r["channel"]: r["n"] for r in t["per_channel"]} == {"paper": 2, "": 1}
    flat = repr(t)
    assert not any(slug in flat for slug in candidates)


# ------------------------------------------------------------ a batch, as the writer stores it

def cast_batch(db, requests):
    with dbmod.immediate(db):
        return ballots.cast_ballots(db, requests)


def req(camp, voter, choices, now=OPENS + timedelta(hours=1), **kw):
    return ballots.BallotRequest(camp["id"], voter, choices, now, **kw)


def stored(db) -> dict[str, list[str]]:
    """voter key → the slugs stored in the choices table for that voter's ballot."""
    rows = db.execute("select b.voter_key, br.slug from ballots b join choices c on c.ballot_id = b.id"
                      " join brands br on br.id = c.brand_id order by b.voter_key, br.slug").fetchall()
    out: dict[str, list[str]] = {}
    for key, slug in rows:
        out.setdefault(key, []).append(slug)
    return out


def test_a_batch_answers_each_request_in_order_and_stores_only_the_accepted(db, camp, candidates):
    cast(db, camp, "device:old", candidates[:2])
    outcomes = cast_batch(db, [
        req(camp, "device:a", [candidates[4], candidates[1]]),
        req(camp, "device:b", candidates[:11]),                       # too many
        req(camp, "device:c", ["no-such-brand"]),                     # not a candidate
        req(camp, "device:a", [candidates[1], candidates[4]]),        # double tap in the batch
        req(camp, "device:d", candidates[:3], now=CLOSES + timedelta(minutes=1)),  # too late
        req(camp, "device:old", candidates[:2]),                      # double tap of a stored ballot
        req(camp, "device:old", candidates[:3]),                      # a second, different ballot
        req(camp, "device:a", candidates[:5]),                        # a second ballot in the batch
        req(camp, "device:e", candidates[:10], channel="paper"),
    ])
    ok = [o[0] for o in outcomes]
    assert ok == [True, False, False, True, False, True, False, False, True]
    a, too_many, unknown, a_again, late, old_again, old_other, a_other, e = (o[1] for o in outcomes)
    assert isinstance(too_many, errors.BallotRejected) and "最多只能选择 10 项" in too_many.message
    assert isinstance(unknown, errors.BallotRejected)
    assert isinstance(late, errors.NotOpen)
    assert isinstance(old_other, errors.AlreadyVoted) and isinstance(a_other, errors.AlreadyVoted)
    assert a_again["receipt"] == a["receipt"] and a["choices"] == [candidates[1], candidates[4]]
    assert old_again["receipt"] == ballots.ballot_of(db, camp["id"], "device:old")["receipt"]
    assert e["channel"] == "paper" and e["choices"] == candidates[:10]
    assert stored_ballots(db) == 3
    assert stored(db) == {"device:old": sorted(candidates[:2]), "device:a": sorted([candidates[1], candidates[4]]),
                          "device:e": sorted(candidates[:10])}
    for voter, ballot in (("device:a", a), ("device:e", e)):  # the id and receipt answered are the stored ones
        assert ballots.ballot_of(db, camp["id"], voter)["id"] == ballot["id"]
        assert ballots.ballot_of(db, camp["id"], voter)["receipt"] == ballot["receipt"]


def test_a_batch_counts_each_network_ballot_by_ballot(db, camp, candidates):
    cast(db, camp, "device:0", candidates[:1], ip_key="ip1", ip_limit=3)
    outcomes = cast_batch(db, [req(camp, f"device:{i}", candidates[:1], ip_key="ip1", ip_limit=3) for i in (1, 2, 3)]
                          + [req(camp, "device:9", candidates[:1], ip_key="ip2", ip_limit=3)])
    assert [o[0] for o in outcomes] == [True, True, False, True]
    assert isinstance(outcomes[2][1], errors.RateLimited)
    assert dict(db.execute("select ip_key, n from ip_counts").fetchall()) == {"ip1": 3, "ip2": 1}
    assert stored_ballots(db) == 4


def test_a_batch_of_code_ballots_claims_each_code_once(db, code_camp, candidates):
    codes = voter_codes.create_codes(db, code_camp["id"], 2, NOW)
    keys = ["code:" + voter_codes.hash_code(c) for c in codes]
    outcomes = cast_batch(db, [
        req(code_camp, keys[0], candidates[:2]),
        req(code_camp, "code:" + voter_codes.hash_code("B" * 32), candidates[:2]),  # no such code
        req(code_camp, keys[1], candidates[:3]),
        req(code_camp, keys[0], candidates[:4]),  # the same code, other choices
    ])
    assert [o[0] for o in outcomes] == [True, False, True, False]
    assert isinstance(outcomes[1][1], errors.NotOpen) and isinstance(outcomes[3][1], errors.AlreadyVoted)
    assert db.execute("select count(*) from voter_codes where used_at is not null").fetchone()[0] == 2
    assert stored(db) == {keys[0]: sorted(candidates[:2]), keys[1]: sorted(candidates[:3])}


def test_a_batch_for_an_unknown_campaign_stores_nothing(db, camp, candidates):
    outcomes = cast_batch(db, [ballots.BallotRequest(9999, "device:a", candidates[:1], NOW)])
    assert not outcomes[0][0] and isinstance(outcomes[0][1], errors.NotFound)
    assert stored_ballots(db) == 0


# ------------------------------------------------------------ voter codes

@pytest.fixture
def code_camp(db):
    return open_campaign(db, SLUG, OPENS, CLOSES, ANNOUNCE, electorate="codes")


def test_codes_are_long_random_and_stored_only_hashed(db, code_camp):
    codes = voter_codes.create_codes(db, code_camp["id"], 50, NOW)
    assert len(set(codes)) == 50
    assert all(len(c.replace("-", "")) * 5 >= 128 for c in codes)
    stored = {r[0] for r in db.execute("select code_hash from voter_codes")}
    assert not any(c.replace("-", "") in h for c in codes for h in stored)
    assert voter_codes.code_campaign(db, codes[0])["slug"] == SLUG
    assert voter_codes.code_campaign(db, codes[0].lower().replace("-", " "))["slug"] == SLUG  # as typed


def test_a_code_votes_once(db, code_camp, candidates):
    code = voter_codes.create_codes(db, code_camp["id"], 1, NOW)[0]
    key = "code:" + voter_codes.hash_code(code)
    cast(db, code_camp, key, candidates[:2])
    with pytest.raises(errors.NotOpen):
        voter_codes.code_campaign(db, code)
    with pytest.raises(errors.AlreadyVoted):
        cast(db, code_camp, key, candidates[:3])
    assert stored_ballots(db) == 1


def test_an_unknown_code_cannot_vote(db, code_camp, candidates):
    with pytest.raises(errors.NotOpen):
        cast(db, code_camp, "code:" + voter_codes.hash_code("A" * 32), candidates[:2])
    assert stored_ballots(db) == 0


def test_a_code_campaign_refuses_a_device_ballot(db, code_camp, candidates):
    """The handler picks the voter's kind from a campaign row it read earlier; if the organizer
    switched the campaign to codes meanwhile, the writer still refuses a device ballot."""
    with pytest.raises(errors.NotOpen) as err:
        cast(db, code_camp, "device:a", candidates[:2])
    assert "投票码" in err.value.message
    assert stored_ballots(db) == 0


def test_codes_only_for_a_closed_electorate(db, camp):
    with pytest.raises(errors.CodesNotNeeded):
        voter_codes.create_codes(db, camp["id"], 1, NOW)


# ------------------------------------------------------------ tokens and addresses

def test_csrf_token_is_bound_to_voter_campaign_and_age():
    tokens = Tokens("s")
    token = tokens.csrf("device:abc", 1, NOW)
    assert tokens.check_csrf(token, "device:abc", 1, NOW + timedelta(seconds=3))["issued_at"] == NOW
    for voter, campaign, at, error in [
        ("device:abc", 1, NOW + timedelta(seconds=1), TokenInvalid),  # too fast
        ("device:abc", 1, NOW + timedelta(hours=7), TokenExpired),
        ("device:xyz", 1, NOW + timedelta(seconds=3), TokenInvalid),
        ("device:abc", 2, NOW + timedelta(seconds=3), TokenInvalid),
    ]:
        with pytest.raises(error):
            tokens.check_csrf(token, voter, campaign, at)
    with pytest.raises(TokenInvalid):
        Tokens("other").check_csrf(token, "device:abc", 1, NOW + timedelta(seconds=3))
    with pytest.raises(TokenInvalid):
        tokens.check_csrf(tokens.code_cookie(1, "h"), "device:abc", 1, NOW + timedelta(seconds=3))


def tampered(token: str) -> str:
    """The signature's first character changed (its last one carries padding bits a decoder may ignore)."""
    payload, signature = token.rsplit(".", 1)
    return f"{payload}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"


def test_voter_tokens_are_itsdangerous_tokens_byte_for_byte():
    """The fast serializer must not change the scheme: cookies already on phones keep
    working, and a token signed any other way (other salt, other secret, tampered) fails."""
    plain = URLSafeSerializer("s", salt="brandvote.device")
    tokens = Tokens("s")
    device, cookie = tokens.new_device()
    assert cookie == plain.dumps({"d": device})
    assert tokens.device(plain.dumps({"d": "from-before"})) == "from-before"
    assert tokens.device(plain.dumps({"d": "中文设备"})) == "中文设备"
    for forged in (URLSafeSerializer("s", salt="brandvote.csrf").dumps({"d": device}),
                   URLSafeSerializer("t", salt="brandvote.device").dumps({"d": device}),
                   tampered(cookie)):
        with pytest.raises(TokenInvalid):
            tokens.device(forged)
    csrf = tokens.csrf("device:abc", 1, NOW, "paper")
    assert csrf == URLSafeSerializer("s", salt="brandvote.csrf").dumps(
        {"v": "device:abc"[-16:], "c": 1, "t": int(NOW.timestamp()), "ch": "paper"})


def test_voter_key_is_an_hmac_not_the_device_id():
    tokens = Tokens("s")
    key = tokens.voter_key("device", "raw-device-id")
    assert "raw-device-id" not in key and key == tokens.voter_key("device", "raw-device-id")
    assert key != Tokens("t").voter_key("device", "raw-device-id")


def test_voter_and_network_keys_keep_their_stored_form():
    """Stored ballots and counts hold these keys: if their form changed, a device that voted
    before an upgrade could vote again after it."""
    tokens = Tokens("s")
    for _ in range(2):  # the keyed state is copied, never worn out by a call
        assert tokens.voter_key("device", "d1") == "device:" + hmac.new(b"s", b"device:d1", hashlib.sha256).hexdigest()
        assert tokens.ip_key("203.0.113.9") == hmac.new(b"s", b"ip:203.0.113.9", hashlib.sha256).hexdigest()[:32]
    assert tokens.voter_key("device", "d2") != tokens.voter_key("device", "d1")
    assert tokens.voter_key("code", "abc") == "code:abc"


@pytest.mark.parametrize("peer, xff, trusted, expected", [
    ("203.0.113.9", "1.2.3.4", (), "203.0.113.9"),                      # no proxy configured
    ("203.0.113.9", "1.2.3.4", ("10.0.0.1/32",), "203.0.113.9"),        # untrusted peer
    ("10.0.0.1", "1.2.3.4", ("10.0.0.1/32",), "1.2.3.4"),
    ("10.0.0.1", "6.6.6.6, 1.2.3.4", ("10.0.0.1/32",), "1.2.3.4"),       # spoofed first hop ignored
    ("10.0.0.1", "1.2.3.4, 10.0.0.2", ("10.0.0.0/24",), "1.2.3.4"),      # chain of proxies
    ("10.0.0.1", "not-an-ip", ("10.0.0.1/32",), "10.0.0.1"),
])
def test_client_ip_believes_forwarded_for_only_from_a_trusted_proxy(peer, xff, trusted, expected):
    assert client_ip(peer, xff, trusted) == expected


@pytest.mark.parametrize("typed, stored", [
    ("JKYH6SPJ576F", "JKYH-6SPJ-576F"),
    ("jkyh-6spj-576f", "JKYH-6SPJ-576F"),
    (" JKYH 6SPJ 576F ", "JKYH-6SPJ-576F"),
    ("ＪＫＹＨ－６ＳＰＪ－５７６Ｆ", "JKYH-6SPJ-576F"),  # full-width, as a Chinese IME types it
    ("JKYH—6SPJ—576F", "JKYH-6SPJ-576F"),  # em dashes
    ("OILO-0000-0000", "0110-0000-0000"),  # Crockford: O is 0, I and L are 1
    ("JKYH-6SPJ-576", None),  # eleven symbols
    ("JKYH-6SPJ-576FF", None),
    ("JKYH-6SPJ-576U", None),  # U is not a receipt symbol
    ("", None),
    ("选票回执码一二三四五六七八", None),
])
def test_a_receipt_is_found_however_it_is_typed(typed, stored):
    assert ballots.normalize_receipt(typed) == stored
