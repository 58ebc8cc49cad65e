"""The JSON API through HTTP, checked against its own OpenAPI document."""

import jsonschema
import pytest


@pytest.fixture
def spec(client):
    r = client.get("/api/openapi.json")
    assert r.status_code == 200
    return r.json()


def check(spec, path, method, status, body):
    schema = spec["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
    # $refs point at #/components/schemas/…: give the schema the spec's components as its root.
    jsonschema.validate(body, {**schema, "components": spec["components"]})


def test_brands_api_filters_like_the_page(client, spec, bundled):
    r = client.get("/api/brands", params={"region": "上海", "kind": "brand", "page": "2"})
    assert r.status_code == 200
    body = r.json()
    check(spec, "/api/brands", "get", 200, body)
    expected = [b["slug"] for b in bundled["brands"] if b["region"] == "上海" and b["kind"] == "brand"]
    assert body["total"] == len(expected) == 30
    assert [b["slug"] for b in body["items"]] == expected[20:40]


def test_brand_api_has_facts_and_lists(client, spec, bundled):
    b = bundled["brands"][0]
    r = client.get(f"/api/brands/{b['slug']}")
    body = r.json()
    check(spec, "/api/brands/{slug}", "get", 200, body)
    assert body["name"] == b["name"] and body["figures"] == b["figures"]
    assert body["lists"], "an entry of the 30 brands is on that list"
    assert "\\u" not in r.content.decode("utf-8")


def test_lists_api(client, spec, bundled):
    body = client.get("/api/lists").json()
    check(spec, "/api/lists", "get", 200, body)
    assert [i["slug"] for i in body["items"]] == [i["slug"] for i in bundled["lists"]]
    first = bundled["lists"][0]
    detail = client.get(f"/api/lists/{first['slug']}").json()
    check(spec, "/api/lists/{slug}", "get", 200, detail)
    assert [i["slug"] for i in detail["items"]] == first["items"]


def test_campaign_api_shows_rules_and_candidates_but_never_counts(client, spec, bundled, seeded_settings):
    from brandvote import campaigns, clock, db as dbmod

    slug = bundled["campaigns"][0]["slug"]
    assert client.get(f"/api/campaigns/{slug}").status_code == 404, "a draft is not public"
    conn = dbmod.connect(seeded_settings.db_path)
    campaigns.schedule_demo(conn, slug, clock.utcnow())
    conn.close()
    body = client.get(f"/api/campaigns/{slug}").json()
    check(spec, "/api/campaigns/{slug}", "get", 200, body)
    assert body["status"] == "open" and body["max_choices"] == 10
    assert [c["slug"] for c in body["candidates"]] == bundled["campaigns"][0]["candidates"]
    listing = client.get("/api/campaigns").json()
    check(spec, "/api/campaigns", "get", 200, listing)
    assert [c["slug"] for c in listing["items"]] == [slug]


@pytest.mark.parametrize("path, status, code", [
    ("/api/brands/no-such", 404, "not_found"),
    ("/api/lists/no-such", 404, "not_found"),
    ("/api/brands?page=x", 400, "bad_query"),
    ("/api/brands?kind=poster", 400, "bad_query"),
    ("/api/nowhere", 404, "not_found"),
])
def test_api_errors_are_json_with_a_chinese_message(client, path, status, code):
    r = client.get(path)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["error"] == code
    assert any("\u4e00" <= ch <= "\u9fff" for ch in body["message"])


def test_openapi_document_lists_every_api_route(client, spec):
    from starlette.routing import Mount

    api_mount = next(r for r in client.app.routes if isinstance(r, Mount) and r.path == "/api")
    served = {"/api" + r.path for r in api_mount.routes if r.path != "/openapi.json"}
    assert served == set(spec["paths"])
