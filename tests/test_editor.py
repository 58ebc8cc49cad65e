"""The editor's console through HTTP: edits reach the public page, every save is a revision."""

import json
import re

import pytest
from bs4 import BeautifulSoup
from starlette.testclient import TestClient

from brandvote import accounts, catalog, seed
from brandvote.app import create_app

from helpers import NOW, PASSWORD, login, staff_csrf

FORM = {
    "slug": "xin-pinpai", "name": "新的工作品牌", "kind": "brand", "organizer": "上海市政协某委员会",
    "region": "上海", "district": "", "year_founded": "2019",
    "summary": "这是一个用于测试的条目摘要，说明它做了什么以及为什么重要，字数足够。",
    "tags": "协商、测试", "figures": "线上微课 | 54 | 期\n参与人次 | 1.5 | 万", "sources": "测试文章 | 测试报 | 2023-01-05",
}


@pytest.fixture
def editor(seeded_settings, db, clock):
    accounts.create_user(db, "ed", PASSWORD, "editor", NOW)
    with TestClient(create_app(seeded_settings, now=clock), base_url="https://testserver") as c:
        assert login(c, "ed").status_code == 303
        c.token = staff_csrf(c)
        yield c


def post(c, path, data, **kw):
    return c.post(path, data={"csrf_token": c.token, **data}, follow_redirects=False, **kw)


def errors_of(response):
    soup = BeautifulSoup(response.text, "html.parser")
    return {p["id"][4:]: p.get_text(strip=True) for p in soup.select("p.field-error")}


def test_create_then_publish_then_public(editor, db):
    r = post(editor, "/admin/brands/new", {**FORM, "action": "save"})
    assert r.status_code == 303 and r.headers["location"] == "/admin/brands/xin-pinpai/edit?saved=1"
    assert editor.get("/brands/xin-pinpai").status_code == 404, "new entries start unpublished"
    post(editor, "/admin/brands/xin-pinpai/publish", {"published": "1"})
    page = editor.get("/brands/xin-pinpai")
    assert page.status_code == 200 and "新的工作品牌" in page.text and "线上微课" in page.text
    brand = catalog.brand_by_slug(db, "xin-pinpai")
    assert brand["figures"] == [{"label": "线上微课", "value": 54, "unit": "期"},
                                {"label": "参与人次", "value": 1.5, "unit": "万"}]
    assert brand["sources"] == [{"title": "测试文章", "publisher": "测试报", "date": "2023-01-05"}]
    assert brand["year_founded"] == 2019 and brand["tags"] == ["协商", "测试"]


def test_an_edit_shows_on_the_public_page_at_once(editor, bundled):
    slug = bundled["brands"][0]["slug"]
    form = BeautifulSoup(editor.get(f"/admin/brands/{slug}/edit").text, "html.parser")
    values = {i["name"]: i.get("value", "") for i in form.select("form.staff-form input") if i.get("name")}
    values.update({t["name"]: t.get_text() for t in form.select("form.staff-form textarea")})
    values["kind"] = bundled["brands"][0]["kind"]
    values["summary"] = "改写后的摘要：这一条目的说明已经由编辑更正过，内容更准确。"
    assert post(editor, f"/admin/brands/{slug}/edit", {**values, "action": "save"}).status_code == 303
    assert "改写后的摘要" in editor.get(f"/brands/{slug}").text


def test_validation_messages_sit_beside_the_fields_and_input_is_kept(editor, db):
    before = db.execute("select count(*) from brands").fetchone()[0]
    bad = {**FORM, "slug": "Bad Slug!", "name": "", "summary": "太短", "year_founded": "二〇一九",
           "figures": "没有数值的一行", "action": "save"}
    r = post(editor, "/admin/brands/new", bad)
    assert r.status_code == 422
    errors = errors_of(r)
    assert {"slug", "year_founded", "figures"} <= set(errors)
    assert "小写英文字母" in errors["slug"] and "第 1 行" in errors["figures"]
    soup = BeautifulSoup(r.text, "html.parser")
    assert soup.find("textarea", attrs={"name": "figures"}).get_text() == "没有数值的一行"
    assert soup.find("input", attrs={"name": "organizer"})["value"] == FORM["organizer"]
    assert db.execute("select count(*) from brands").fetchone()[0] == before
    r2 = post(editor, "/admin/brands/new", {**FORM, "summary": "太短", "action": "save"})
    assert "太短：至少 20 个字" in errors_of(r2)["summary"]


def test_a_taken_slug_is_refused(editor, bundled):
    r = post(editor, "/admin/brands/new", {**FORM, "slug": bundled["brands"][0]["slug"], "action": "save"})
    assert r.status_code == 422 and "已被使用" in errors_of(r)["slug"]


def test_preview_renders_without_saving(editor, db):
    r = post(editor, "/admin/brands/new", {**FORM, "action": "preview"})
    assert r.status_code == 200 and "预览（尚未保存）" in r.text and "线上微课" in r.text
    assert db.execute("select count(*) from brands where slug = 'xin-pinpai'").fetchone()[0] == 0


def test_only_the_form_fields_are_assigned(editor, db, bundled):
    slug = bundled["brands"][1]["slug"]
    before = db.execute("select id, created_at, published, deleted_at from brands where slug = ?", [slug]).fetchone()
    data = {**FORM, "slug": "renamed", "id": "999", "created_at": "1999-01-01", "published": "0",
            "deleted_at": "2020-01-01", "action": "save"}
    assert post(editor, f"/admin/brands/{slug}/edit", data).status_code == 303
    after = db.execute("select id, created_at, published, deleted_at from brands where slug = ?", [slug]).fetchone()
    assert after == before
    assert db.execute("select count(*) from brands where slug = 'renamed'").fetchone()[0] == 0


def test_markup_and_javascript_links_render_inert(editor, db):
    hostile = {**FORM, "name": "<script>alert(1)</script>名称",
               "summary": '<a href="javascript:alert(1)">点我</a><img src=x onerror=alert(1)>摘要文字足够长足够长足够长',
               "sources": 'javascript:alert(1) | <b>报</b> | 2023', "action": "save"}
    assert post(editor, "/admin/brands/new", hostile).status_code == 303
    post(editor, "/admin/brands/xin-pinpai/publish", {"published": "1"})
    for path in ("/brands/xin-pinpai", "/brands?q=xin", "/admin/brands/xin-pinpai/edit", "/admin/brands/xin-pinpai/history"):
        soup = BeautifulSoup(editor.get(path).text, "html.parser")
        assert not soup.find("script", src=False), path
        assert not soup.find("a", href=re.compile("^javascript:", re.I)), path
        assert not soup.find(attrs={"onerror": True}), path
        assert not soup.find("b", string="报"), path


def test_every_save_is_a_revision_with_a_readable_diff_and_restore(editor, db):
    post(editor, "/admin/brands/new", {**FORM, "action": "save"})
    post(editor, "/admin/brands/xin-pinpai/edit", {**FORM, "summary": FORM["summary"].replace("测试", "示范"), "action": "save"})
    revs = db.execute("select actor, action from brand_revisions where brand_id = (select id from brands where slug = 'xin-pinpai') order by id").fetchall()
    assert revs == [("ed", "create"), ("ed", "edit")]
    history = BeautifulSoup(editor.get("/admin/brands/xin-pinpai/history").text, "html.parser")
    newest = history.select("article.revision")[0]
    assert newest.find("del").get_text() == "测试" and newest.find("ins").get_text() == "示范"
    assert "ed" in newest.get_text()
    # restore the first version
    first_rev = db.execute("select min(id) from brand_revisions where brand_id = (select id from brands where slug = 'xin-pinpai')").fetchone()[0]
    r = post(editor, f"/admin/brands/xin-pinpai/restore/{first_rev}", {})
    assert r.status_code == 303
    summary = db.execute("select summary from brands where slug = 'xin-pinpai'").fetchone()[0]
    assert summary == FORM["summary"]
    assert db.execute("select action from brand_revisions order by id desc limit 1").fetchone()[0] == f"restore:{first_rev}"


def test_delete_needs_confirmation_is_soft_and_restorable(editor, db):
    post(editor, "/admin/brands/new", {**FORM, "action": "save"})
    post(editor, "/admin/brands/xin-pinpai/publish", {"published": "1"})
    assert post(editor, "/admin/brands/xin-pinpai/delete", {}).status_code == 422
    assert post(editor, "/admin/brands/xin-pinpai/delete", {"confirm": "yes"}).status_code == 303
    assert editor.get("/brands/xin-pinpai").status_code == 404
    assert db.execute("select count(*) from brands where slug = 'xin-pinpai'").fetchone()[0] == 1
    rev = db.execute("select id from brand_revisions where action = 'publish' order by id desc").fetchone()[0]
    post(editor, f"/admin/brands/xin-pinpai/restore/{rev}", {})
    assert editor.get("/brands/xin-pinpai").status_code == 200


def test_a_campaign_candidate_cannot_be_deleted(editor, bundled):
    slug = bundled["campaigns"][0]["candidates"][0]
    r = post(editor, f"/admin/brands/{slug}/delete", {"confirm": "yes"})
    assert r.status_code == 409 and "候选项目" in r.text
    assert editor.get(f"/brands/{slug}").status_code == 200


def test_import_of_a_broken_file_changes_nothing(editor, db, bundled):
    broken = json.loads(json.dumps(bundled))
    broken["brands"][2]["kind"] = "poster"
    broken["brands"][0]["name"] = "不应生效"
    before = db.execute("select count(*), group_concat(name) from brands").fetchone()
    r = post(editor, "/admin/import", {}, files={"file": ("brands.json", json.dumps(broken).encode(), "application/json")})
    assert r.status_code == 422 and "$.brands[2].kind" in r.text
    not_json = post(editor, "/admin/import", {}, files={"file": ("x.json", b"{oops", "application/json")})
    assert not_json.status_code == 422
    assert db.execute("select count(*), group_concat(name) from brands").fetchone() == before


def test_import_previews_then_applies(editor, db, bundled):
    doc = json.loads(json.dumps(bundled))
    doc["brands"][0]["summary"] += "（导入时修改）"
    r = post(editor, "/admin/import", {}, files={"file": ("brands.json", json.dumps(doc).encode(), "application/json")})
    assert r.status_code == 200 and "修改 1" in r.text
    assert "导入时修改" not in db.execute("select summary from brands where slug = ?", [doc["brands"][0]["slug"]]).fetchone()[0]
    apply_path = re.search(r'action="(/admin/import/[^"]+/apply)"', r.text).group(1)
    done = post(editor, apply_path, {})
    assert done.status_code == 200 and "已导入" in done.text
    assert "导入时修改" in db.execute("select summary from brands where slug = ?", [doc["brands"][0]["slug"]]).fetchone()[0]
    assert post(editor, apply_path, {}).status_code == 404, "an import applies once"


def test_export_round_trips(editor, bundled):
    r = editor.get("/admin/export")
    assert "attachment" in r.headers["content-disposition"]
    doc = r.json()
    assert seed.validate_document(doc) == []
    assert [b["slug"] for b in doc["brands"]] == [b["slug"] for b in bundled["brands"]]
