"""Whose address a ballot and a sign-in count against (issue 16, items 3 and 4).

Behind a trusted proxy the client is the right-most X-Forwarded-For address that is not a
proxy, read across every header line (a client can send its own line before the proxy's);
IPv6 clients are counted per /64, the block one phone gets on a mobile network.
"""

import dataclasses
import re

import pytest
from bs4 import BeautifulSoup
from starlette.testclient import TestClient

from brandvote import accounts, addresses
from brandvote.app import create_app
from brandvote.security import Tokens

from helpers import NOW, PASSWORD, SLUG, LiveServer, csrf_from, live_ballots

BALLOT = f"/c/{SLUG}/ballot"
PROXY = "10.0.0.7"


class Peer:
    """Sets the TCP peer as uvicorn does (scope["client"]), changeable between requests;
    TestClient's own peer is fixed per client."""

    def __init__(self, app, host: str):
        self.app, self.host = app, host

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            scope = {**scope, "client": (self.host, 40000)}
        await self.app(scope, receive, send)


def serve(settings, clock, peer=PROXY, **changes):
    app = Peer(create_app(dataclasses.replace(settings, **changes), now=clock), peer)
    return app, TestClient(app, base_url="https://testserver")


def forwarded(*lines):
    """One X-Forwarded-For header per line, in order, as a client and then the proxy wrote them."""
    return [("x-forwarded-for", line) for line in lines]


def vote(c, clock, headers=()):
    """A first visit and its ballot, as a new phone (fresh cookies)."""
    c.cookies.clear()
    page = c.get(f"/c/{SLUG}")
    assert page.status_code == 200
    clock.advance(seconds=3)
    slugs = re.findall(r'name="choice" value="([^"]+)"', page.text)
    return c.post(BALLOT, data={"csrf_token": csrf_from(page.text), "choice": slugs[:2]},
                  headers=list(headers), follow_redirects=False)


def ballots(db):
    return db.execute("select count(*) from ballots").fetchone()[0]


def sign_in(c, username, password="wrong password!", headers=()):
    token = csrf_from(c.get("/login").text)
    return c.post("/login", data={"username": username, "password": password, "csrf_token": token,
                                  "next": "/admin"}, headers=list(headers), follow_redirects=False)


# ------------------------------------------------------------ rules

@pytest.mark.parametrize("peer, lines, trusted, expected", [
    (PROXY, ["198.51.100.1", "203.0.113.7"], ("10.0.0.0/24",), "203.0.113.7"),   # client's line first
    (PROXY, ["198.51.100.1, 198.51.100.2", "203.0.113.7, 10.0.0.3"], ("10.0.0.0/24",), "203.0.113.7"),
    (PROXY, "198.51.100.1, 203.0.113.7", ("10.0.0.7",), "203.0.113.7"),       # one line, a single address
    (PROXY, ["203.0.113.7"], ("10.0.0.5/24",), "203.0.113.7"),                # host bits in the network
    (PROXY, ["198.51.100.1, not-an-ip", "203.0.113.7"], ("10.0.0.0/24",), "203.0.113.7"),  # junk left of it
    (PROXY, ["203.0.113.7, not-an-ip"], ("10.0.0.0/24",), PROXY),             # junk where the client is: the peer
    (PROXY, ["198.51.100.1", "unknown"], ("10.0.0.0/24",), PROXY),
    (PROXY, ["203.0.113.7:4711"], ("10.0.0.0/24",), "203.0.113.7"),           # a proxy that writes ports
    (PROXY, ["[2001:db8::1]:443"], ("10.0.0.0/24",), "2001:db8::1"),
    (PROXY, ["2001:DB8::1"], ("10.0.0.0/24",), "2001:db8::1"),
    (PROXY, ["10.0.0.2, 10.0.0.3"], ("10.0.0.0/24",), PROXY),                 # only proxies: the peer
    (PROXY, [], ("10.0.0.0/24",), PROXY),
    ("::ffff:10.0.0.7", ["203.0.113.7"], ("10.0.0.0/24",), "203.0.113.7"),   # a dual-stack socket's peer
    ("2001:db8:ff::1", ["203.0.113.7"], ("2001:db8:ff::/48",), "203.0.113.7"),
    ("203.0.113.9", ["198.51.100.1"], ("10.0.0.0/24",), "203.0.113.9"),      # an untrusted peer's header
    ("203.0.113.9", ["198.51.100.1"], (), "203.0.113.9"),
    (None, ["198.51.100.1"], ("10.0.0.0/24",), "unknown"),
])
def test_the_client_is_the_right_most_address_that_is_not_a_proxy(peer, lines, trusted, expected):
    assert addresses.client_ip(peer, lines, trusted) == expected


@pytest.mark.parametrize("address, network", [
    ("203.0.113.9", "203.0.113.9"),
    ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
    ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
    ("::ffff:203.0.113.9", "203.0.113.9"),          # IPv4-mapped: the IPv4 address
    ("fe80::1%eth0", "fe80::/64"),
    ("testclient", "testclient"),                   # not an address (a test peer): itself
    ("unknown", "unknown"),
])
def test_addresses_are_counted_per_network(address, network):
    assert addresses.network_of(address) == network


def test_the_network_key_is_the_same_across_one_64_and_differs_across_them():
    tokens = Tokens("s")
    assert tokens.ip_key("2001:db8:1:2::1") == tokens.ip_key("2001:db8:1:2:ffff::9")
    assert tokens.ip_key("2001:db8:1:2::1") != tokens.ip_key("2001:db8:1:3::1")
    assert tokens.ip_key("::ffff:203.0.113.9") == tokens.ip_key("203.0.113.9")
    assert tokens.ip_key("203.0.113.9") != tokens.ip_key("203.0.113.10")


# ------------------------------------------------------------ item 3: every X-Forwarded-For line

def test_a_client_written_forwarded_line_does_not_escape_the_ballot_limit(seeded_settings, campaign, clock, db):
    """Each phone writes its own X-Forwarded-For line before the one the proxy appends."""
    _, c = serve(seeded_settings, clock, ip_limit=3, trusted_proxies=("10.0.0.0/24",))
    with c:
        answers = [vote(c, clock, forwarded(f"198.51.100.{i}", "203.0.113.7")) for i in range(5)]
        other = vote(c, clock, forwarded("198.51.100.1", "203.0.113.8"))  # another client behind the proxy
    assert [r.status_code for r in answers] == [303, 303, 303, 429, 429]
    assert int(answers[3].headers["retry-after"]) > 0
    assert other.status_code == 303
    assert ballots(db) == 4


def test_the_sign_in_throttle_counts_the_client_behind_the_proxy(seeded_settings, db, clock):
    accounts.create_user(db, "editor", PASSWORD, "editor", NOW)
    _, c = serve(seeded_settings, clock, trusted_proxies=("10.0.0.7",))
    with c:
        for i in range(accounts.MAX_FAILURES_PER_IP):
            assert sign_in(c, f"user{i}", headers=forwarded(f"198.51.100.{i}", "203.0.113.7")).status_code == 400
        throttled = sign_in(c, "editor", PASSWORD, headers=forwarded("198.51.100.99", "203.0.113.7"))
        elsewhere = sign_in(c, "editor", PASSWORD, headers=forwarded("198.51.100.99", "203.0.113.8"))
    assert throttled.status_code == 429 and throttled.headers["retry-after"]
    assert elsewhere.status_code == 303  # the proxy's other clients are not locked out
    keys = {k for (k,) in db.execute("select ip_key from login_failures")}
    assert keys == {Tokens(seeded_settings.secret).ip_key("203.0.113.7")}


# ------------------------------------------------------------ item 4: IPv6 per /64

@pytest.mark.parametrize("via_proxy", [False, True])
def test_one_ipv6_64_shares_one_ballot_limit(seeded_settings, campaign, clock, db, via_proxy):
    """A phone can take a new address in its /64 for every ballot; the /64 is one network."""
    app, c = serve(seeded_settings, clock, ip_limit=3, trusted_proxies=("10.0.0.0/24",))

    def from_address(address):
        if via_proxy:
            return vote(c, clock, forwarded(address))
        app.host = address
        return vote(c, clock)

    with c:
        answers = [from_address(f"2001:db8:1:2:{i:x}::{i + 1:x}") for i in range(6)]
        others = [from_address("2001:db8:1:3::1"), from_address("2001:db8:2:2::1")]
    assert [r.status_code for r in answers] == [303, 303, 303, 429, 429, 429]
    assert all(int(r.headers["retry-after"]) > 0 for r in answers[3:])
    assert "上限" in BeautifulSoup(answers[3].text, "html.parser").find(attrs={"role": "alert"}).get_text()
    assert [r.status_code for r in others] == [303, 303]  # other /64s keep their own count
    assert ballots(db) == 5


def test_one_ipv6_64_shares_one_sign_in_throttle(seeded_settings, db, clock):
    accounts.create_user(db, "editor", PASSWORD, "editor", NOW)
    app, c = serve(seeded_settings, clock, peer="2001:db8:5:6::1")
    with c:
        for i in range(accounts.MAX_FAILURES_PER_IP):
            app.host = f"2001:db8:5:6:{i:x}::1"
            assert sign_in(c, f"user{i}").status_code == 400
        app.host = "2001:db8:5:6:ffff::2"
        throttled = sign_in(c, "editor", PASSWORD)
        app.host = "2001:db8:5:7::1"
        elsewhere = sign_in(c, "editor", PASSWORD)
    assert throttled.status_code == 429
    assert elsewhere.status_code == 303


def terms(html):
    return BeautifulSoup(html, "html.parser").select_one(".ballot__terms").get_text()


@pytest.mark.parametrize("cache_pages", [True, False])  # the crowd's fast path and the router's page
def test_the_ballot_page_says_the_limit_counts_a_network_and_ipv6_per_64(seeded_settings, campaign, clock,
                                                                      cache_pages):
    _, c = serve(seeded_settings, clock, ip_limit=7, cache_pages=cache_pages)
    with c:
        text = terms(c.get(f"/c/{SLUG}").text)
    assert "同一网络（如同一个单位或小区的 Wi-Fi；IPv6 按 /64 网段计）每小时最多接受 7 张选票" in text


@pytest.mark.parametrize("cache_pages", [True, False])
def test_no_limit_is_stated_when_the_limit_is_off(seeded_settings, campaign, clock, cache_pages):
    _, c = serve(seeded_settings, clock, ip_limit=0, cache_pages=cache_pages)
    with c:
        text = terms(c.get(f"/c/{SLUG}").text)
    assert "每台设备只能投一次票" in text and "每小时最多" not in text


def test_a_client_written_forwarded_line_does_not_escape_the_limit_on_a_real_server(tmp_path):
    """The same through uvicorn's own HTTP parser, which keeps each header line apart."""
    server = LiveServer(tmp_path, workers=1, env_extra={"BRANDVOTE_IP_LIMIT": "3",
                                                        "BRANDVOTE_TRUSTED_PROXIES": "127.0.0.0/8"})
    try:
        statuses, stored = live_ballots(server, [forwarded(f"198.51.100.{i}", "203.0.113.7") for i in range(4)])
    finally:
        server.stop()
    assert statuses == [303, 303, 303, 429]
    assert stored == 3
