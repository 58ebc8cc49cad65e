"""Catalog pages and errors through HTTP, as a reader's browser sees them."""

import pytest
from bs4 import BeautifulSoup

from brandvote import campaigns
from brandvote.app import create_app
from starlette.testclient import TestClient

from helpers import SLUG

SECURITY_HEADERS = {
    "content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy",
}


def text_of(response):
    return BeautifulSoup(response.text, "html.parser").get_text(" ", strip=True)


def test_every_entry_renders_with_its_facts_and_source(client, bundled):
    for b in bundled["brands"]:
        r = client.get(f"/brands/{b['slug']}")
        assert r.status_code == 200, b["slug"]
        text = text_of(r)
        assert b["name"] in text and b["organizer"] in text
        assert b["sources"][0]["title"] in text
        for f in b["figures"]:
            assert f["label"] in text, (b["slug"], f)
        if b.get("year_founded"):
            assert f"{b['year_founded']}年" in text


def test_entry_page_lists_the_lists_it_is_on(client, bundled):
    for item in bundled["lists"]:
        slug = item["items"][0]
        soup = BeautifulSoup(client.get(f"/brands/{slug}").text, "html.parser")
        assert soup.find("a", href=f"/lists/{item['slug']}"), (slug, item["slug"])


def test_every_list_renders_in_order(client, bundled):
    names = {b["slug"]: b["name"] for b in bundled["brands"]}
    for item in bundled["lists"]:
        r = client.get(f"/lists/{item['slug']}")
        assert r.status_code == 200
        soup = BeautifulSoup(r.text, "html.parser")
        titles = [h.get_text(strip=True) for h in soup.select("ol.ranked .card__title")]
        assert titles == [names[s] for s in item["items"]]


def test_home_shows_open_campaign_first_then_lists(client, seeded_settings):
    from brandvote import clock, db as dbmod

    conn = dbmod.connect(seeded_settings.db_path)
    demo = conn.execute("select slug, title from campaigns order by id limit 1").fetchone()
    campaigns.schedule_demo(conn, demo[0], clock.utcnow())
    conn.close()
    r = client.get("/")
    assert r.status_code == 200
    soup = BeautifulSoup(r.text, "html.parser")
    first_section = soup.find("main").find("section")
    assert "评选" in first_section.get_text() and demo[1] in first_section.get_text()
    assert "投票进行中" in first_section.get_text()
    assert soup.select("ul.list-links a[href^='/lists/']")


def test_draft_campaigns_are_not_advertised(client, bundled):
    r = client.get("/")
    assert bundled["campaigns"][0]["title"] not in r.text


def test_a_draft_campaign_is_not_found(client):
    assert client.get(f"/c/{SLUG}").status_code == 404
    assert client.get("/c/no-such-campaign").status_code == 404


def test_search_page_finds_by_two_characters(client):
    r = client.get("/brands", params={"q": "读书"})
    assert r.status_code == 200
    assert "国是书院" in text_of(r)
    assert "与“读书”相关" in text_of(r)


def test_filters_combine_on_the_page(client, bundled):
    r = client.get("/brands", params={"region": "北京", "kind": "case"})
    soup = BeautifulSoup(r.text, "html.parser")
    shown = [h.get_text(strip=True) for h in soup.select(".card__title")]
    expected = [b["name"] for b in bundled["brands"] if b["region"] == "北京" and b["kind"] == "case"][:20]
    assert shown == expected
    assert soup.find("option", value="北京", selected=True)


def test_pages_link_forward_and_keep_filters(client):
    r = client.get("/brands", params={"region": "上海"})
    soup = BeautifulSoup(r.text, "html.parser")
    nxt = soup.find("a", rel="next")
    assert nxt and "region=" in nxt["href"] and "page=2" in nxt["href"]
    assert client.get(nxt["href"]).status_code == 200


def test_a_page_beyond_the_end_is_explained(client):
    r = client.get("/brands", params={"page": "500"})
    assert r.status_code == 200
    assert "没有内容" in text_of(r)


def test_unknown_region_is_an_empty_explained_result(client):
    r = client.get("/brands", params={"region": "火星"})
    assert r.status_code == 200
    assert "没有找到符合条件的条目" in text_of(r)


@pytest.mark.parametrize("params, message", [
    ({"page": "abc"}, "页码"), ({"page": "0"}, "页码"), ({"kind": "poster"}, "类别"), ({"q": "长" * 501}, "过长"),
])
def test_bad_parameters_get_a_chinese_400(client, params, message):
    r = client.get("/brands", params=params)
    assert r.status_code == 400
    assert message in text_of(r)


def test_a_500_character_query_is_answered(client):
    r = client.get("/brands", params={"q": "协" * 500})
    assert r.status_code == 200


def test_markup_in_a_query_is_escaped(client):
    r = client.get("/brands", params={"q": "<script>alert(1)</script>"})
    assert r.status_code == 200
    assert "<script>alert(1)</script>" not in r.text
    assert "&lt;script&gt;" in r.text


def test_unknown_slug_is_a_chinese_404(client):
    for path in ("/brands/no-such-entry", "/lists/no-such-list", "/nowhere"):
        r = client.get(path)
        assert r.status_code == 404
        assert "没有找到" in text_of(r)


def test_wrong_method_is_a_chinese_405(client):
    r = client.post("/brands", data={"q": "x"})
    assert r.status_code == 405
    assert "不支持" in text_of(r)


def test_declared_oversize_body_is_a_chinese_413(client):
    r = client.post("/brands", content=b"x" * (2 * 1024 * 1024),
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    assert "过大" in text_of(r)


def test_a_server_error_is_a_chinese_500_with_headers(seeded_settings):
    with TestClient(create_app(seeded_settings), base_url="https://testserver",
                    raise_server_exceptions=False) as c:
        from brandvote import db as dbmod

        conn = dbmod.connect(seeded_settings.db_path)
        conn.execute("drop table list_items")
        conn.conn.commit()
        r = c.get("/lists")
    assert r.status_code == 500
    assert "服务暂时出错" in text_of(r)
    assert "Traceback" not in r.text
    assert SECURITY_HEADERS <= set(r.headers)


@pytest.mark.parametrize("path", [
    "/", "/brands", "/brands?q=读书", "/lists", "/brands/no-such", "/api/brands", "/api/brands/no-such",
    "/healthz", "/api/openapi.json",
])
def test_every_response_carries_the_security_headers(client, path):
    r = client.get(path)
    assert SECURITY_HEADERS <= set(r.headers), path
    csp = r.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"


def test_pages_have_no_inline_style_or_script(client, bundled):
    for path in ["/", "/brands", "/lists", f"/brands/{bundled['brands'][0]['slug']}",
                 f"/lists/{bundled['lists'][0]['slug']}", "/nowhere"]:
        soup = BeautifulSoup(client.get(path).text, "html.parser")
        assert not soup.find(style=True), path
        assert not soup.find("style"), path
        assert all(s.get("src") for s in soup.find_all("script")), path


def test_static_css_is_versioned_and_cached(client):
    soup = BeautifulSoup(client.get("/").text, "html.parser")
    href = soup.find("link", rel="stylesheet")["href"]
    assert "?v=" in href
    r = client.get(href)
    assert r.status_code == 200 and "immutable" in r.headers["cache-control"]


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
