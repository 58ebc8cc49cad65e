"""A forged Host header cannot reach a link: pages are cached across requests, so the first
client's Host must not end up in what the next clients get."""

import pytest

from helpers import BASE_URL, SLUG, page_links

pytestmark = pytest.mark.usefixtures("campaign")

EVIL = {"host": "evil.example"}


def public_pages(db) -> list[str]:
    brand = db.execute("select slug from brands where published = 1 order by id limit 1").fetchone()[0]
    lst = db.execute("select slug from lists order by id limit 1").fetchone()[0]
    return ["/", "/brands", f"/brands/{brand}", "/lists", f"/lists/{lst}", f"/c/{SLUG}",
            f"/c/{SLUG}/poster?ch=wechat", f"/c/{SLUG}/results"]


def test_a_forged_host_header_changes_no_link_in_a_cached_page(client, db):
    cache = client.app_state["page_cache"]
    for path in public_pages(db):
        forged = client.get(path, headers=EVIL)  # first: this request fills the cache
        hits = cache.hits
        honest = client.get(path)
        assert forged.status_code == honest.status_code == 200, path
        assert "evil.example" not in forged.text and "evil.example" not in honest.text, path
        assert page_links(forged.text) == page_links(honest.text), path
        assert page_links(honest.text), path
        # whole pages come from the cache; the ballot is kept as fragments around a per-visitor
        # slot, and the results page before the announcement is not cached
        if path not in (f"/c/{SLUG}", f"/c/{SLUG}/results"):
            assert cache.hits == hits + 1, path


def test_printed_links_keep_the_base_url_under_a_forged_host(client):
    poster = client.get(f"/c/{SLUG}/poster?ch=wechat", headers=EVIL).text
    assert f"{BASE_URL}/c/{SLUG}?ch=wechat" in poster
