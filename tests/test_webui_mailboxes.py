"""The web UI of one mailbox (``/m/NAME/``) in a real browser: its list and live events are that
mailbox's only, and the mailbox switcher moves between mailboxes."""

from __future__ import annotations

import httpx
import pytest

# Skips this module as it skips the UI tests (no chromium, no playwright, no FastAPI).
from tests.test_webui import CHROMIUM, CHROMIUM_ARGS, LIVE, rows

from playwright.sync_api import expect, sync_playwright  # isort: skip (after the skips above)
from tests.mail import send  # isort: skip
from tests.served import Served  # isort: skip


def test_mailbox_page_lists_and_streams_its_own_mail_and_switches() -> None:
    with Served("--mailbox-rule", "plus-tag") as served, sync_playwright() as playwright:
        send(served.smtp_host, served.smtp_port, to=["a+ci-2@x.test"], subject="old in ci-2")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(served.url + "/m/ci-1")  # redirected to /m/ci-1/
            assert page.url == served.url + "/m/ci-1/"
            expect(page.locator("#live")).to_have_class("live on")
            expect(page.locator("#empty")).to_be_visible()
            send(served.smtp_host, served.smtp_port, to=["a+ci-2@x.test"], subject="for ci-2")
            send(served.smtp_host, served.smtp_port, to=["a+ci-1@x.test"], subject="for ci-1")
            expect(rows(page)).to_have_text(["for ci-1"], timeout=LIVE)
            with httpx.Client(base_url=served.url, timeout=10) as http:
                assert http.get("/m/ci-2/api/v1/messages").json()["total"] == 2
            switch = page.locator("#mailbox-switch")
            expect(switch).to_be_visible()
            expect(switch).to_have_value("ci-1")
            switch.select_option("ci-2")
            page.wait_for_url(served.url + "/m/ci-2/")
            expect(rows(page)).to_have_text(["for ci-2", "old in ci-2"])
            switch = page.locator("#mailbox-switch")
            expect(switch.locator("option")).to_have_text(["All mailboxes", "ci-1 (1)", "ci-2 (2)"])
            switch.select_option("")
            page.wait_for_url(served.url + "/")
            expect(rows(page)).to_have_count(3)
            assert errors == [], errors
        finally:
            browser.close()


@pytest.mark.parametrize("path", ["/m/ci-1/", "/m/ci-1/ui/app.js", "/m/ci-1/ui/app.css"])
def test_the_ui_is_served_under_a_mailbox(path: str) -> None:
    with Served() as served, httpx.Client(base_url=served.url, timeout=10) as http:
        response = http.get(path)
        assert response.status_code == 200
        assert "Content-Security-Policy" in response.headers
