"""The HTTP side of ``smtpmock serve``: a FastAPI app over a running :class:`~smtpmock.SMTPMock`.

Routes are thin glue over the store, the search language and the fault engine; they never
re-implement a filter. The app (:func:`create_app`) needs the ``server`` extra (FastAPI) and is
imported when first asked for, so that ``smtpmock.Client`` reaches the wire formats
(``_wire.py``) with only ``httpx``; the in-process library never imports this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._api import ApiSettings, begin_shutdown, create_app, wrap

__all__ = ["ApiSettings", "begin_shutdown", "create_app", "wrap"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import _api

        value = getattr(_api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
