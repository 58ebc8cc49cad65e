"""What the public routes share: response headers and the campaign of the path."""

from __future__ import annotations

from starlette.requests import Request

from .. import tally

NO_STORE = {"Cache-Control": "no-store"}


def public_campaign(request: Request) -> dict:
    """The campaign of /c/{slug}/…: settled, never a draft (tally.public_campaign)."""
    return tally.public_campaign(request.state.store.db(), request.path_params["slug"], request.state.now())
