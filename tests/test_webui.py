"""The web UI in a real browser: Playwright for Python driving Debian's Chromium.

Each test talks to a real ``smtpmock serve`` subprocess (SMTP and HTTP on free ports): mail goes
in over SMTP with ``smtplib``, and the UI is driven the way a person would drive it. Waits are on
the DOM (Playwright's ``expect`` retries until its timeout), never on sleeps.

The hostile-message test uses a local HTTP server on 127.0.0.1 posing as the "remote" host of a
tracking pixel, style sheets, fonts and frames: it counts every TCP connection and request it gets.

Screenshots for the README are written to ``docs/screenshots/`` when
``SMTPMOCK_UPDATE_SCREENSHOTS=1`` (otherwise to a temporary directory, so that a test run leaves
the work tree alone)::

    SMTPMOCK_UPDATE_SCREENSHOTS=1 python -m pytest tests/test_webui.py -k screenshots
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import smtplib
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

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
from playwright.sync_api import Browser, Dialog, Page, Request, expect, sync_playwright  # noqa: E402

from tests.mail import send  # noqa: E402
from tests.served import Served  # noqa: E402

# Debian's Chromium, never a downloaded build; no network of its own (updates, sync, QUIC).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LIVE = 1000  # ms: new mail must show within a second
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with Served() as process:
        yield process


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Api:
    """The server's public HTTP API, for setting up and checking what the UI did."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def total(self) -> int:
        return int(self.http.get("/api/v1/messages").json()["total"])

    def subjects(self) -> list[str]:
        return [m["Subject"] for m in self.http.get("/api/v1/messages").json()["messages"]]

    def clear(self) -> None:
        self.http.request("DELETE", "/api/v1/messages", json={"All": True}).raise_for_status()
        self.http.delete("/api/v1/faults").raise_for_status()


@pytest.fixture
def api(served: Served) -> Iterator[Api]:
    client = Api(served.url)
    client.clear()
    yield client
    client.http.close()


@pytest.fixture
def page(browser: Browser, served: Served, api: Api) -> Iterator[Page]:
    """A fresh browser tab on the inbox of an empty server, with live updates connected."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.goto(served.url + "/")
    expect(tab.locator("#live")).to_have_class("live on")
    expect(tab.locator("#empty")).to_be_visible()
    yield tab
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def smtp_send(served: Served, message: EmailMessage) -> None:
    with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=10) as client:
        client.send_message(message)


def rows(page: Page) -> Any:
    return page.locator("#messages .row .subj")


# --------------------------------------------------------------------------- the "remote" host


class RemoteHost:
    """A local HTTP server standing in for a tracker's host: records connections and paths."""

    def __init__(self) -> None:
        self.connections = 0
        self.paths: list[str] = []
        self.pixel_fetched = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.paths.append(self.path)
                if self.path == "/pixel.gif":
                    owner.pixel_fetched.set()
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.send_header("Content-Length", "6")
                self.end_headers()
                self.wfile.write(b"GIF89a")

            do_POST = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: Any, client_address: Any) -> bool:
                owner.connections += 1
                return True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def remote() -> Iterator[RemoteHost]:
    host = RemoteHost()
    yield host
    host.close()


# --------------------------------------------------------------------------- inbox


def test_inbox_updates_live_within_a_second(served: Served, page: Page) -> None:
    send(served.smtp_host, served.smtp_port, subject="First live message")
    expect(rows(page)).to_have_text(["First live message"], timeout=LIVE)
    send(served.smtp_host, served.smtp_port, subject="Second live message", to=["carol@x.test"])
    expect(rows(page)).to_have_text(["Second live message", "First live message"], timeout=LIVE)
    first = page.locator("#messages .row").first
    expect(first.locator(".from")).to_have_text("alice@example.com")
    expect(first.locator(".to")).to_have_text("to carol@x.test")
    expect(page.locator("#count")).to_have_text("2 messages")


def test_inbox_row_shows_sender_recipients_time_size_and_attachment_mark(
    served: Served, page: Page
) -> None:
    message = EmailMessage()
    message["From"] = "Alice Example <alice@example.com>"
    message["To"] = "Bob <bob@example.com>, carol@example.com"
    message["Subject"] = "Quarterly report"
    message.set_content("See the attached report.")
    message.add_attachment(b"x" * 3000, maintype="application", subtype="pdf", filename="q3.pdf")
    smtp_send(served, message)
    send(served.smtp_host, served.smtp_port, subject="No attachment here")
    expect(rows(page)).to_have_text(["No attachment here", "Quarterly report"], timeout=LIVE)
    with_file, without = page.locator("#messages .row").nth(1), page.locator("#messages .row").first
    expect(with_file.locator(".from")).to_have_text("Alice Example")
    expect(with_file.locator(".to")).to_have_text("to Bob, carol@example.com")
    # The raw size: a 3,000-byte attachment in base64 makes it over 4 kB.
    size = with_file.locator(".size").inner_text()
    assert size.endswith(" kB"), size
    assert float(size[:-3]) > 4, size
    expect(with_file.locator(".clip")).to_have_count(1)
    expect(without.locator(".clip")).to_have_count(0)
    expect(with_file.locator("time")).not_to_have_text("")
    expect(with_file.locator(".snippet")).to_have_text("See the attached report.")


def test_search_narrows_the_list_and_live_updates_respect_it(
    served: Served, page: Page, api: Api
) -> None:
    host, port = served.smtp_host, served.smtp_port
    send(host, port, to=["carol@example.org"], subject="Your order has shipped")
    send(host, port, to=["bob@example.com"], subject="Welcome, Bob")
    send(host, port, to=["bob@example.com"], subject="Reset your password")
    expect(rows(page)).to_have_count(3, timeout=LIVE)

    search = page.locator("#search")
    search.fill("to:carol")
    expect(rows(page)).to_have_text(["Your order has shipped"])
    expect(page.locator("#count")).to_have_text("1 of 3 messages match")
    search.fill("subject:welcome")
    expect(rows(page)).to_have_text(["Welcome, Bob"])
    search.fill("-to:carol password")
    expect(rows(page)).to_have_text(["Reset your password"])
    search.fill("nothing-matches-this")
    expect(rows(page)).to_have_count(0)
    expect(page.locator("#empty-text")).to_have_text("Nothing matches this search.")

    # While a search is active, new mail that does not match stays out of the list.
    search.fill("to:carol")
    expect(rows(page)).to_have_count(1)
    send(host, port, to=["bob@example.com"], subject="Not for Carol")
    send(host, port, to=["carol@example.org"], subject="Another for Carol")
    expect(rows(page)).to_have_text(["Another for Carol", "Your order has shipped"], timeout=LIVE)

    search.fill("")
    expect(rows(page)).to_have_count(5)
    assert api.total() == 5


def test_pages_of_fifty(served: Served, page: Page) -> None:
    with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=10) as client:
        for n in range(51):
            message = f"From: a@x.test\r\nTo: b@x.test\r\nSubject: Message {n}\r\n\r\nx\r\n"
            client.sendmail("a@x.test", ["b@x.test"], message)
    expect(page.locator("#count")).to_have_text("51 messages")
    expect(rows(page)).to_have_count(50)
    expect(rows(page).first).to_have_text("Message 50")
    expect(page.locator("#page-info")).to_have_text("1\u201350 of 51")
    page.click("#next-page")
    expect(rows(page)).to_have_text(["Message 0"])
    expect(page.locator("#next-page")).to_be_disabled()
    page.click("#prev-page")
    expect(rows(page)).to_have_count(50)


def test_a_bad_search_says_why(page: Page) -> None:
    page.locator("#search").fill("is:loud")
    expect(page.locator("#list-error")).to_be_visible()
    expect(page.locator("#list-error")).to_contain_text("is:read, is:unread")


def test_an_invalid_search_shows_no_stale_results(served: Served, page: Page) -> None:
    message = EmailMessage()
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    message["Subject"] = "still here"
    message.set_content("x")
    smtp_send(served, message)
    expect(rows(page)).to_have_count(1)
    search = page.locator("#search")
    search.fill("is:loud")
    expect(page.locator("#list-error")).to_contain_text("Invalid search")
    expect(rows(page)).to_have_count(0)  # not the previous results
    expect(search).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#count")).to_have_text("invalid search")
    expect(page.locator("#empty")).to_be_hidden()
    search.fill("subject:still")
    expect(rows(page)).to_have_text(["still here"])
    expect(search).to_have_attribute("aria-invalid", "false")
    expect(page.locator("#list-error")).to_be_hidden()


def test_mail_without_to_header_shows_its_envelope_recipients(served: Served, page: Page) -> None:
    with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=10) as client:
        client.sendmail(
            "a@example.com",
            ["hidden@example.com", "other@example.com"],
            b"From: a@example.com\r\nSubject: no To header\r\n\r\nbody\r\n",
        )
    row = page.locator("#messages .row")
    expect(row.locator(".to")).to_have_text("to hidden@example.com, other@example.com")
    row.click()
    addresses = page.locator("#v-addresses")
    expect(addresses).to_contain_text("Envelope to")
    expect(addresses).to_contain_text("hidden@example.com, other@example.com")


def test_delete_matches_asks_first(served: Served, page: Page, api: Api) -> None:
    host, port = served.smtp_host, served.smtp_port
    send(host, port, to=["carol@example.org"], subject="For Carol")
    send(host, port, to=["bob@example.com"], subject="For Bob")
    expect(rows(page)).to_have_count(2, timeout=LIVE)
    page.locator("#search").fill("to:carol")
    expect(rows(page)).to_have_count(1)

    page.click("#delete-matches")
    expect(page.locator("#confirm")).to_be_visible()
    expect(page.locator("#confirm-text")).to_contain_text("to:carol")
    page.click("#confirm-cancel")
    expect(page.locator("#confirm")).to_be_hidden()
    assert api.total() == 2

    page.click("#delete-matches")
    page.click("#confirm-ok")
    expect(rows(page)).to_have_count(0)
    assert api.subjects() == ["For Bob"]


def test_delete_one_and_delete_all_ask_for_confirmation(
    served: Served, page: Page, api: Api
) -> None:
    for subject in ("One", "Two", "Three"):
        send(served.smtp_host, served.smtp_port, subject=subject)
    expect(rows(page)).to_have_count(3, timeout=LIVE)

    page.locator("#messages .row", has_text="Two").click()
    expect(page.locator("#v-subject")).to_have_text("Two")
    page.click("#v-delete")
    expect(page.locator("#confirm")).to_be_visible()
    page.click("#confirm-cancel")
    assert api.total() == 3

    page.click("#v-delete")
    page.click("#confirm-ok")
    expect(rows(page)).to_have_text(["Three", "One"])
    assert api.subjects() == ["Three", "One"]
    # As in a mail client, the next message opens.
    expect(page.locator("#v-subject")).to_have_text("One")

    page.click("#delete-all")
    expect(page.locator("#confirm-text")).to_contain_text("all 2")
    page.click("#confirm-cancel")
    assert api.total() == 2
    page.click("#delete-all")
    page.click("#confirm-ok")
    expect(rows(page)).to_have_count(0)
    expect(page.locator("#empty")).to_be_visible()
    assert api.total() == 0


def test_keyboard_navigation(served: Served, page: Page, api: Api) -> None:
    for subject in ("Oldest", "Middle", "Newest"):
        send(served.smtp_host, served.smtp_port, subject=subject)
    expect(rows(page)).to_have_count(3, timeout=LIVE)
    row = page.locator("#messages .row")

    page.keyboard.press("j")
    expect(row.nth(0)).to_have_class("row cursor")
    page.keyboard.press("ArrowDown")
    expect(row.nth(1)).to_have_class("row cursor")
    page.keyboard.press("Enter")
    expect(page.locator("#v-subject")).to_have_text("Middle")
    # With a message open, moving opens the next one.
    page.keyboard.press("k")
    expect(page.locator("#v-subject")).to_have_text("Newest")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(page.locator("#v-subject")).to_have_text("Oldest")

    page.keyboard.press("Delete")
    expect(page.locator("#confirm")).to_be_visible()
    page.keyboard.press("Escape")  # cancels the dialog
    expect(page.locator("#confirm")).to_be_hidden()
    assert api.total() == 3
    page.keyboard.press("Delete")
    expect(page.locator("#confirm-ok")).to_be_focused()
    page.keyboard.press("Enter")
    expect(rows(page)).to_have_text(["Newest", "Middle"])
    assert api.subjects() == ["Newest", "Middle"]

    page.keyboard.press("Escape")
    expect(page.locator("#placeholder")).to_be_visible()
    page.keyboard.press("/")
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.type("subject:middle")
    expect(rows(page)).to_have_text(["Middle"])
    page.keyboard.press("ArrowDown")  # from the search box into the list
    page.keyboard.press("Enter")
    expect(page.locator("#v-subject")).to_have_text("Middle")


# --------------------------------------------------------------------------- message view


def test_message_view_shows_every_part(served: Served, page: Page) -> None:
    message = EmailMessage()
    message["From"] = "Alice Example <alice@example.com>"
    message["To"] = "Bob <bob@example.com>"
    message["Cc"] = "team@example.com"
    message["Subject"] = "Welcome to Acme"
    message["X-Campaign"] = "onboarding-7"
    message.set_content("Hello Bob, start at https://acme.test/start today.")
    message.add_alternative(
        '<p id="greeting">Hello <b>Bob</b></p><a href="https://acme.test/start">Start</a>'
        '<a href="mailto:help@acme.test">Help</a>',
        subtype="html",
    )
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="guide.pdf")
    smtp_send(served, message)
    expect(rows(page)).to_have_count(1, timeout=LIVE)
    page.locator("#messages .row").click()

    expect(page.locator("#v-subject")).to_have_text("Welcome to Acme")
    expect(page.locator("#v-addresses")).to_contain_text("Bob <bob@example.com>")
    expect(page.locator("#v-addresses")).to_contain_text("team@example.com")
    preview = page.frame_locator("#preview")
    expect(preview.locator("#greeting")).to_have_text("Hello Bob")

    page.click("#width-phone")
    expect(page.locator("#preview")).to_have_class("preview phone")
    width = page.locator("#preview").evaluate("e => e.getBoundingClientRect().width")
    assert width <= 375
    page.click("#width-desktop")
    expect(page.locator("#preview")).to_have_class("preview")

    page.click("[data-tab=text]")
    expect(page.locator("#text-body")).to_contain_text("Hello Bob, start at")
    page.click("[data-tab=headers]")
    expect(page.locator("table.headers")).to_contain_text("onboarding-7")
    page.click("[data-tab=raw]")
    expect(page.locator("#raw-body")).to_contain_text("X-Campaign: onboarding-7")
    page.click("[data-tab=attachments]")
    expect(page.locator(".attachment .att-name")).to_have_text("guide.pdf")
    page.click("[data-tab=links]")
    expect(page.locator("#links a")).to_have_text(
        ["https://acme.test/start", "mailto:help@acme.test"]
    )
    page.click("[data-tab=envelope]")
    expect(page.locator("#envelope")).to_contain_text("alice@example.com")
    expect(page.locator("#envelope")).to_contain_text("bob@example.com, team@example.com")
    transcript = page.locator("#transcript")
    expect(transcript).to_contain_text("FROM:<alice@example.com>")
    expect(transcript.locator("li.client", has_text="data")).to_have_count(1)
    expect(transcript.locator("li.server", has_text="250")).not_to_have_count(0)


def test_defects_are_shown(served: Served, page: Page) -> None:
    raw = (
        b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: Broken\r\n"
        b"this header line has no colon\r\n"
        b"Content-Type: multipart/mixed\r\n\r\nno boundary at all\r\n"
    )
    with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=10) as client:
        client.sendmail("alice@example.com", ["bob@example.com"], raw)
    expect(rows(page)).to_have_count(1, timeout=LIVE)
    page.locator("#messages .row").click()
    expect(page.locator("#v-subject")).to_have_text("Broken")
    page.click("[data-tab=defects]")
    expect(page.locator(".defects li")).not_to_have_count(0)
    expect(page.locator(".defects")).to_contain_text("MissingHeaderBodySeparatorDefect")


def test_downloads_return_the_exact_raw_bytes(served: Served, page: Page, api: Api) -> None:
    # Latin-1 body bytes, a leading dot (stuffed by smtplib, unstuffed by the server), trailing
    # white space and a tab: any re-encoding or normalisation would show.
    attachment = bytes(range(256)) * 4
    message = EmailMessage()
    message["From"] = "alice@example.com"
    message["To"] = "bob@example.com"
    message["Subject"] = "Bytes"
    message.set_content(b"Caf\xe9 \r\n.leading dot\r\ntrailing   \r\n\tTab\r\n", "text", "plain")
    message.add_attachment(
        attachment, maintype="application", subtype="octet-stream", filename="../../etc/passwd"
    )
    raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=10) as client:
        client.sendmail("alice@example.com", ["bob@example.com"], raw)
    expect(rows(page)).to_have_count(1, timeout=LIVE)
    page.locator("#messages .row").click()
    expect(page.locator("#v-subject")).to_have_text("Bytes")

    with page.expect_download() as eml:
        page.click("#v-download")
    assert Path(eml.value.path()).read_bytes() == raw
    assert eml.value.suggested_filename.endswith(".eml")

    page.click("[data-tab=raw]")
    with page.expect_download() as eml_again:
        page.click("#raw-download")
    assert Path(eml_again.value.path()).read_bytes() == raw

    page.click("[data-tab=attachments]")
    expect(page.locator(".att-name")).to_have_text("../../etc/passwd")  # shown as sent
    with page.expect_download() as part:
        page.locator(".attachment a").click()
    assert Path(part.value.path()).read_bytes() == attachment
    assert "/" not in part.value.suggested_filename
    assert ".." not in part.value.suggested_filename.split(".")[0:2]


def test_hostile_message_runs_no_script_and_fetches_nothing_remote(
    served: Served, page: Page, remote: RemoteHost
) -> None:
    r = remote.url
    html = f"""<!doctype html><html><head>
<meta http-equiv="refresh" content="0;url={r}/refresh">
<link rel="stylesheet" href="{r}/style.css"><link rel="preconnect" href="{r}">
<link rel="dns-prefetch" href="{r}"><link rel="prefetch" href="{r}/prefetch">
<style>@import url({r}/import.css); @font-face {{font-family: t; src: url({r}/font.woff)}}
h1 {{font-family: t}} body {{background: url({r}/background.png)}}</style>
<base href="{r}/base/">
</head><body>
<h1 id="marker">Hostile</h1>
<script>window.__pwned = "script"; fetch("{r}/script"); parent.__pwned = "parent";</script>
<svg onload="window.__pwned='svg'; fetch('{r}/svg')"><image href="{r}/svg-image.png"/></svg>
<img src="{r}/pixel.gif" width="1" height="1">
<img src="x" onerror="fetch('{r}/onerror')"><img srcset="{r}/srcset.png 1x">
<a id="js-link" href="javascript:fetch('{r}/javascript')">click me</a>
<iframe src="{r}/iframe"></iframe><object data="{r}/object"></object><embed src="{r}/embed">
<video poster="{r}/poster.png" src="{r}/video.mp4" autoplay></video>
<table background="{r}/table.png"><tr><td style="background:url('{r}/td.png')">x</td></tr></table>
<form action="{r}/form"><input autofocus onfocus="fetch('{r}/autofocus')"></form>
</body></html>"""
    subject = "<script>window.__pwned='subject'</script><img src=x onerror=window.__pwned=1>"
    sender = "<svg onload=window.__pwned=2>"
    filename = "<img src=x onerror=window.__pwned=3>.pdf"
    message = EmailMessage()
    message["From"] = f'"{sender}" <evil@example.com>'
    message["To"] = "bob@example.com"
    message["Subject"] = subject
    message["X-Evil"] = "<script>window.__pwned=4</script>"
    message.set_content(f"<script>window.__pwned=5</script> javascript:alert(1) {r}/text")
    message.add_alternative(html, subtype="html")
    message.add_attachment(b"x", maintype="application", subtype="pdf", filename=filename)
    smtp_send(served, message)

    requests: list[Request] = []
    dialogs: list[str] = []

    def on_request(request: Request) -> None:  # a bound method is refused as a handler
        requests.append(request)

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("request", on_request)
    page.on("dialog", on_dialog)
    expect(rows(page)).to_have_count(1, timeout=LIVE)
    expect(page.locator("#messages .row .from")).to_have_text(sender)
    expect(rows(page)).to_have_text(subject)
    page.locator("#messages .row").click()

    # The preview is sandboxed: no scripts, no same-origin access.
    frame_element = page.locator("#preview")
    sandbox = frame_element.get_attribute("sandbox") or ""
    assert "allow-scripts" not in sandbox
    assert "allow-same-origin" not in sandbox
    preview = page.frame_locator("#preview")
    expect(preview.locator("#marker")).to_have_text("Hostile")
    frame = frame_element.element_handle().content_frame()
    assert frame is not None
    frame.wait_for_load_state("load")  # every subresource was tried (and refused)
    preview.locator("#js-link").click()
    assert frame.evaluate("window.__pwned") is None

    expect(page.locator("#v-subject")).to_have_text(subject)
    for tab in ("text", "raw", "envelope"):
        page.click(f"[data-tab={tab}]")
        expect(page.locator(f"[data-tab={tab}]")).to_have_class("tab active")
    page.click("[data-tab=links]")
    expect(page.locator("#links .unsafe")).to_have_text([f"javascript:fetch('{r}/javascript')"])
    page.click("[data-tab=attachments]")
    expect(page.locator(".att-name")).to_have_text(filename)
    page.click("[data-tab=headers]")
    expect(page.locator("table.headers")).to_contain_text("<script>window.__pwned=4</script>")

    # Nothing from the message became markup in the UI, and nothing ran anywhere.
    injected = page.locator("#messages img, #view img, #view script, [onerror], [onload]")
    expect(injected).to_have_count(0)
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    assert len(page.context.pages) == 1  # the javascript: link opened nothing

    # Nothing reached the remote host: not one connection, let alone a request; the browser
    # refused each attempt itself.
    assert remote.connections == 0, remote.paths
    assert remote.paths == []
    attempted = [req for req in requests if req.url.startswith(r)]
    assert attempted, "the hostile message should have tried to fetch something"
    assert [req.url for req in attempted if req.failure is None] == []

    # The user asks for remote images: now the pixel loads (which shows the check above could
    # fail), and still no script runs.
    page.click("[data-tab=preview]")
    page.click("#load-remote")
    expect(page.locator("#remote-state")).to_have_text("Remote content loaded")
    assert remote.pixel_fetched.wait(10)
    expect(page.frame_locator("#preview").locator("#marker")).to_have_text("Hostile")
    assert not {"/script", "/svg", "/onerror", "/javascript", "/autofocus", "/iframe"} & set(
        remote.paths
    )
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []


def test_preview_document_takes_out_what_connects_without_a_request() -> None:
    from smtpmock import Message
    from smtpmock._http._ui import preview_document

    html = (
        "<!DOCTYPE html><HTML><Head><LINK rel=preconnect href=http://t.test>"
        "<link/rel=dns-prefetch href=//t.test><style>p{color:red}</style></head><body>"
        "<IFRAME src=http://t.test/f></iframe><object data=http://t.test/o></object>"
        "<embed src=http://t.test/e><frame src=http://t.test/fr><p>kept</p></body></html>"
    )
    raw = f"Subject: x\r\nContent-Type: text/html\r\n\r\n{html}\r\n".encode()
    blocked = preview_document(Message(raw))
    assert "t.test" not in blocked
    assert "<style>p{color:red}</style>" in blocked
    assert "<p>kept</p>" in blocked
    # The base target comes first in <head>, after the doctype (no quirks mode).
    assert blocked.startswith('<!DOCTYPE html><HTML><Head><base target="_blank">')
    relaxed = preview_document(Message(raw), remote=True)
    assert "<LINK rel=preconnect href=http://t.test>" in relaxed  # the user asked for it
    assert "t.test/f" not in relaxed  # frames never: the CSP refuses them anyway


def test_security_headers(served: Served, api: Api) -> None:
    send(
        served.smtp_host,
        served.smtp_port,
        headers="Content-Type: text/html\r\n",
        body='<p>hi</p><link rel="preconnect" href="http://tracker.test">',
    )
    index = api.http.get("/")
    csp = index.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert index.headers["x-content-type-options"] == "nosniff"
    for asset in ("/ui/app.js", "/ui/app.css"):
        response = api.http.get(asset)
        assert response.status_code == 200
        assert response.headers["x-content-type-options"] == "nosniff"
    for path in ("/api/v1/messages", "/api/v1/info", "/api/v1/server", "/livez"):
        assert api.http.get(path).headers["x-content-type-options"] == "nosniff", path
    assert api.http.get("/ui/../_ui.py").status_code == 404
    assert api.http.get("/ui/index.html").status_code == 404

    [summary] = api.http.get("/api/v1/messages").json()["messages"]
    blocked = api.http.get(f"/api/v1/message/{summary['ID']}/html")
    policy = blocked.headers["content-security-policy"]
    assert "sandbox" in policy
    assert "allow-scripts" not in policy
    assert "img-src data:;" in policy
    assert "script-src" not in policy
    assert "preconnect" not in blocked.text
    relaxed = api.http.get(f"/api/v1/message/{summary['ID']}/html", params={"remote": "1"})
    assert "img-src data: http: https:" in relaxed.headers["content-security-policy"]
    assert "sandbox" in relaxed.headers["content-security-policy"]
    assert api.http.get("/api/v1/message/nope/html").status_code == 404


def test_inline_cid_images_show_without_any_request(served: Served, page: Page) -> None:
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201f5a1c2c60000000049454e44ae426082"
    )
    message = EmailMessage()
    message["From"] = "alice@example.com"
    message["To"] = "bob@example.com"
    message["Subject"] = "Inline logo"
    message.set_content("logo")
    message.add_alternative('<img id="logo" src="cid:logo@acme" alt="logo">', subtype="html")
    html_part = message.get_payload()[1]
    html_part.add_related(png, "image", "png", cid="<logo@acme>")
    smtp_send(served, message)
    expect(rows(page)).to_have_count(1, timeout=LIVE)
    page.locator("#messages .row").click()
    logo = page.frame_locator("#preview").locator("#logo")
    expect(logo).to_have_attribute("src", _startswith("data:image/png;base64,"))
    expect(logo).to_have_js_property("naturalWidth", 1)


def _startswith(prefix: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(prefix))


def test_server_panel_shows_settings_and_manages_fault_rules(
    served: Served, page: Page, api: Api
) -> None:
    send(served.smtp_host, served.smtp_port, subject="Counted")
    expect(rows(page)).to_have_count(1, timeout=LIVE)
    page.click("#server-button")
    expect(page.locator("#server-addresses")).to_contain_text(
        f"{served.smtp_host}:{served.smtp_port}"
    )
    expect(page.locator("#server-info")).to_contain_text("SQLiteStore")
    expect(page.locator("#server-security")).to_contain_text("TLS")
    expect(page.locator("#server-limits")).to_contain_text("Largest message")
    expect(page.locator("#fault-rules")).to_contain_text("No fault rules")

    # A Mailpit chaos trigger typed in the panel is live on the SMTP side at once.
    page.fill("#fault-input", "Recipient:550:100")
    page.click("#fault-add")
    expect(page.locator("#fault-rules li")).to_have_count(1)
    expect(page.locator("#fault-rules li")).to_contain_text("550")
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(served.smtp_host, served.smtp_port, subject="Refused")
    assert len(api.http.get("/api/v1/faults").json()["rules"]) == 1

    page.click("#fault-clear")
    page.click("#confirm-ok")
    expect(page.locator("#fault-rules")).to_contain_text("No fault rules")
    assert api.http.get("/api/v1/faults").json()["rules"] == []
    send(served.smtp_host, served.smtp_port, subject="Accepted again")
    assert api.total() == 2

    page.keyboard.press("Escape")
    expect(page.locator("#server")).to_be_hidden()


def test_phone_width(served: Served, browser: Browser, api: Api) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    tab = context.new_page()
    try:
        tab.goto(served.url + "/")
        expect(tab.locator("#live")).to_have_class("live on")
        send(served.smtp_host, served.smtp_port, subject="A rather long subject line " * 4)
        expect(tab.locator("#messages .row")).to_have_count(1, timeout=LIVE)
        assert tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        tab.locator("#messages .row").click()
        expect(tab.locator("#view")).to_be_visible()
        expect(tab.locator(".list-pane")).to_be_hidden()
        assert tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        tab.click("#back")
        expect(tab.locator(".list-pane")).to_be_visible()
        expect(tab.locator("#view")).to_be_hidden()
    finally:
        context.close()


# --------------------------------------------------------------------------- screenshots


def test_screenshots(served: Served, page: Page, tmp_path: Path) -> None:
    target = SCREENSHOTS if os.environ.get("SMTPMOCK_UPDATE_SCREENSHOTS") == "1" else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    smtp_send(
        served,
        _plain_mail(
            "Acme Shop <shop@acme.test>",
            "Carol Jones <carol@example.org>",
            "Your order #1042 has shipped",
            "Good news! Your parcel is on its way. Track it at https://acme.test/t/1042",
        ),
    )
    smtp_send(
        served,
        _plain_mail(
            "CI <ci@builds.test>",
            "dev@example.org",
            "Build #381 passed",
            "All 412 tests passed in 3m 12s on main.",
        ),
    )
    welcome = EmailMessage()
    welcome["From"] = "Acme <hello@acme.test>"
    welcome["To"] = "Bob Smith <bob@example.com>"
    welcome["Subject"] = "Welcome to Acme, Bob"
    welcome.set_content("Hi Bob,\n\nYour account is ready: https://acme.test/start\n")
    welcome.add_alternative(
        "<html><head><style>body{font-family:Helvetica,Arial,sans-serif;color:#333;margin:0;"
        "background:#f4f5f7}.card{max-width:520px;margin:32px auto;background:#fff;padding:32px;"
        "border-radius:10px}.btn{display:inline-block;background:#2f6fde;color:#fff;"
        "padding:10px 20px;border-radius:6px;text-decoration:none}small{color:#888}</style>"
        "</head><body><div class=card><h1 style='color:#1f2a3d'>Welcome aboard, Bob</h1>"
        "<p>Your Acme account is ready. Start with the guide, or jump straight in.</p>"
        "<p><a class=btn href='https://acme.test/start'>Get started</a></p>"
        "<p><img src='https://tracker.acme.test/open.gif' width=1 height=1 alt=''></p>"
        "<small>Acme Inc. · <a href='https://acme.test/unsubscribe'>Unsubscribe</a></small>"
        "</div></body></html>",
        subtype="html",
    )
    welcome.add_attachment(
        b"%PDF-1.4" + b"\0" * 48_000,
        maintype="application",
        subtype="pdf",
        filename="getting-started.pdf",
    )
    smtp_send(served, welcome)
    smtp_send(
        served,
        _plain_mail(
            "Acme Security <security@acme.test>",
            "Bob Smith <bob@example.com>",
            "Reset your password",
            "Someone asked to reset the password of your account: https://acme.test/reset",
        ),
    )
    expect(rows(page)).to_have_count(4, timeout=LIVE)
    page.screenshot(path=str(target / "inbox.png"))
    page.locator("#messages .row", has_text="Welcome to Acme").click()
    expect(page.frame_locator("#preview").locator("h1")).to_have_text("Welcome aboard, Bob")
    page.screenshot(path=str(target / "message.png"))
    for name in ("inbox.png", "message.png"):
        assert (target / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _plain_mail(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message


def test_the_page_loads_nothing_but_itself(served: Served, browser: Browser) -> None:
    context = browser.new_context()
    tab = context.new_page()
    urls: list[str] = []
    tab.on("request", lambda request: urls.append(request.url))
    try:
        tab.goto(served.url + "/")
        expect(tab.locator("#live")).to_have_class("live on")
        foreign = [
            u for u in urls if not u.startswith(served.url + "/") and not u.startswith("data:")
        ]
        assert foreign == []
    finally:
        context.close()


# --------------------------------------------------------------------------- API docs


@pytest.mark.parametrize(
    ("path", "rendered"),
    [("/docs", "#swagger-ui .opblock-summary-path"), ("/redoc", "#redoc h2")],
)
def test_api_docs_work_offline_under_their_policy(
    served: Served, browser: Browser, path: str, rendered: str
) -> None:
    """Every request the page makes goes to the server itself (the browser is cut off from
    everything else), the viewer renders the operations, and the CSP refuses nothing."""
    context = browser.new_context()
    foreign: list[str] = []

    def only_this_server(route: Any) -> None:
        url = route.request.url
        if url.startswith(served.url + "/") or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            foreign.append(url)
            route.abort()

    context.route("**/*", only_this_server)
    tab = context.new_page()
    console: list[str] = []
    errors: list[str] = []
    tab.on("console", lambda message: console.append(message.text))
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        response = tab.goto(served.url + path)
        assert response is not None
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src 'self';" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        expect(tab.locator(rendered).first).to_be_visible(timeout=20_000)
        expect(tab.locator("body")).to_contain_text("/api/v1/wait")
        assert foreign == []
        assert errors == []
        refused = [c for c in console if "Content Security Policy" in c]
        # ReDoc always tries its vendor's logo from a CDN and hides it when that fails: the
        # policy refusing it (no request leaves) is the policy working. Nothing else is refused.
        logo = "Loading the image 'https://cdn.redoc.ly/redoc/logo-mini.svg'"
        assert [c for c in refused if not c.startswith(logo)] == [], refused
    finally:
        context.close()


def test_api_docs_assets_come_from_the_server(served: Served, api: Api) -> None:
    for path in ("/docs", "/redoc"):
        page = api.http.get(path).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert assets
        for asset in assets:
            assert asset.startswith("/docs/assets/"), asset
            answer = api.http.get(asset)
            assert answer.status_code == 200, asset
            assert answer.headers["x-content-type-options"] == "nosniff"
    assert api.http.get("/docs/assets/..%2f_docs.py").status_code == 404


def test_unread_rows_are_bold_and_tags_show(served: Served, page: Page, api: Api) -> None:
    send(served.smtp_host, served.smtp_port, subject="Unread one")
    expect(rows(page)).to_have_text(["Unread one"], timeout=LIVE)
    row = page.locator("#messages .row").first
    expect(row).to_have_attribute("data-unread", "")
    # A retrying assertion: the list may be redrawn meanwhile (a detached row's computed
    # style is empty: one failure in a full run).
    expect(row.locator(".subj")).to_have_css("font-weight", "700")
    # Tags set through Mailpit's API show up live (an ``updated`` event redraws the list).
    id = row.get_attribute("data-id")
    reply = api.http.put("/api/v1/tags", json={"IDs": [id], "Tags": ["Billing", "Q3"]})
    assert reply.text == "ok"
    expect(row.locator(".tag")).to_have_text(["Billing", "Q3"], timeout=LIVE)
    # Opening it marks it read (as Mailpit); the message stays open.
    row.click()
    expect(page.locator("#v-subject")).to_have_text("Unread one")
    expect(page.locator("#messages .row").first).not_to_have_attribute(
        "data-unread", "", timeout=LIVE
    )
    expect(page.locator("#v-subject")).to_have_text("Unread one")
    assert not page.locator("#view").is_hidden()
