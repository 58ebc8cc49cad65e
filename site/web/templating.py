"""The one Jinja environment: autoescape on, every filter and global in one place."""

from __future__ import annotations

import hashlib
from collections import Counter
from functools import lru_cache
from importlib import resources
from pathlib import Path
from urllib.parse import urlencode

import jinja2
from starlette.templating import Jinja2Templates

from .. import clock
from ..campaigns import STATUS_LABELS

PACKAGE_DIR = Path(str(resources.files("brandvote")))


@lru_cache(maxsize=None)
def _static_version(path: str) -> str:
    data = (PACKAGE_DIR / "static" / path).read_bytes()
    return hashlib.sha256(data).hexdigest()[:10]


def number(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 10000 else str(value)


class CountedTemplate(jinja2.Template):
    """A template that counts its renders in `environment.renders` (a Counter by template
    name): what a test asks to know how many pages or fragments a cache let through. An
    {% include %} is part of its page's render and is not counted apart. Unlocked: two
    threads rendering at once could lose a count; the tests that count render one at a time."""

    def render(self, *args, **kwargs) -> str:
        self.environment.renders[self.name] += 1
        return super().render(*args, **kwargs)

    def generate(self, *args, **kwargs):
        self.environment.renders[self.name] += 1
        return super().generate(*args, **kwargs)


def make_templates(settings) -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PACKAGE_DIR / "templates")),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.template_class = CountedTemplate
    env.renders = Counter()
    env.globals["static_url"] = lambda path: f"/static/{path}?v={_static_version(path)}"
    env.globals["status_labels"] = STATUS_LABELS
    env.globals["base_url"] = settings.base_url
    env.filters["localtime"] = lambda text: clock.local_text(clock.from_db(text) if isinstance(text, str) else text)
    env.filters["number"] = number
    env.filters["query"] = lambda params: urlencode(params)
    return Jinja2Templates(env=env)


def add_links(templates: Jinja2Templates, links) -> None:
    """`path_for(name, **params)` in every template for the site's own links, `site_url(…)`
    for a URL that is printed or shared (see links.py: never the request's Host)."""
    templates.env.globals["path_for"] = links.path
    templates.env.globals["site_url"] = links.url
