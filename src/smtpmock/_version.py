"""The installed version of smtpmock, read once from the package metadata."""

from __future__ import annotations

import functools
from importlib import metadata

__all__ = ["smtpmock_version"]


@functools.cache
def smtpmock_version() -> str:
    """``"0.1.0"`` (from the installed distribution), or ``"unknown"`` when run from a tree
    that is not installed."""
    try:
        return metadata.version("smtpmock")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree on sys.path
        return "unknown"
