"""The editor's console under /admin/brands: parse the form, call editing/catalog, render."""

from __future__ import annotations


from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .. import catalog, editing, seed
from ..errors import BrandvoteError, InvalidBrand, InvalidCatalog, NotFound
from .staff import render, requires

SEE_OTHER = {"status_code": 303, "headers": {"Cache-Control": "no-store"}}


def _ctx(request: Request) -> tuple:
    return request.state.store.db(), request.state.now(), request.state.user["username"]


def _edit_page(request: Request, values: dict, *, creating: bool, errors=None, preview=None, message=None,
               status_code=200) -> Response:
    return render(request, "admin/brands/edit.html", {
        "values": values, "creating": creating, "errors": errors or {}, "preview": preview, "message": message,
        "kinds": catalog.KINDS, "regions": catalog.regions(request.state.store.db()),
    }, status_code)


@requires("editor")
def index(request: Request):
    q = request.query_params.get("q", "").strip()[:100]
    return render(request, "admin/brands/index.html", {
        "brands": editing.list_for_editors(request.state.store.db(), q), "q": q})


@requires("editor")
def new_form(request: Request):
    blank, _ = editing.brand_from_form({"kind": "brand", "region": "上海"})
    return _edit_page(request, editing.form_values(blank), creating=True)


def _save(request: Request, existing_slug: str | None) -> Response:
    db, now, actor = _ctx(request)
    form = request.state.form
    brand, errors = editing.brand_from_form(form, slug=existing_slug)
    creating = existing_slug is None
    values = {**editing.form_values(brand), **{k: form.get(k) for k in ("year_founded", "figures", "sources", "tags")
                                                 if isinstance(form.get(k), str)}}
    values["published"] = bool(editing.editable_brand(db, existing_slug)["published"]) if existing_slug else False
    errors = {**editing.validate_brand(brand), **errors}  # every problem at once, parse errors first
    if errors:
        return _edit_page(request, values, creating=creating, errors=errors, status_code=422,
                          message="请修改标出的字段后再保存。")
    if form.get("action") == "preview":
        return _edit_page(request, values, creating=creating, preview={**brand, "kind_label": catalog.KINDS[brand["kind"]]})
    try:
        saved = editing.save_brand(db, brand, now, actor, existing_slug=existing_slug)
    except InvalidBrand as exc:
        return _edit_page(request, values, creating=creating, errors=exc.errors, status_code=422,
                          message=exc.message)
    return RedirectResponse(f"{request.app.url_path_for('editor:edit_form', slug=saved['slug'])}?saved=1", **SEE_OTHER)


@requires("editor")
def new_post(request: Request):
    return _save(request, None)


@requires("editor")
def edit_form(request: Request):
    brand = editing.editable_brand(request.state.store.db(), request.path_params["slug"])
    message = "已保存。公开页面已更新。" if request.query_params.get("saved") else None
    return _edit_page(request, editing.form_values(brand), creating=False, message=message)


@requires("editor")
def edit_post(request: Request):
    editing.editable_brand(request.state.store.db(), request.path_params["slug"])  # 404 before anything
    return _save(request, request.path_params["slug"])


@requires("editor")
def publish(request: Request):
    db, now, actor = _ctx(request)
    slug = request.path_params["slug"]
    editing.set_published(db, slug, request.state.form.get("published") == "1", now, actor)
    return RedirectResponse(f"{request.app.url_path_for('editor:edit_form', slug=slug)}?saved=1", **SEE_OTHER)


@requires("editor")
def delete_confirm(request: Request):
    brand = editing.editable_brand(request.state.store.db(), request.path_params["slug"])
    return render(request, "admin/brands/delete.html", {"brand": brand, "message": None})


@requires("editor")
def delete(request: Request):
    db, now, actor = _ctx(request)
    slug = request.path_params["slug"]
    brand = editing.editable_brand(db, slug)
    if request.state.form.get("confirm") != "yes":
        return render(request, "admin/brands/delete.html", {"brand": brand, "message": "请勾选确认后再删除。"}, 422)
    try:
        editing.delete_brand(db, slug, now, actor)
    except BrandvoteError as exc:
        return render(request, "admin/brands/delete.html", {"brand": brand, "message": exc.message}, exc.status)
    return RedirectResponse(f"{request.app.url_path_for('editor:brands')}?deleted={slug}", **SEE_OTHER)


@requires("editor")
def history(request: Request):
    db = request.state.store.db()
    slug = request.path_params["slug"]
    return render(request, "admin/brands/history.html", {"slug": slug, "revisions": editing.revisions(db, slug),
                                                         "action_label": editing.action_label,
                                                         "current": editing.stored_brand(db, slug, include_deleted=True)})


@requires("editor")
def restore(request: Request):
    db, now, actor = _ctx(request)
    rev = request.path_params["rev"]
    if not rev.isdigit():
        raise NotFound("没有找到这个版本。")
    editing.restore_revision(db, request.path_params["slug"], int(rev), now, actor)
    history_path = request.app.url_path_for("editor:history", slug=request.path_params["slug"])
    return RedirectResponse(f"{history_path}?restored={rev}", **SEE_OTHER)


# ---------------------------------------------------------------- import / export

def _manages_campaigns(request: Request) -> bool:
    """Campaigns are the organizer's: an editor's import may carry them only unchanged."""
    return request.state.user["role"] in ("organizer", "admin")


@requires("editor")
def import_form(request: Request):
    return render(request, "admin/brands/import.html", {"report": None, "problems": None, "import_id": None})


@requires("editor")
def import_upload(request: Request):
    """Check the file like `brandvote load`, then show what would change; nothing is applied yet."""
    db, now, actor = _ctx(request)
    upload = request.state.form.get("file")
    problems, report, import_id, status = None, None, None, 200
    try:
        if upload is None or isinstance(upload, str):
            raise InvalidCatalog(["$: 请选择一个 JSON 文件。"])
        raw = upload.file.read()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidCatalog([f"$: 不是有效的 UTF-8 JSON 文件：{exc}"]) from exc
        doc = seed.parse_document(text)
        report, import_id = editing.stage_import(db, doc, now, actor, _manages_campaigns(request))
    except InvalidCatalog as exc:
        problems, status = exc.problems, exc.status
    return render(request, "admin/brands/import.html", {"report": report, "problems": problems,
                                                        "import_id": import_id}, status if problems else 200)


@requires("editor")
def import_apply(request: Request):
    db, now, actor = _ctx(request)
    try:
        report = editing.apply_import(db, request.path_params["import_id"], now, actor,
                                      _manages_campaigns(request))
    except InvalidCatalog as exc:
        return render(request, "admin/brands/import.html", {"report": None, "problems": exc.problems,
                                                            "import_id": None}, exc.status)
    return render(request, "admin/brands/import.html", {"report": report, "problems": None, "import_id": None,
                                                        "applied": True})


@requires("editor")
def export(request: Request):
    text = seed.dump(seed.export_document(request.state.store.db()))
    return Response(text, media_type="application/json; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="brands.json"'})


routes = [
    Route("/admin/brands", index, name="editor:brands"),
    Route("/admin/brands/new", new_form, methods=["GET"], name="editor:new"),
    Route("/admin/brands/new", new_post, methods=["POST"], name="editor:create"),
    Route("/admin/brands/{slug}/edit", edit_form, methods=["GET"], name="editor:edit_form"),
    Route("/admin/brands/{slug}/edit", edit_post, methods=["POST"], name="editor:save"),
    Route("/admin/brands/{slug}/publish", publish, methods=["POST"], name="editor:publish"),
    Route("/admin/brands/{slug}/delete", delete_confirm, methods=["GET"], name="editor:delete_confirm"),
    Route("/admin/brands/{slug}/delete", delete, methods=["POST"], name="editor:delete"),
    Route("/admin/brands/{slug}/history", history, name="editor:history"),
    Route("/admin/brands/{slug}/restore/{rev}", restore, methods=["POST"], name="editor:restore"),
    Route("/admin/import", import_form, methods=["GET"], name="editor:import_form"),
    Route("/admin/import", import_upload, methods=["POST"], name="editor:import_upload"),
    Route("/admin/import/{import_id}/apply", import_apply, methods=["POST"], name="editor:import_apply"),
    Route("/admin/export", export, name="editor:export"),
]
