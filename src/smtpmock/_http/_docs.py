"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served from this process: nothing from a CDN.

The script and style files come from the ``fastapi-offline`` package (a dependency of the
``server`` extra), which ships exactly the Swagger UI and ReDoc builds FastAPI's own pages load
from jsDelivr. The pages are ours: no inline script (each page starts its viewer from a small
script of ours, so the policy needs no ``'unsafe-inline'`` script), a Content-Security-Policy
that allows scripts, styles and requests from this origin only, and ``frame-ancestors 'none'``
plus ``X-Frame-Options: DENY`` so no other site can frame them. Swagger UI's online validator
badge is off (it would send the schema to a third party). Offline, both pages work.
"""

from __future__ import annotations

import functools
import html
from importlib import resources

from fastapi import FastAPI
from fastapi.responses import Response

from ._problems import error_response

__all__ = ["DOCS_CSP", "mount_docs"]

DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The docs pages' policy. Both viewers set inline ``style`` attributes (React, styled
components), hence ``'unsafe-inline'`` for styles only; ReDoc runs its search in a ``blob:``
worker."""

_HEADERS = {
    "Content-Security-Policy": DOCS_CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}

# name served under /docs/assets/ -> (file in fastapi_offline/static, media type)
_VENDORED = {
    "swagger-ui-bundle.js": ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "swagger-ui.css": ("swagger-ui.css", "text/css; charset=utf-8"),
    "redoc.standalone.js": ("redoc.standalone.js", "text/javascript; charset=utf-8"),
    "favicon.png": ("favicon.png", "image/png"),
}

_SWAGGER_INIT = b"""\
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null
  });
});
"""

_REDOC_INIT = b"""\
window.addEventListener("load", function () {
  Redoc.init("/openapi.json", {}, document.getElementById("redoc"));
});
"""

_OURS = {
    "swagger-init.js": (_SWAGGER_INIT, "text/javascript; charset=utf-8"),
    "redoc-init.js": (_REDOC_INIT, "text/javascript; charset=utf-8"),
}


def _page(title: str, head: str, body: str) -> bytes:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="icon" type="image/png" href="/docs/assets/favicon.png">
{head}
</head>
<body>
{body}
</body>
</html>
""".encode()


@functools.cache
def _vendored(name: str) -> bytes:
    filename = _VENDORED[name][0]
    return resources.files("fastapi_offline").joinpath("static").joinpath(filename).read_bytes()


def mount_docs(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and their assets (a fixed set) on *app*."""
    title = f"{app.title} {app.version}"
    swagger = _page(
        f"{title} - Swagger UI",
        '<link rel="stylesheet" href="/docs/assets/swagger-ui.css">',
        '<div id="swagger-ui"></div>\n'
        '<script src="/docs/assets/swagger-ui-bundle.js"></script>\n'
        '<script src="/docs/assets/swagger-init.js"></script>',
    )
    redoc = _page(
        f"{title} - ReDoc",
        "",
        '<div id="redoc"></div>\n'
        '<script src="/docs/assets/redoc.standalone.js"></script>\n'
        '<script src="/docs/assets/redoc-init.js"></script>',
    )

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response:
        return Response(swagger, media_type="text/html; charset=utf-8", headers=_HEADERS)

    @app.get("/redoc", include_in_schema=False)
    def redoc_page() -> Response:
        return Response(redoc, media_type="text/html; charset=utf-8", headers=_HEADERS)

    @app.get("/docs/assets/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        # A fixed set of names: nothing from the request reaches a path on disk.
        if name in _OURS:
            body, media_type = _OURS[name]
        elif name in _VENDORED:
            try:
                body = _vendored(name)
            except (ModuleNotFoundError, FileNotFoundError):
                return error_response(
                    "the API docs need the fastapi-offline package: pip install 'smtpmock[server]'",
                    404,
                )
            media_type = _VENDORED[name][1]
        else:
            return error_response(f"no asset {name!r}", 404)
        return Response(
            body,
            media_type=media_type,
            headers={**_HEADERS, "Cache-Control": "public, max-age=86400"},
        )
