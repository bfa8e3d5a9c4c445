"""The event loop the server thread runs: uvloop where installed, asyncio's on request."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from smtpmock import ConfigurationError, SMTPMock
from smtpmock._loop import LOOP_ENV, loop_factory

from .mail import send

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


def _loop_module(mock: SMTPMock) -> str:
    loop = mock._loop
    assert loop is not None
    return type(loop).__module__.split(".")[0]


@pytest.mark.parametrize("choice", ["asyncio", "uvloop"])
def test_the_chosen_loop_serves_mail(monkeypatch: pytest.MonkeyPatch, choice: str) -> None:
    if choice == "uvloop" and not HAS_UVLOOP:
        pytest.skip("uvloop is not installed here")
    monkeypatch.setenv(LOOP_ENV, choice)
    with SMTPMock() as mock:
        assert _loop_module(mock) == choice
        send(mock.host, mock.port, subject=f"via {choice}")
        [message] = mock.wait_for(subject=f"via {choice}")
        assert message.subject == f"via {choice}"


def test_default_is_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOOP_ENV, raising=False)
    expected = "uvloop" if HAS_UVLOOP else "asyncio"
    assert loop_factory().__module__.split(".")[0] == expected
    if sys.platform != "win32" and sys.implementation.name == "cpython":
        assert HAS_UVLOOP, "uvloop is a dependency on CPython outside Windows"


def test_a_wrong_choice_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOOP_ENV, "trio")
    mock = SMTPMock()
    with pytest.raises(ConfigurationError, match="must be auto, uvloop or asyncio, not 'trio'"):
        mock.start()
    assert not mock.running
