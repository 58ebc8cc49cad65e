"""Domain errors: each carries a code for the API and a message in Chinese for pages.

Rules modules raise these; handlers turn them into a status and a page or JSON body.
"""

from __future__ import annotations


class BrandvoteError(Exception):
    status = 400
    code = "bad_request"
    message = "请求有误。"

    def __init__(self, message: str | None = None, *, code: str | None = None, status: int | None = None):
        if message is not None:
            self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        super().__init__(self.message)


class NotFound(BrandvoteError):
    status = 404
    code = "not_found"
    message = "没有找到这个页面。"


class BadQuery(BrandvoteError):
    status = 400
    code = "bad_query"
    message = "查询参数有误。"


class InvalidCatalog(BrandvoteError):
    """A brands.json that breaks the schema or refers to missing entries; nothing is changed."""

    status = 422
    code = "invalid_catalog"

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("数据文件有误，未做任何修改：\n" + "\n".join(problems))
