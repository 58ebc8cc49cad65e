"""Property-based fuzzing: the ballot POST, the brands.json loader, the search filters, and
the JSON API held to its OpenAPI document by Schemathesis.

Every property runs in-process (TestClient / ASGI) on its own seeded copy of the catalog.
"""

from __future__ import annotations

import copy
import hashlib
import re
import sqlite3
from dataclasses import replace
from datetime import timedelta
from urllib.parse import quote_plus, urlencode

import pytest
import schemathesis
from bs4 import BeautifulSoup
from hypothesis import HealthCheck, given, settings, strategies as st
from starlette.testclient import TestClient

from brandvote import ballots, campaigns, seed
from brandvote.web import pagecache
from brandvote.app import create_app
from brandvote.db import immediate
from brandvote.errors import InvalidCatalog
from brandvote.security import DEVICE_COOKIE, Tokens

from helpers import ANNOUNCE, CLOSES, NOW, OPENS, SLUG, FakeClock, open_campaign

CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
EXAMPLES = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])
FIGURES: dict[str, int] = {}


def counted(name: str) -> None:
    FIGURES[name] = FIGURES.get(name, 0) + 1


def print_figures(name: str) -> None:
    print(f"\n[fuzz] {name}: {FIGURES.get(name, 0)} examples run")


# ---------------------------------------------------------------- (a) the ballot POST

MAX_FIELDS, MAX_PART, MAX_CHOICE_CHARS = 64, 4096, 80


def field_size(name: str, value: str) -> int:
    return len(quote_plus(name)) + len(quote_plus(value))


@st.composite
def ballot_bodies(draw, candidates: list[str], foreign: list[str], voted: list[tuple[str, list[str]]]):
    """A form as a list of (name, value) pairs, its encoding, and whose device posts it."""
    slug = st.sampled_from(candidates)
    choice_value = st.one_of(
        slug, slug, slug,
        st.sampled_from(foreign),  # brands of the catalog that are not candidates
        st.just(""),
        st.text(max_size=12),  # unicode, control characters, NUL
        st.from_regex(r"[a-z0-9-]{1,40}", fullmatch=True),
        st.text(min_size=81, max_size=200),
        st.builds(lambda s, n: s * n, slug, st.integers(2, 5)),
        slug.map(str.upper),
        slug.map(lambda s: f" {s}"),
    )
    who = draw(st.sampled_from(["fresh"] * 6 + ["voted"] * 2 + ["forged"]))
    voter = draw(st.integers(0, len(voted) - 1)) if who == "voted" else None
    shape = draw(st.sampled_from(["valid", "valid", "valid", "random", "random", "same_as_before", "huge",
                                  "dupes", "flood"]))
    if shape == "valid":
        choices = draw(st.lists(slug, min_size=1, max_size=10, unique=True))
    elif shape == "same_as_before" and voter is not None:
        choices = draw(st.permutations(voted[voter][1]))
    elif shape == "huge":
        choices = draw(st.lists(slug, min_size=11, max_size=80))
    elif shape == "flood":  # past the form's field limit
        choices = [draw(slug) for _ in range(draw(st.integers(55, 90)))]
    elif shape == "dupes":
        base = draw(st.lists(slug, min_size=1, max_size=9, unique=True))
        choices = base + [draw(st.sampled_from(base))]
    else:
        choices = draw(st.lists(choice_value, max_size=14))
    pairs = [("choice", c) for c in choices]
    name = st.one_of(st.sampled_from(["choice[]", "choice[0]", "Choice", "choices", "csrf", "ch", "c",
                                      "choice ", ""]),
                     st.text(min_size=1, max_size=15), st.from_regex(r"[a-z_\[\]0-9]{1,15}", fullmatch=True))
    extras = draw(st.lists(st.tuples(name, st.one_of(slug, st.text(max_size=30))), max_size=6))
    csrf = draw(st.sampled_from(["valid"] * 8 + ["missing", "garbage", "twice"]))
    fields = pairs + extras
    fields = draw(st.permutations(fields))
    encoding = draw(st.sampled_from(["urlencoded", "urlencoded", "multipart"]))
    if encoding == "multipart":  # names go into a header: keep them plain
        fields = [(n if re.fullmatch(r"[A-Za-z0-9_\[\]-]+", n) else "junk", v) for n, v in fields]
    return fields, csrf, encoding, voter, who == "forged"


def multipart_body(fields: list[tuple[str, str]]) -> tuple[bytes, str]:
    boundary = "----brandvotefuzz7MA4YWxkTrZu0gW"
    out = bytearray()
    for name, value in fields:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode("utf-8") + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def expected_answer(fields, token_value, encoding, candidates, existing, forged=False) -> int:
    """The contract of POST /c/{slug}/ballot, as design.md states it, for this body."""
    sizes = ([field_size(n, v) for n, v in fields] if encoding == "urlencoded"
             else [len(v.encode("utf-8")) for _, v in fields])
    if len(fields) > MAX_FIELDS or any(s > MAX_PART for s in sizes):
        return 400
    choices = [v for n, v in fields if n == "choice"]
    if any(len(c) > MAX_CHOICE_CHARS for c in choices):
        return 422
    sent_token = next((v for n, v in reversed(fields) if n == "csrf_token"), None)
    if forged or sent_token != token_value:
        return 403
    if len(set(choices)) != len(choices) or not set(choices) <= set(candidates) or not 1 <= len(choices) <= 10:
        return 422
    if existing is not None:
        return 303 if sorted(existing["choices"]) == sorted(choices) else 409
    return 303


def stored(db) -> tuple[int, int]:
    return (db.execute("select count(*) from ballots").fetchone()[0],
            db.execute("select count(*) from choices").fetchone()[0])


def test_ballot_post_accepts_exactly_the_valid_ballots(seeded_settings, db):
    camp = open_campaign(db, SLUG, OPENS, CLOSES, ANNOUNCE)
    candidates = [b["slug"] for b in campaigns.candidates_of(db, camp["id"])]
    foreign = [r["slug"] for r in db.query("select slug from brands") if r["slug"] not in candidates][:20]
    clock = FakeClock(OPENS + timedelta(hours=1))
    settings_ = replace(seeded_settings, ip_limit=0)
    tokens = Tokens(settings_.secret)
    voted = []
    for i in range(3):  # three devices that have voted already
        device, cookie = tokens.new_device()
        choices = candidates[i:i + 3]
        with immediate(db):
            ballots.cast_ballot(db, camp["id"], tokens.voter_key("device", device), choices, clock.now)
        voted.append(((device, cookie), choices))
    status_seen: dict[int, int] = {}

    with TestClient(create_app(settings_, now=clock), base_url="https://testserver") as client:

        @EXAMPLES
        @given(ballot_bodies(candidates, foreign, [(d, c) for d, c in voted]))
        def prop(body):
            fields, csrf, encoding, voter, forged = body
            if voter is None:
                device, cookie = tokens.new_device()
            else:
                device, cookie = voted[voter][0]
            key = tokens.voter_key("device", device)
            token = tokens.csrf(key, camp["id"], clock.now - timedelta(minutes=1))
            if csrf == "valid":
                fields = fields + [("csrf_token", token)]
            elif csrf == "garbage":
                fields = fields + [("csrf_token", token[:-3] + "abc")]
            elif csrf == "twice":  # a stale token first, the good one last
                fields = [("csrf_token", "x" * 40)] + fields + [("csrf_token", token)]
            existing = ballots.ballot_of(db, camp["id"], key)
            expect = expected_answer(fields, token, encoding, candidates, existing, forged)
            if forged:  # a device cookie signed with another secret
                cookie = Tokens("not-the-server-secret").new_device()[1]
            before = stored(db)
            if encoding == "urlencoded":
                content, ctype = urlencode(fields).encode("ascii"), "application/x-www-form-urlencoded"
            else:
                content, ctype = multipart_body(fields)
            client.cookies.clear()
            client.cookies.set(DEVICE_COOKIE, cookie)
            r = client.post(f"/c/{SLUG}/ballot", content=content, headers={"content-type": ctype},
                            follow_redirects=False)
            counted("ballot")
            status_seen[r.status_code] = status_seen.get(r.status_code, 0) + 1
            after = stored(db)
            if expect == 303:
                assert r.status_code == 303, (r.status_code, fields, r.text[:400])
                assert r.headers["location"] == f"/c/{SLUG}/receipt"
                ballot = ballots.ballot_of(db, camp["id"], key)
                choices = [v for n, v in fields if n == "choice"]
                assert ballot is not None and sorted(ballot["choices"]) == sorted(choices)
                assert after == (before if existing else (before[0] + 1, before[1] + len(choices)))
            else:
                assert r.status_code == expect, (r.status_code, expect, fields, r.text[:400])
                assert after == before, "a refused ballot changed the database"
                alert = BeautifulSoup(r.text, "html.parser").find(attrs={"role": "alert"})
                assert alert is not None and CJK.search(alert.get_text()), r.text[:400]
                assert ballots.ballot_of(db, camp["id"], key) == existing

        prop()
    print_figures("ballot")
    print(f"[fuzz] ballot answers: {dict(sorted(status_seen.items()))}")
    assert {303, 403, 409, 422}.issubset(status_seen)


# ---------------------------------------------------------------- (b) the brands.json loader

JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 63), 2 ** 63), st.floats(allow_nan=False),
                      st.text(max_size=30), st.just(""), st.just("x" * 5000))
JSON_VALUE = st.recursive(JSON_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                          max_leaves=6)


@st.composite
def mutated_documents(draw, doc: dict):
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 4))):
        # walk down to a container
        parent, key = None, None
        node = doc
        while isinstance(node, (dict, list)) and node and draw(st.integers(0, 3)) > 0:
            k = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
            if not isinstance(node[k], (dict, list)):
                parent, key = node, k
                break
            parent, key, node = node, k, node[k]
        op = draw(st.sampled_from(["delete", "retype", "junk_key", "duplicate", "swap_slug", "top"]))
        if op == "top":
            doc = draw(st.one_of(JSON_VALUE, st.just({}), st.just({"brands": []})))
            if not isinstance(doc, dict):
                break
        elif parent is None:
            continue
        elif op == "delete":
            del parent[key]
        elif op == "retype":
            parent[key] = draw(JSON_VALUE)
        elif op == "junk_key" and isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(JSON_VALUE)
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif op == "swap_slug" and isinstance(parent, dict):
            parent[key] = draw(st.sampled_from(["", "Bad Slug", "shanghai-2022-highlights", "x" * 200,
                                                "weiyuan-lianyi-lianqing-lianxin", "新条目"]))
    return doc


TABLES = ("brands", "lists", "list_items", "campaigns", "candidates", "brand_revisions", "audit_log")


def fingerprint(db) -> str:
    h = hashlib.sha256()
    for table in TABLES:
        for row in db.execute(f"select * from {table} order by rowid"):
            h.update(repr(row).encode())
    return h.hexdigest()


def test_loader_refuses_bad_documents_cleanly_and_changes_nothing(seeded_settings, seeded_template, bundled, db):
    pristine = sqlite3.connect(seeded_template)
    outcomes = {"loaded": 0, "refused": 0}
    try:
        clean = fingerprint(db)

        @EXAMPLES
        @given(mutated_documents(bundled))
        def prop(doc):
            counted("loader")
            try:
                seed.load_document(db, doc, NOW + timedelta(days=1), actor="fuzz")
            except InvalidCatalog as exc:
                outcomes["refused"] += 1
                assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
                assert fingerprint(db) == clean, "a refused document changed the database"
                assert not db.conn.in_transaction
            else:
                outcomes["loaded"] += 1
                assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
                pristine.backup(db.conn)  # the next example starts from the same database
                assert fingerprint(db) == clean

        prop()
    finally:
        pristine.close()
    print_figures("loader")
    print(f"[fuzz] loader outcomes: {outcomes}")
    assert outcomes["refused"] > 0


# ---------------------------------------------------------------- (c) search and filters

FILTER_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "上海", "协商", "NEAR", "\"", "*", "^a", "a OR b", "a AND", "(", "'", "%", "_", "\\",
                     "\x00", "brand", "highlight", "0", "-1", "10000", "10001", "99999999999999999999",
                     "１２", "٣", "1e3", " 2 ", "shanghai-30-brands", "委员 会客厅", "a\"b\"c", "NOT x",
                     "协商\x00会客厅", "abc\x00"]),
    st.text(min_size=490, max_size=520),
    st.from_regex(r"(%[0-9A-Fa-f]{2}|[a-z&=+;])*", fullmatch=True),
)


@st.composite
def filter_queries(draw):
    if draw(st.booleans()):
        keys = st.sampled_from(["q", "region", "kind", "list", "page"])
        return ("params", draw(st.lists(st.tuples(keys, FILTER_TEXT), max_size=6)))
    raw = draw(st.lists(st.tuples(st.sampled_from(["q", "region", "kind", "list", "page", "Q", "q[]"]),
                                  st.from_regex(r"(%[0-9A-Fa-f]{2}|[!\"$'-~]|[上海协商])*", fullmatch=True)), max_size=5))
    return ("raw", "&".join(f"{k}={v}" for k, v in raw))


def test_search_and_filters_never_fail_the_server(seeded_settings):
    answers: dict[int, int] = {}
    with TestClient(create_app(seeded_settings), base_url="https://testserver",
                    raise_server_exceptions=False) as client:

        @EXAMPLES
        @given(filter_queries(), st.sampled_from(["/brands", "/api/brands"]))
        def prop(query, path):
            kind, value = query
            if kind == "params":
                r = client.get(path, params=value)
            else:
                r = client.get(f"{path}?{value}")
            counted("filters")
            answers[r.status_code] = answers.get(r.status_code, 0) + 1
            too_long = len(r.request.url.query) > pagecache.MAX_QUERY_BYTES
            assert r.status_code == 414 if too_long else r.status_code in (200, 400), (r.status_code, query, r.text[:300])
            if r.status_code in (400, 414):
                text = (r.json()["message"] if path.startswith("/api") else
                        BeautifulSoup(r.text, "html.parser").get_text())
                assert CJK.search(text)
                if path.startswith("/api"):
                    assert set(r.json()) == {"error", "message"}

        prop()
    print_figures("filters")
    print(f"[fuzz] filter answers: {dict(sorted(answers.items()))}")


# ---------------------------------------------------------------- Schemathesis: the API against its document

@pytest.fixture(params=["voting", "announced"])
def api_schema(request, seeded_settings, db):
    """The API while voting runs (results embargoed: 403) and after the announcement (results)."""
    camp = open_campaign(db, SLUG, OPENS, CLOSES, ANNOUNCE)
    candidates = [b["slug"] for b in campaigns.candidates_of(db, camp["id"])]
    tokens = Tokens(seeded_settings.secret)
    for i in range(12):
        device, _ = tokens.new_device()
        with immediate(db):
            ballots.cast_ballot(db, camp["id"], tokens.voter_key("device", device),
                               candidates[i % 5: i % 5 + 1 + i % 7], OPENS + timedelta(hours=1, minutes=i))
    now = OPENS + timedelta(days=1) if request.param == "voting" else ANNOUNCE + timedelta(hours=1)
    app = create_app(seeded_settings, now=FakeClock(now))
    return schemathesis.openapi.from_asgi("/api/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _schemathesis_node_id(request):
    """Schemathesis 4.32's lazy loader reads `node._nodeid`, which pytest 9.2 no longer has."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@schema.parametrize()
@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case):
    response = case.call_and_validate()  # every check: status codes, content type, bodies, negative data
    counted("schemathesis")
    counted(f"schemathesis {case.operation.label} {response.status_code}")
    assert response.status_code < 500


@pytest.fixture(scope="module", autouse=True)
def _print_schemathesis_figures():
    yield
    rows = {k: v for k, v in FIGURES.items() if k.startswith("schemathesis ")}
    if rows:
        print(f"\n[fuzz] schemathesis: {FIGURES.get('schemathesis', 0)} cases over "
              f"{len({k.rsplit(' ', 1)[0] for k in rows})} operations (both campaign states)")
        for key in sorted(rows):
            print(f"[fuzz]   {key.removeprefix('schemathesis ')}: {rows[key]}")
