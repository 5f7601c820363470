"""The ASGI app: ``create_app`` wires the routes, the security middleware and the error pages."""

from __future__ import annotations

import getpass
import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from atif.errors import AtifError, NotFoundError, StoreLockedError
from atif.serve import pages, review_pages
from atif.serve.access import StoreAccess
from atif.serve.render import asset, render
from atif.serve.security import SecurityMiddleware
from atif.serve.state import AppState

__all__ = ["create_app"]


def create_app(store_path: str | os.PathLike[str], *, read_only: bool = False, token: str | None = None,
               reviewer: str | None = None, data_path: str | os.PathLike[str] | None = None) -> Starlette:
    """The web app over the store at ``store_path``.

    With ``read_only`` the store is only read and no write route exists. With ``token`` every
    request must carry it (see ``atif.serve.security``); without, only requests addressed to a
    loopback name are answered. ``reviewer`` names who labels when a browser gives no name
    (default: the user running the server). The store is created or migrated first unless
    ``read_only``; a store that cannot be opened raises here, not on the first request. A team
    store takes its Parquet folder from ``data_path`` (default ``$ATIF_DATA_PATH``).
    """
    access = StoreAccess(store_path, read_only=read_only, data_path=data_path)
    access.prepare()
    state = AppState(access=access, token=token, reviewer=reviewer or _user())
    routes = [
        Route("/", pages.experiments_page),
        Route("/experiment", pages.experiment_page),
        Route("/experiment/summary", pages.experiment_summary),
        Route("/trial/{trial_id}", pages.trial_page_view),
        Route("/trial/{trial_id}/raw", pages.trial_raw),
        Route("/compare", pages.compare_page),
        Route("/calibrate", pages.calibrate_page),
        Route("/api/version", pages.version_endpoint),
        Route("/static/{name}", _static),
    ]
    if not read_only:
        routes += [
            Route("/review", review_pages.review_page),
            Route("/review/label", review_pages.label_endpoint, methods=["POST"]),
        ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityMiddleware, token=token)],
        exception_handlers={AtifError: _error_page, 404: _not_found, 405: _not_allowed},
    )
    app.state.atif = state
    return app


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"


def _static(request: Request) -> Response:
    found = asset(request.path_params["name"])
    if found is None:
        return _message(request, 404, "Not found", "no such file")
    body, media_type = found
    return Response(body, media_type=media_type, headers={"cache-control": "no-cache"})


def _message(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    st: AppState = request.app.state.atif
    html = render("error.html", version="", live="off", read_only=st.read_only, path=request.url.path,
                  title=title, message=message, back=None)
    return HTMLResponse(html, status_code=status)


async def _error_page(request: Request, exc: Exception) -> Response:
    if isinstance(exc, NotFoundError):
        return _message(request, 404, "Not found", str(exc))
    if isinstance(exc, StoreLockedError):
        return _message(request, 503, "Store busy", f"{exc}; reload in a moment")
    return _message(request, 400, "Cannot show this", str(exc))


async def _not_found(request: Request, exc: Exception) -> Response:
    return _message(request, 404, "Not found", f"no page at {request.url.path}")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return _message(request, 405, "Not allowed", f"{request.method} is not allowed at {request.url.path}")
