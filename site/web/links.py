"""Links from route names: a path for the site's own pages, an absolute URL for whatever
leaves the site (QR codes, voter-code CSVs and slips, the API's `url` fields, share links,
the command line's printout).

Absolute URLs start with settings.base_url, never the request's Host header: pages are
cached across requests and some are rendered outside one, so a link must not carry the
Host of whichever client came first, and a QR code must not encode a forged one.
"""

from __future__ import annotations


class Links:
    def __init__(self, base_url: str, router):
        self.base_url = base_url.rstrip("/")
        self._router = router

    def path(self, name: str, /, **params) -> str:
        return str(self._router.url_path_for(name, **params))

    def url(self, name: str, /, **params) -> str:
        return self.base_url + self.path(name, **params)
