"""Races against a real server: uvicorn with two workers on 127.0.0.1, many threads."""

import re
import sqlite3
import threading
import time

import httpx2
import pytest

from helpers import LiveServer

SLUG = "shanghai-2022-highlights"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = LiveServer(tmp_path_factory.mktemp("race"), workers=2)
    yield s
    s.stop()


def ballots(server, where="1=1", params=()):
    conn = sqlite3.connect(server.db_path)
    try:
        return conn.execute(f"select count(*) from ballots where {where}", params).fetchone()[0]
    finally:
        conn.close()


def page_and_token(client):
    r = client.get(f"/c/{SLUG}")
    assert r.status_code == 200, r.text[:300]
    token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
    slugs = re.findall(r'name="choice" value="([^"]+)"', r.text)
    return token, slugs


def race(server, cookies, token, choices_per_thread):
    results = []
    barrier = threading.Barrier(len(choices_per_thread))

    def one(choices):
        with httpx2.Client(base_url=server.url, cookies=cookies, timeout=30) as c:
            barrier.wait()
            r = c.post(f"/c/{SLUG}/ballot", data={"csrf_token": token, "choice": choices})
            results.append(r.status_code)

    threads = [threading.Thread(target=one, args=(ch,)) for ch in choices_per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_twenty_concurrent_submissions_from_one_device_store_one_ballot(server):
    with httpx2.Client(base_url=server.url) as c:
        token, slugs = page_and_token(c)
        cookies = dict(c.cookies)
    time.sleep(2.2)  # the form's minimum age
    before = ballots(server)
    # half resend the same choices (a double tap), half try something else
    statuses = race(server, cookies, token, [slugs[:3] if i % 2 else slugs[3:6] for i in range(20)])
    assert ballots(server) == before + 1
    assert set(statuses) <= {303, 409}
    assert statuses.count(303) >= 1


def test_twenty_concurrent_submissions_with_one_voter_code_store_one_ballot(server):
    import subprocess
    import sys

    conn = sqlite3.connect(server.db_path)
    conn.execute("update campaigns set electorate = 'codes' where slug = ?", [SLUG])
    conn.commit()
    conn.close()
    try:
        out = server.db_path.with_name("codes.csv")
        r = subprocess.run([sys.executable, "-m", "brandvote", "codes", SLUG, "--count", "1", "--out", str(out),
                            "--db", str(server.db_path)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        code = out.read_text().splitlines()[1].split(",")[0]
        with httpx2.Client(base_url=server.url) as c:
            r = c.get(f"/v/{code}", follow_redirects=True)
            assert r.status_code == 200 and str(r.url).endswith(f"/c/{SLUG}")  # the clean URL
            token, slugs = page_and_token(c)
            cookies = dict(c.cookies)
        time.sleep(2.2)
        before = ballots(server)
        statuses = race(server, cookies, token, [slugs[:2] if i % 2 else slugs[2:5] for i in range(20)])
        assert ballots(server) == before + 1
        assert set(statuses) <= {303, 409}
        with httpx2.Client(base_url=server.url) as c:
            assert c.get(f"/v/{code}").status_code == 403, "the code works once"
    finally:
        conn = sqlite3.connect(server.db_path)
        conn.execute("update campaigns set electorate = 'open' where slug = ?", [SLUG])
        conn.commit()
        conn.close()


def test_forty_voters_at_once_each_get_their_own_ballot(server):
    """Ballots that arrive together are stored by one batch: each voter's receipt must name
    exactly that voter's choices, and the ballots and choices tables must hold them all."""
    import html
    import random

    voters = []
    for i in range(40):
        c = httpx2.Client(base_url=server.url, timeout=30)
        token, slugs = page_and_token(c)
        picks = random.Random(i).sample(slugs, 1 + i % 10)
        voters.append((c, token, picks))
    time.sleep(2.2)
    before = ballots(server)
    barrier = threading.Barrier(len(voters))
    statuses: dict[int, int] = {}

    def vote(i):
        c, token, picks = voters[i]
        barrier.wait()
        statuses[i] = c.post(f"/c/{SLUG}/ballot", data={"csrf_token": token, "choice": picks}).status_code

    threads = [threading.Thread(target=vote, args=(i,)) for i in range(len(voters))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert set(statuses.values()) == {303}
        assert ballots(server) == before + 40
        conn = sqlite3.connect(server.db_path)
        names = dict(conn.execute("select slug, name from brands"))
        conn.close()
        with httpx2.Client(base_url=server.url) as fresh:
            order = page_and_token(fresh)[1]  # the campaign's order, which the receipt keeps
        receipts = set()
        for c, _, picks in voters:
            page = c.get(f"/c/{SLUG}/receipt").text
            chosen = re.search(r'<ol class="receipt__choices">(.*?)</ol>', page, re.S).group(1)
            assert [html.unescape(n) for n in re.findall(r"<li>(.*?)</li>", chosen)] == [
                names[s] for s in order if s in picks]
            receipts.add(re.search(r'<p class="receipt__code">([^<]+)</p>', page).group(1))
        assert len(receipts) == 40
        conn = sqlite3.connect(server.db_path)
        try:
            stored = conn.execute("select group_concat(n) from (select count(*) as n from choices c"
                                  " join ballots b on b.id = c.ballot_id where b.id > (select max(id) - 40 from ballots)"
                                  " group by b.id order by b.id)").fetchone()[0]
        finally:
            conn.close()
        assert sorted(map(int, stored.split(","))) == sorted(len(p) for _, _, p in voters)
    finally:
        for c, _, _ in voters:
            c.close()
