"""The web UI: static files served at ``/``, and the sandboxed document of a message's HTML body.

The UI is three static files (``ui/index.html``, ``ui/app.js``, ``ui/app.css``: plain
JavaScript, no build step) that talk to the public HTTP API under ``/api/v1`` like any other
client. This module serves them under a strict Content-Security-Policy (scripts and styles from
this origin only, no inline script, images from this origin or ``data:``) and adds four generic
routes the UI needs: ``GET /api/v1/server`` (settings for the server panel),
``GET /api/v1/message/{id}/links`` (:attr:`smtpmock.Message.links`),
``GET /api/v1/message/{id}/transcript`` (the SMTP session) and the one a JSON API
cannot give, ``GET /api/v1/message/{id}/html``: the HTML body as a document of its own, meant
for an ``<iframe sandbox>``:

* its own CSP: no script at all, and a ``sandbox`` directive so that even opened on its own in a
  tab it runs nothing and has an opaque origin (it cannot read the API or the UI);
* nothing remote by default: images, fonts, styles and media only from ``data:``, so a tracking
  pixel does not fire when a message is merely opened; ``?remote=1`` (the UI's "Load remote
  images" button) relaxes images, fonts and styles to ``http:``/``https:``. The server itself never
  fetches anything: the browser does, and only when the user asked;
* ``cid:`` references to the message's own inline parts are replaced by ``data:`` URLs, so inline
  images show without any request;
* elements that make Chromium connect to a host even when the CSP refuses the request (frames,
  objects, ``<link rel=preconnect>``) are taken out.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from .._message import Message
from ._problems import error_response

if TYPE_CHECKING:
    from .._server import SMTPMock

__all__ = ["PREVIEW_CSP", "PREVIEW_CSP_REMOTE", "UI_CSP", "mount_ui", "server_facts"]

UI_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""The UI's own policy: nothing inline, nothing from another origin."""

_SANDBOX = "sandbox allow-popups allow-popups-to-escape-sandbox"
PREVIEW_CSP = (
    "default-src 'none'; img-src data:; font-src data:; media-src data:; "
    "style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'; "
    f"frame-ancestors 'self'; {_SANDBOX}"
)
"""The HTML body's policy: no script, no request leaves the page (``data:`` only)."""

PREVIEW_CSP_REMOTE = (
    "default-src 'none'; img-src data: http: https:; font-src data: http: https:; "
    "media-src data: http: https:; style-src 'unsafe-inline' http: https:; "
    f"form-action 'none'; base-uri 'none'; frame-ancestors 'self'; {_SANDBOX}"
)
"""The same, with remote images, fonts and style sheets allowed (still no script)."""

_COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-cache",
}

_PACKAGE = __name__.rpartition(".")[0]
_STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}

# Inline parts larger than this stay as cid: references (shown broken) rather than making the
# preview document huge; the part is still listed and downloadable.
_INLINE_DATA_LIMIT = 5_000_000
_CID = re.compile(r"""cid:([^"'\s)>]+)""", re.IGNORECASE)
# Removing everything from "<link" (or "<iframe"...) to the next ">" always destroys the element:
# whatever is left of its attributes is text. Over-removal (a ">" in a quoted value) loses text.
_LINK = re.compile(r"<link\b[^>]*>?", re.IGNORECASE)
_FRAMES = re.compile(
    r"<(?:i?frame|frameset|object|embed|applet|portal|fencedframe)\b[^>]*>?", re.IGNORECASE
)
_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
_HTML = re.compile(r"<html\b[^>]*>", re.IGNORECASE)
_DOCTYPE = re.compile(r"^\s*<!doctype[^>]*>", re.IGNORECASE)
# Links in the preview open in a new tab (outside the sandbox) rather than inside the frame.
_BASE = '<base target="_blank">'


def _asset(name: str) -> bytes:
    return resources.files(_PACKAGE).joinpath("ui").joinpath(name).read_bytes()


def preview_document(message: Message, *, remote: bool = False) -> str:
    """The HTML body made ready for the sandboxed preview (inline images as ``data:``).

    Elements that the CSP blocks but that still make Chromium open a connection to their host (a
    tracking signal, even though no request is sent) are taken out: frames, objects and embeds
    always (the CSP never allows them), and ``<link>`` unless *remote* (``rel=preconnect`` is
    not governed by the CSP at all).
    """
    html = _FRAMES.sub("", message.html or "")
    if not remote:
        html = _LINK.sub("", html)
    inline: dict[str, str] = {}
    budget = _INLINE_DATA_LIMIT
    for part in message.attachments:
        if part.content_id and part.content_type.startswith("image/") and part.size <= budget:
            budget -= part.size
            data = base64.b64encode(part.content).decode("ascii")
            inline[part.content_id.lower()] = f"data:{part.content_type};base64,{data}"

    def replace(match: re.Match[str]) -> str:
        return inline.get(match.group(1).strip("<>").lower(), match.group(0))

    if inline:
        html = _CID.sub(replace, html)
    # Only up to the last ">": beyond it none can match, and each "<head" there would be
    # scanned to the end of the text (quadratic on a flood of them).
    end = html.rfind(">") + 1
    for pattern in (_HEAD, _HTML, _DOCTYPE):
        found = pattern.search(html, 0, end)
        if found:
            return html[: found.end()] + _BASE + html[found.end() :]
    return _BASE + html


_SECRET_OPTIONS = {"auth", "tls_cert", "tls_key", "tls_ca"}


def _plain(value: object) -> object:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def server_facts(mock: SMTPMock) -> dict[str, Any]:
    """What the server panel shows: addresses, options, retention and the store, JSON-ready.

    Options are read from the config dataclass, so new ones show up by themselves. Options that
    may hold secrets or local paths are reduced to whether they are set.
    """
    config = mock.config
    options: dict[str, object] = {}
    for option in dataclasses.fields(config):
        value = getattr(config, option.name)
        if option.name in _SECRET_OPTIONS:
            options[option.name] = value is not None
        else:
            options[option.name] = _plain(value)
    store = mock.store
    retention = store.retention
    return {
        "SMTP": {"Host": mock.host, "Port": mock.port if mock.running else None},
        "Options": options,
        "Retention": {
            "MaxMessages": retention.max_messages,
            "MaxBytes": retention.max_bytes,
            "MaxAge": retention.max_age,
        },
        "Store": {
            "Kind": type(store).__name__,
            "Messages": len(store),
            "Bytes": getattr(store, "total_bytes", None),
        },
    }


class _NoSniff:
    """ASGI middleware: ``X-Content-Type-Options: nosniff`` on every response that lacks it, so
    no JSON or message part can ever be sniffed into HTML by a browser."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == b"x-content-type-options" for name, _ in headers):
                    headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)


def mount_ui(app: FastAPI, get_message: Callable[[str], Message | None]) -> None:
    """Serve the web UI at ``/`` of *app*, the routes it needs, and ``nosniff`` on every response.

    *get_message* looks a message up by the id the API uses (``None`` when there is none), for
    the ``/api/v1/message/{id}/html``, ``/links`` and ``/transcript`` routes.
    """
    app.add_middleware(_NoSniff)
    index = _asset("index.html")
    assets = {name: _asset(name) for name in _STATIC}
    ui_headers = {**_COMMON_HEADERS, "Content-Security-Policy": UI_CSP, "X-Frame-Options": "DENY"}

    @app.get("/", include_in_schema=False)
    def ui_index() -> Response:
        return Response(index, media_type="text/html; charset=utf-8", headers=ui_headers)

    @app.get("/ui/{name}", include_in_schema=False)
    def ui_asset(name: str) -> Response:
        if name not in assets:  # a fixed set: no path from the request reaches the disk
            return error_response("not found", 404, _COMMON_HEADERS)
        return Response(assets[name], media_type=_STATIC[name], headers=ui_headers)

    @app.get("/api/v1/server", tags=["server"], summary="Server settings, for the server panel")
    def server(request: Request) -> Response:
        """The SMTP address and every SMTP option (secrets left out: whether AUTH accounts and
        TLS files are set, not what they are), the retention limits and the store."""
        mock = getattr(request.app.state, "mock", None)
        if mock is None:
            return error_response("no server attached to this app", 404, _COMMON_HEADERS)
        return JSONResponse(server_facts(mock), headers=_COMMON_HEADERS)

    @app.get(
        "/api/v1/message/{id}/transcript",
        tags=["message"],
        summary="The SMTP session that delivered a message",
    )
    def message_transcript(id: str, request: Request) -> Response:
        """The transcript of the session that delivered the message (client lines, replies,
        TLS and AUTH events; secrets masked), or 404 when it has aged out of the log."""
        message = get_message(id)
        mock = getattr(request.app.state, "mock", None)
        transcript_for = getattr(mock, "transcript_for", None)
        found = transcript_for(message) if message is not None and transcript_for else None
        if found is None:
            return error_response(f"no transcript for message {id!r}", 404, _COMMON_HEADERS)
        return JSONResponse(found.to_dict(), headers=_COMMON_HEADERS)

    @app.get("/api/v1/message/{id}/links", tags=["message"], summary="The links in a message")
    def message_links(id: str) -> Response:
        """``{"Links": [...]}``: ``href`` targets of the HTML body and bare URLs of both bodies,
        in order, as :attr:`smtpmock.Message.links` finds them. Nothing is fetched."""
        message = get_message(id)
        if message is None:
            return error_response(f"no message {id!r}", 404, _COMMON_HEADERS)
        return JSONResponse({"Links": message.links}, headers=_COMMON_HEADERS)

    @app.get(
        "/api/v1/message/{id}/html",
        tags=["messages"],
        summary="The HTML body as a sandboxed document",
        response_class=Response,
        responses={200: {"content": {"text/html": {}}}, 404: {"description": "no such message"}},
    )
    def message_html(id: str, remote: bool = False) -> Response:
        """The message's HTML body as a document for an ``<iframe sandbox>``.

        Served under a Content-Security-Policy that allows no script and, unless ``remote=1``,
        no request at all: remote images, fonts and style sheets are blocked, so opening a
        message never fires a tracking pixel. Inline ``cid:`` images are embedded as ``data:``.
        """
        message = get_message(id)
        if message is None:
            return error_response(f"no message {id!r}", 404, _COMMON_HEADERS)
        if message.html is None:
            return error_response("this message has no HTML body", 404, _COMMON_HEADERS)
        headers = {
            **_COMMON_HEADERS,
            "Content-Security-Policy": PREVIEW_CSP_REMOTE if remote else PREVIEW_CSP,
            "X-Frame-Options": "SAMEORIGIN",
            "X-DNS-Prefetch-Control": "off",
        }
        return Response(
            preview_document(message, remote=remote),
            media_type="text/html; charset=utf-8",
            headers=headers,
        )
