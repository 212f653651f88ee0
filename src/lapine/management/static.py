"""The web UI: one page and its script and style, shipped inside the package (no CDN)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).parent / "static"
# The UI is small and changes with the package: never let a browser keep an old copy.
NO_CACHE = {"Cache-Control": "no-cache"}


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers=NO_CACHE)


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/", index),
        web.static("/static", STATIC_DIR, append_version=False),
    ]
