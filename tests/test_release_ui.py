"""The web UI's Release button in a real browser (Playwright driving Debian's Chromium): shown
only when a relay is configured, it sends the open message on to a second, in-process smtpmock."""

from __future__ import annotations

import os
import shutil
import smtplib

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium; .ci/run does it)",
        allow_module_level=True,
    )
pytest.importorskip("playwright", reason="the UI tests need playwright (pip install -e '.[test]')")
pytest.importorskip("fastapi", reason="the UI is served by smtpmock serve (the server extra)")

import httpx  # noqa: E402 - after the skips above
from playwright.sync_api import Dialog, expect, sync_playwright  # noqa: E402

from smtpmock import SMTPMock  # noqa: E402
from tests.served import Served  # noqa: E402
from tests.test_webui import CHROMIUM_ARGS  # noqa: E402

RAW = b"From: ann@example.com\r\nTo: bob@example.org\r\nSubject: via the UI\r\n\r\nbody\r\n"


def _seed(served: Served) -> str:
    with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=10) as client:
        client.sendmail("ann@example.com", ["bob@example.org"], RAW)
    waited = httpx.get(served.url + "/api/v1/wait", params={"count": 1, "timeout": 30}, timeout=30)
    return str(waited.json()["messages"][0]["ID"])


def test_release_button_sends_the_open_message_on() -> None:
    with SMTPMock() as target:
        args = (
            "--relay-host",
            "127.0.0.1",
            "--relay-port",
            str(target.port),
            "--relay-tls",
            "none",
        )
        with Served(*args) as served, sync_playwright() as playwright:
            id = _seed(served)
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))

                def answer(dialog: Dialog) -> None:
                    assert f"127.0.0.1:{target.port}" in dialog.message
                    dialog.accept("ui@example.net, other@example.net")

                page.on("dialog", answer)
                page.goto(f"{served.url}/#/message/{id}")
                button = page.locator("#v-release")
                expect(button).to_be_visible()
                button.click()
                expect(button).to_have_text("Released ✓")
                released = target.wait_for(1, timeout=30)[0]
                assert released.raw == RAW
                assert released.rcpt_tos == ("ui@example.net", "other@example.net")
                assert errors == []
            finally:
                browser.close()


def test_release_button_hidden_without_a_relay() -> None:
    with Served() as served, sync_playwright() as playwright:
        id = _seed(served)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            with page.expect_response(lambda r: r.url.endswith("/api/v1/webui")):
                page.goto(f"{served.url}/#/message/{id}")
            expect(page.locator("#v-subject")).to_have_text("via the UI")
            expect(page.locator("#v-release")).to_be_hidden()
        finally:
            browser.close()
