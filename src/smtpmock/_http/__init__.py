"""The HTTP side of ``smtpmock serve``: a FastAPI app over a running :class:`~smtpmock.SMTPMock`.

Routes are thin glue over the store, the search language and the fault engine; they never
re-implement a filter. Importing this package needs the ``server`` extra (FastAPI); the
in-process library never imports it.
"""

from ._api import ApiSettings, begin_shutdown, create_app, wrap

__all__ = ["ApiSettings", "begin_shutdown", "create_app", "wrap"]
