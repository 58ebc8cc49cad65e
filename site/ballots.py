"""Ballots: the rules a submission must meet, the batch the writer stores, receipts,
turnout and bursts. Rules only, no HTTP; `now` is always passed in."""

from __future__ import annotations

import hashlib
import json
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlite_utils import Database

from . import campaigns, clock
from .db import first
from .errors import AlreadyVoted, BallotRejected, BrandvoteError, NotFound, NotOpen, RateLimited


def ballots_per_campaign(db: Database) -> dict[int, int]:
    """Turnout totals for the organizer's list: ballots only, never per-candidate counts."""
    return {r["campaign_id"]: r["n"] for r in db.query(
        "select campaign_id, count(*) as n from ballots group by campaign_id")}


RECEIPT_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


def check_open(campaign: dict, now: datetime, page_loaded_at: datetime | None = None) -> None:
    """Refuse unless voting runs; a page loaded before closing gets a short grace period."""
    state = campaigns.status(campaign, now)
    if state == "open":
        return
    closes = clock.from_db(campaign.get("closes_at"))
    if (state == "closed" and closes is not None and page_loaded_at is not None
            and page_loaded_at < closes and now < closes + campaigns.GRACE):
        return
    messages = {
        "draft": "本评选尚未开始。",
        "scheduled": f"投票将于 {clock.local_text(clock.from_db(campaign.get('opens_at')))} 开始。",
        "closed": "投票已经结束，不再接受选票。",
        "announced": "投票已经结束，结果已经揭晓。",
    }
    raise NotOpen(messages[state])


def check_electorate(campaign: dict, voter_key: str) -> None:
    """A campaign for code holders takes only code ballots, checked again under the write lock:
    the handler chose the voter's kind from a campaign row read before it."""
    if campaign["electorate"] == "codes" and not voter_key.startswith("code:"):
        raise NotOpen("本评选需凭投票码参加，请扫描您收到的投票码。")


def check_choices(campaign: dict, candidate_slugs: list[str], choices: list[str]) -> list[str]:
    """The ballot rules, whatever the client sends: count, distinct, candidates of this campaign."""
    lo, hi = campaign["min_choices"], campaign["max_choices"]
    if len(set(choices)) != len(choices):
        raise BallotRejected("同一项目不能重复选择。")
    allowed = set(candidate_slugs)
    if any(c not in allowed for c in choices):
        raise BallotRejected("所选项目不在本次评选的候选名单中，请刷新页面后重新选择。")
    if len(choices) > hi:
        raise BallotRejected(f"最多只能选择 {hi} 项，您选择了 {len(choices)} 项。")
    if len(choices) < lo:
        raise BallotRejected(f"请至少选择 {lo} 项。" if lo > 1 else "请至少选择 1 项。")
    return sorted(choices, key=candidate_slugs.index)


def new_receipt() -> str:
    """60 random bits as 12 Crockford symbols, drawn in one call (this runs in the writer
    thread, where twelve secrets.choice calls cost a quarter of a ballot's time)."""
    n = secrets.randbits(60)
    raw = "".join(RECEIPT_ALPHABET[(n >> shift) & 31] for shift in range(55, -1, -5))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


# Dashes as phones and input methods type them (hyphen, minus, en/em dash, the long Chinese
# dash, katakana prolonged sound mark), and the spaces people put between groups.
_RECEIPT_SEPARATORS = dict.fromkeys(map(ord, "-‐‑‒–—―−ー_ \t"), None)
_CROCKFORD_ALIASES = str.maketrans("ILO", "110")  # Crockford base32 reads I and L as 1, O as 0


def normalize_receipt(text: str) -> str | None:
    """A receipt code as a voter copies or types it, in the form it is stored: full-width
    characters folded (NFKC), case, dashes and spaces ignored, I/L/O read as 1/1/0.
    None when what is left is not twelve receipt symbols."""
    folded = unicodedata.normalize("NFKC", text[:60]).translate(_RECEIPT_SEPARATORS).upper()
    raw = folded.translate(_CROCKFORD_ALIASES)
    if len(raw) != 12 or any(ch not in RECEIPT_ALPHABET for ch in raw):
        return None
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def receipt_hash(receipt: str) -> str:
    """How a receipt stands in the public ledger: stored with its ballot, so the ledger
    streams in this order, and shown by the receipt lookup."""
    return hashlib.sha256(receipt.encode()).hexdigest()


def _hour(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H")


@dataclass(frozen=True)
class BallotRequest:
    """One voter's submission, as the handler parsed it; the writer stores a batch of them."""

    campaign_id: int
    voter_key: str
    choices: list[str]
    now: datetime
    channel: str | None = None
    ip_key: str | None = None
    ip_limit: int = 0
    page_loaded_at: datetime | None = None


def cast_ballot(db: Database, campaign_id: int, voter_key: str, choices: list[str], now: datetime, *,
                channel: str | None = None, ip_key: str | None = None, ip_limit: int = 0,
                page_loaded_at: datetime | None = None) -> dict:
    """Store one ballot, inside the caller's write transaction; raises what refused it."""
    ok, value = cast_ballots(db, [BallotRequest(campaign_id, voter_key, list(choices), now, channel, ip_key,
                                                ip_limit, page_loaded_at)])[0]
    if not ok:
        raise value
    return value


def cast_ballots(db: Database, requests: list[BallotRequest]) -> list[tuple[bool, object]]:
    """Store a batch of ballots inside the caller's write transaction: (True, ballot) or
    (False, refusal) per request, in order. A refused request stores nothing.

    Everything is read under the write lock, so no check can go stale, and the UNIQUE index
    on (campaign, voter_key) still makes a second ballot impossible. The same voter sending
    the same choices again gets the ballot already stored (a double tap is not an error).
    The batch is checked in Python and written in a handful of set-based statements, not
    several per ballot: the writer drops and retakes the GIL on every SQLite call, and under
    a crowd it waits behind the event loop each time. If a statement
    fails the caller undoes the whole call, and the writer then stores each request alone.
    """
    outcomes: list = [None] * len(requests)
    by_campaign: dict[int, list[int]] = {}
    for i, req in enumerate(requests):
        by_campaign.setdefault(req.campaign_id, []).append(i)
    for campaign_id, indexes in by_campaign.items():
        _cast_for_campaign(db, campaign_id, [(i, requests[i]) for i in indexes], outcomes)
    return outcomes


def _cast_for_campaign(db: Database, campaign_id: int, items: list[tuple[int, BallotRequest]], outcomes: list) -> None:
    camp = first(db, "select * from campaigns where id = ?", [campaign_id])
    if camp is None:
        for i, _ in items:
            outcomes[i] = (False, NotFound("没有找到这个评选。"))
        return
    ids = {slug: brand_id for slug, brand_id, _ in campaigns.candidate_keys(db, campaign_id)}
    slugs = list(ids)
    checked = []  # (index, request, choices in the organizer's order)
    for i, req in items:
        try:
            check_open(camp, req.now, req.page_loaded_at)
            check_electorate(camp, req.voter_key)
            checked.append((i, req, check_choices(camp, slugs, req.choices)))
        except BrandvoteError as exc:
            outcomes[i] = (False, exc)
    new, twins, ip_added = _admit(db, camp, checked, outcomes)
    if new:
        _store(db, camp, ids, new, ip_added, outcomes)
    for i, first_index in twins:  # a double tap within the batch gets the ballot just stored
        outcomes[i] = outcomes[first_index]


def _ip_limit(camp: dict, req: BallotRequest) -> int:
    return camp["ip_limit"] if camp["ip_limit"] is not None else req.ip_limit


def _admit(db: Database, camp: dict, checked: list, outcomes: list) -> tuple[dict, list, dict]:
    """One ballot per voter, per code, and at most the limit per network and hour, decided
    request by request in queue order against what is stored and what the batch adds.
    Returns the ballots to store (voter key → (index, choices, request)), the double taps
    within the batch (index, index of the first), and the networks' added counts."""
    if not checked:
        return {}, [], {}
    campaign_id = camp["id"]
    stored_keys = {key for (key,) in db.conn.execute(
        "select voter_key from ballots where campaign_id = ? and voter_key in (select value from json_each(?))",
        [campaign_id, json.dumps(sorted({req.voter_key for _, req, _ in checked}))])}
    ip_used = _ip_counts(db, camp, checked)
    ip_added: dict[tuple[str, str], int] = {}
    new: dict[str, tuple] = {}
    twins = []
    for i, req, ordered in checked:
        if req.voter_key in stored_keys:
            existing = ballot_of(db, campaign_id, req.voter_key)
            outcomes[i] = (True, existing) if sorted(existing["choices"]) == sorted(ordered) else (False, AlreadyVoted())
            continue
        if req.voter_key in new:
            first_index, first_choices, _ = new[req.voter_key]
            if sorted(first_choices) == sorted(ordered):
                twins.append((i, first_index))
            else:
                outcomes[i] = (False, AlreadyVoted())
            continue
        limit = _ip_limit(camp, req)
        network = (req.ip_key, _hour(req.now)) if req.ip_key and limit else None
        if network and ip_used.get(network, 0) + ip_added.get(network, 0) >= limit:
            retry = 3600 - (req.now.minute * 60 + req.now.second)
            outcomes[i] = (False, RateLimited(
                f"此网络本小时已提交 {limit} 张选票，达到上限。请 {retry // 60 + 1} 分钟后再试。", retry))
            continue
        if req.voter_key.startswith("code:") and db.conn.execute(
                "update voter_codes set used_at = ? where campaign_id = ? and code_hash = ? and used_at is null",
                [clock.to_db(req.now), campaign_id, req.voter_key[5:]]).rowcount != 1:
            outcomes[i] = (False, NotOpen("这个投票码无效或已经使用过。"))
            continue
        if network:
            ip_added[network] = ip_added.get(network, 0) + 1
        new[req.voter_key] = (i, ordered, req)
    return new, twins, ip_added


def _ip_counts(db: Database, camp: dict, checked: list) -> dict[tuple[str, str], int]:
    """Ballots already counted this hour for each network in the batch, in one read."""
    keys = {(req.ip_key, _hour(req.now)) for _, req, _ in checked if req.ip_key and _ip_limit(camp, req)}
    if not keys:
        return {}
    (rows,) = db.conn.execute(
        "select json_group_array(json_array(ip_key, hour, n)) from ip_counts where campaign_id = ?"
        " and ip_key in (select value from json_each(?)) and hour in (select value from json_each(?))",
        [camp["id"], json.dumps(sorted({k for k, _ in keys})), json.dumps(sorted({h for _, h in keys}))]).fetchone()
    return {(ip, hour): n for ip, hour, n in json.loads(rows)}


def _store(db: Database, camp: dict, ids: dict[str, int], new: dict, ip_added: dict, outcomes: list) -> None:
    """The admitted ballots, their choices and the networks' counts, a statement each."""
    campaign_id = camp["id"]
    if ip_added:
        db.conn.execute(
            "insert into ip_counts (campaign_id, ip_key, hour, n)"
            " select ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]')"
            " from json_each(?) where true"
            " on conflict (campaign_id, ip_key, hour) do update set n = n + excluded.n",
            [campaign_id, json.dumps([[ip, hour, n] for (ip, hour), n in ip_added.items()])])
    ballots = {}  # receipt → (index, voter key, choices, request)
    for voter_key, (i, ordered, req) in new.items():
        receipt = new_receipt()
        while receipt in ballots:  # 60 random bits: never, but a lost ballot must not hinge on it
            receipt = new_receipt()
        ballots[receipt] = (i, voter_key, ordered, req)
    # Row by row: a multi-row INSERT (SELECT from json_each, or a long VALUES list) into this
    # table and its three random-key indexes costs more per ballot (bench/FIGURES.md), and a
    # batch is a few dozen ballots at most, so the GIL handoffs stay few.
    db.conn.executemany(
        "insert into ballots (campaign_id, voter_key, receipt, receipt_hash, choice_set, channel, cast_at)"
        " values (?, ?, ?, ?, ?, ?, ?)",
        [[campaign_id, voter_key, receipt, receipt_hash(receipt), ";".join(sorted(ordered)),
          req.channel, clock.to_db(req.now)] for receipt, (_, voter_key, ordered, req) in ballots.items()])
    (id_map,) = db.conn.execute(
        "select json_group_object(receipt, id) from ballots"
        " where campaign_id = ? and receipt in (select value from json_each(?))",
        [campaign_id, json.dumps(list(ballots))]).fetchone()
    ballot_ids = json.loads(id_map)
    # One statement for the ~200 choices of a batch, each packed as ballot_id << 32 | brand_id:
    # one JSON integer per row instead of a pair read back by json_extract (~25% less).
    db.conn.execute(
        "insert into choices (ballot_id, campaign_id, brand_id) select value >> 32, ?, value & 4294967295"
        " from json_each(?)",
        [campaign_id, json.dumps([ballot_ids[receipt] << 32 | ids[slug]
                                  for receipt, (_, _, ordered, _) in ballots.items() for slug in ordered])])
    if camp["frozen_at"] is None:
        db.conn.execute("update campaigns set frozen_at = ? where id = ? and frozen_at is null",
                        [clock.to_db(min(req.now for _, _, _, req in ballots.values())), campaign_id])
    for receipt, (i, _, ordered, req) in ballots.items():
        outcomes[i] = (True, {"id": ballot_ids[receipt], "receipt": receipt, "choices": ordered,
                              "cast_at": clock.to_db(req.now), "channel": req.channel})


def receipt_of(db: Database, campaign_id: int, voter_key: str) -> dict | None:
    """The voter's ballot as the receipt shows it, from its row alone: choice_set holds its
    sorted slugs, written with its choices in one transaction. One indexed read, made on the
    event loop for every receipt a voter opens."""
    row = first(db, "select id, receipt, cast_at, channel, choice_set from ballots"
                    " where campaign_id = ? and voter_key = ?", [campaign_id, voter_key])
    if row is not None:
        row["choice_set"] = set(row["choice_set"].split(";"))
    return row


def ballot_of(db: Database, campaign_id: int, voter_key: str) -> dict | None:
    """The voter's ballot with its choices read from the choices table, in the organizer's order."""
    row = receipt_of(db, campaign_id, voter_key)
    if row is None:
        return None
    del row["choice_set"]
    row["choices"] = [r["slug"] for r in db.query(
        "select b.slug from choices c join brands b on b.id = c.brand_id"
        " join candidates k on k.brand_id = c.brand_id and k.campaign_id = c.campaign_id"
        " where c.ballot_id = ? order by k.position", [row["id"]])]
    return row


def turnout(db: Database, campaign_id: int) -> dict:
    """Ballots cast, per hour and per channel: never per-candidate counts."""
    total = first(db, "select count(*) as n from ballots where campaign_id = ?", [campaign_id])["n"]
    per_hour = list(db.query(
        "select substr(cast_at, 1, 13) as hour, count(*) as n from ballots where campaign_id = ?"
        " group by hour order by hour", [campaign_id]))
    per_channel = list(db.query(
        "select coalesce(channel, '') as channel, count(*) as n from ballots where campaign_id = ?"
        " group by channel order by n desc, channel", [campaign_id]))
    return {"ballots": total, "per_hour": per_hour, "per_channel": per_channel}


def anomalies(db: Database, campaign_id: int, threshold: int) -> list[dict]:
    """Bursts from one address: hours in which one ip_key cast ≥ threshold ballots.

    Only the keyed hash of an address is stored (never the address); it is shown cut
    short, enough to tell bursts apart. Rows: hour (UTC, "YYYY-MM-DDTHH"), ip_key
    (truncated), count, and share of that hour's ballots (0..1). Never per-candidate.
    """
    rows = db.query(
        "with bursts as (select hour, ip_key, n from ip_counts where campaign_id = :c and n >= :t"
        " order by hour desc, n desc limit 200),"
        " totals as (select substr(cast_at, 1, 13) as hour, count(*) as n from ballots where campaign_id = :c"
        " and substr(cast_at, 1, 13) in (select hour from bursts) group by 1)"
        " select b.hour, b.ip_key, b.n, coalesce(t.n, 0) as hour_total from bursts b"
        " left join totals t on t.hour = b.hour order by b.hour desc, b.n desc",
        {"c": campaign_id, "t": max(1, int(threshold))})
    return [{"hour": r["hour"], "ip_key": (r["ip_key"] or "")[:8], "count": r["n"],
             "share": min(1.0, r["n"] / r["hour_total"]) if r["hour_total"] else 1.0} for r in rows]
