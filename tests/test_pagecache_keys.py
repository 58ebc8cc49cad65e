"""The page cache is keyed on what a page reads, so junk in the URL cannot fill it.

An attacker who appends a new junk parameter to every request (or a 60 KB query string)
must not make a new cache entry, a new render, or push the pages the crowd reads out of
the cache. Renders are counted by the cache itself (PageCache.renders).
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from bs4 import BeautifulSoup
from starlette.testclient import TestClient

from brandvote.web import pagecache
from brandvote.app import create_app

from helpers import NOW, FakeClock


@pytest.fixture
def client(seeded_settings, db):
    with TestClient(create_app(seeded_settings, now=FakeClock(NOW)), base_url="https://testserver",
                    raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def cache(client) -> pagecache.PageCache:
    return client.app_state["page_cache"]


def popular(client, cache, path="/lists"):
    """The page the crowd reads: asked twice, so the cache holds it as a page that is read."""
    client.get(path)
    client.get(path)
    return cache.renders


def test_junk_parameters_make_one_entry_and_leave_the_popular_page_cached(client, cache):
    cache.max_entries = 8  # small, so that 100 entries would push the popular page out
    renders = popular(client, cache)
    pages = [client.get(f"/brands?junk{i}={'x' * 50}&utm_source=n{i}") for i in range(100)]
    assert {p.status_code for p in pages} == {200}
    assert len({p.text for p in pages}) == 1
    assert cache.entries_for("/brands") == 1
    assert cache.renders == renders + 1  # /brands once; the junk is not part of the key
    client.get("/lists")
    assert cache.renders == renders + 1, "the popular page was pushed out and rendered again"


def test_a_flood_of_distinct_searches_does_not_push_the_popular_page_out(client, cache):
    """Searches are legitimate parameters, each its own page; a stream of one-off searches
    churns only the entries read once, never a page the crowd reads again and again."""
    cache.max_entries = 8
    renders = popular(client, cache)
    for i in range(40):
        assert client.get("/brands", params={"q": f"协商{i}"}).status_code == 200
    assert len(cache) <= 8
    client.get("/lists")
    assert cache.renders == renders + 40


def test_a_legit_parameter_still_gets_its_own_page(client, cache):
    first = client.get("/brands", params={"q": "协商"})
    second = client.get("/brands", params={"q": "协商", "page": "2"})
    plain = client.get("/brands")
    assert first.status_code == second.status_code == plain.status_code == 200
    assert len({first.text, second.text, plain.text}) == 3
    assert cache.entries_for("/brands") == 3
    renders = cache.renders
    again = client.get("/brands", params={"q": "协商", "junk": "1", "page": "2"})
    escaped = client.get("/brands?%71=%E5%8D%8F%E5%95%86&%70age=2&utm=x")  # %71 is q, as the page reads it
    assert again.text == escaped.text == second.text
    assert cache.renders == renders + 1 and cache.entries_for("/brands") == 4


def assert_chinese_refusal(r, status, words):
    assert r.status_code == status
    assert r.headers["cache-control"] == "no-store"
    alert = BeautifulSoup(r.text, "html.parser").find(attrs={"role": "alert"}).get_text(strip=True)
    assert words in alert


@pytest.mark.parametrize("path", ["/brands", "/", "/lists", "/c/shanghai-2022-highlights", "/login"])
def test_a_60_kb_query_string_is_refused_and_not_cached(client, cache, path):
    before = (len(cache), cache.renders)
    r = client.get(f"{path}?q={'x' * 60_000}")
    assert_chinese_refusal(r, 414, "网址过长")
    assert (len(cache), cache.renders) == before


def test_too_many_parameters_are_refused(client, cache):
    query = "&".join(f"p{i}=1" for i in range(pagecache.MAX_QUERY_PARAMS + 1))
    assert_chinese_refusal(client.get(f"/brands?{query}"), 400, "查询参数过多")
    assert len(cache) == 0
    ok = "&".join(f"p{i}=1" for i in range(pagecache.MAX_QUERY_PARAMS))
    assert client.get(f"/brands?{ok}").status_code == 200


def test_the_api_refuses_in_json(client):
    r = client.get(f"/api/brands?q={'x' * 60_000}")
    assert r.status_code == 414 and r.json()["error"] == "uri_too_long" and "网址过长" in r.json()["message"]


def test_the_longest_search_the_catalog_allows_still_fits(client):
    """500 Chinese characters, percent-encoded (9 bytes each), with every other filter."""
    from brandvote import catalog

    q = "协" * catalog.MAX_QUERY_CHARS
    url = f"/brands?q={quote(q)}&region={quote('上海' * 10)}&kind=brand&list={'a' * 80}&page=1"
    assert len(url.split("?", 1)[1]) <= pagecache.MAX_QUERY_BYTES
    assert client.get(url).status_code == 200


def test_a_post_with_a_huge_query_is_refused_too(client, db):
    r = client.post(f"/login?next={'x' * 60_000}", data={"username": "a", "password": "b"})
    assert r.status_code == 414
