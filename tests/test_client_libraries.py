"""Mailpit's and MailHog's real client libraries against ``smtpmock serve`` (issue 27).

Six clients: npm ``mailpit-api`` 2.1.0, npm ``mailhog`` 4.16.0, ``cypress-mailpit`` 2.0.0,
``cypress-mailhog`` 2.5.0 (the npm ones installed in ``tests/js`` by ``.ci/run``: ``npm ci``),
PyPI ``mailhog`` 0.1.1 and PyPI ``mailpit-api-client`` 1.0.0 (the ``test`` extra). Every method of
each client is called, read state and tags included, and the VALUES it returns are checked:
subjects, addresses, decoded bodies, attachment bytes, counts, read state and tags, and the effect
on the store. Each test counts the calls that are correct out of those tried and reports the
misses all at once.

The two Cypress plugins need Cypress, whose binary cannot be downloaded here: their command
implementations run unchanged under ``tests/js/cy_harness.mjs``, a minimal ``cy``/``Cypress``
stand-in whose ``cy.request`` performs the real HTTP requests (Cypress's command queue and
retried assertions are not emulated).

Locally a missing Node or npm package skips with the reason; in CI (``CI=true``) it fails.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import smtplib
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from smtpmock import SMTPMock

from .served import Served

pytest.importorskip("fastapi")

JS = Path(__file__).parent / "js"
PDF = b"%PDF-1.4\n\x00\x01\x02 binary \xff\xfe\n%%EOF\n"
NOTES = "plain notes, line one\nline two\n"
TEXT_A = "Hi Bob, café ✓"
HTML_A = "<p>Hi <b>Bob</b></p>"

RAW_A = (
    "From: Ann <ann@example.com>\r\n"
    "To: Bob <bob@example.org>\r\n"
    "Subject: Hello Bob\r\n"
    "Date: Tue, 02 Jan 2024 10:00:00 +0000\r\n"
    "Message-ID: <hello-bob@example.com>\r\n"
    # PyPI mailpit-api-client's Headers model requires Delivered-To (Mailpit returns a
    # message's own headers, so its users' mail carries one, as mail through an MTA does).
    "Delivered-To: bob@example.org\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="BOUNDARY"\r\n'
    "\r\n"
    "--BOUNDARY\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Hi Bob, caf=C3=A9 =E2=9C=93\r\n"
    "--BOUNDARY\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    f"{base64.b64encode(HTML_A.encode()).decode()}\r\n"
    "--BOUNDARY\r\n"
    "Content-Type: application/pdf\r\n"
    "Content-Disposition: attachment; filename=report.pdf\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    f"{base64.b64encode(PDF).decode()}\r\n"
    "--BOUNDARY\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Disposition: attachment; filename=notes.txt\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    f"{base64.b64encode(NOTES.encode()).decode()}\r\n"
    "--BOUNDARY--\r\n"
).encode()

# No Date header: Mailpit's Date falls back to the received time.
RAW_B = (
    b"From: Carol <carol@example.com>\r\n"
    b"To: Dave <dave@example.net>\r\n"
    b"Cc: Erin <erin@example.net>\r\n"
    b"Subject: Invoice 42\r\n"
    b"\r\n"
    b"Total: 42 EUR\r\n"
)


@dataclass
class Score:
    """Calls tried and the ones whose values were wrong, reported together."""

    client: str
    tried: int = 0
    misses: list[str] = field(default_factory=list)

    def check(self, name: str, ok: Callable[[], object], detail: object = None) -> None:
        self.tried += 1
        try:
            good = bool(ok())
            error = ""
        except Exception as exc:  # a malformed answer counts as a miss, not a crash
            good, error = False, f"{type(exc).__name__}: {exc}"
        if not good:
            self.misses.append(f"{name}: {error or detail!r}")

    def expect_unsupported(self, name: str, result: dict[str, Any]) -> None:
        """A call smtpmock does not answer (documented in docs/server.md): it must fail
        cleanly, and it is not counted."""
        assert not result["ok"], f"{name} unexpectedly answered: {result}"

    def verdict(self) -> None:
        correct = self.tried - len(self.misses)
        print(f"{self.client}: {correct} of {self.tried} calls correct")
        assert not self.misses, f"{self.client}: {correct}/{self.tried} correct; " + "; ".join(
            self.misses
        )


def _required(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI installs it: .ci/run)")
    pytest.skip(reason)


def _node(package: str) -> str:
    node = shutil.which("node")
    if node is None:
        _required("node is not installed")
    if not (JS / "node_modules" / package / "package.json").exists():
        _required(f"npm package {package} missing: cd tests/js && npm ci")
    assert node is not None
    return node


def _run_node(package: str, script: str, arguments: dict[str, Any]) -> dict[str, Any]:
    node = _node(package)
    command = [node, "--import", "./register.mjs", script, json.dumps(arguments)]
    done = subprocess.run(command, cwd=JS, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    results: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


@dataclass
class World:
    served: Served
    target: SMTPMock
    api: httpx.Client
    id_a: str
    id_b: str

    def stored(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.api.get("/api/v1/messages").json()["messages"]
        return messages


@pytest.fixture
def world() -> Iterator[World]:
    with SMTPMock() as target:
        args = (
            "--relay-host",
            "127.0.0.1",
            "--relay-port",
            str(target.port),
            "--relay-tls",
            "none",
        )
        with Served(*args) as served, httpx.Client(base_url=served.url, timeout=30) as api:
            with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=10) as smtp:
                smtp.sendmail("ann@example.com", ["bob@example.org"], RAW_A)
                smtp.sendmail("carol@example.com", ["dave@example.net", "erin@example.net"], RAW_B)
            found = api.get("/api/v1/wait", params={"count": 2, "timeout": 30}).json()["messages"]
            ids = {m["Subject"]: m["ID"] for m in found}
            yield World(served, target, api, ids["Hello Bob"], ids["Invoice 42"])


def _ok(results: dict[str, Any], name: str) -> Any:
    result = results[name]
    if not result["ok"]:
        raise AssertionError(result["error"])
    return result["value"]


# --------------------------------------------------------------------------- npm mailpit-api


def test_npm_mailpit_api(world: World) -> None:
    detail = world.api.get(f"/api/v1/message/{world.id_a}").json()
    parts = {a["FileName"]: a["PartID"] for a in detail["Attachments"]}
    world.api.put("/api/v1/messages", json={"Read": False})  # opening it marked it read
    r = _run_node(
        "mailpit-api",
        "run_mailpit_api.mjs",
        {"url": world.served.url, "idA": world.id_a, "partPdf": parts["report.pdf"]},
    )
    s = Score("npm mailpit-api 2.1.0")
    v = lambda name: _ok(r, name)  # noqa: E731 - a short reader for the checks below
    from smtpmock import __version__

    s.check(
        "getInfo", lambda: (v("getInfo")["Version"], v("getInfo")["Messages"]) == (__version__, 2)
    )
    s.check(
        "getConfiguration",
        lambda: (
            v("getConfiguration")["MessageRelay"]["Enabled"] is True
            and v("getConfiguration")["MessageRelay"]["SMTPServer"]
            == f"127.0.0.1:{world.target.port}"
        ),
    )
    s.check(
        "listMessages",
        lambda: (
            [m["Subject"] for m in v("listMessages")["messages"]] == ["Invoice 42", "Hello Bob"]
            and (v("listMessages")["total"], v("listMessages")["messages_count"]) == (2, 2)
        ),
    )
    s.check(
        "listMessages(1, 1)",
        lambda: (
            [m["Subject"] for m in v("listMessagesPage")["messages"]] == ["Hello Bob"]
            and v("listMessagesPage")["start"] == 1
        ),
    )
    s.check(
        "getMessageSummary()",
        lambda: (
            v("getMessageSummaryLatest")["Subject"] == "Invoice 42"
            and v("getMessageSummaryLatest")["Date"]  # no Date header: the received time
            and [c["Address"] for c in v("getMessageSummaryLatest")["Cc"]] == ["erin@example.net"]
        ),
    )
    s.check(
        "getMessageSummary(id)",
        lambda: (
            (v("getMessageSummary")["Text"].strip(), v("getMessageSummary")["HTML"].strip())
            == (TEXT_A, HTML_A)
            and [a["FileName"] for a in v("getMessageSummary")["Attachments"]]
            == ["report.pdf", "notes.txt"]
            and v("getMessageSummary")["From"]["Address"] == "ann@example.com"
            and v("getMessageSummary")["Date"].startswith("2024-01-02T10:00:00")
        ),
    )
    s.check(
        "getMessageHeaders",
        lambda: (
            v("getMessageHeaders")["Message-Id"] == ["<hello-bob@example.com>"]
            and v("getMessageHeaders")["Mime-Version"] == ["1.0"]
            and v("getMessageHeaders")["Subject"] == ["Hello Bob"]
        ),
    )
    s.check(
        "getMessageAttachment",
        lambda: base64.b64decode(v("getMessageAttachment")) == PDF,
    )
    s.expect_unsupported("getAttachmentThumbnail", r["getAttachmentThumbnail"])
    s.check("getMessageSource", lambda: v("getMessageSource").encode() == RAW_A)
    s.check("releaseMessage", lambda: v("releaseMessage") == "ok")
    released = world.target.wait_for(1, timeout=30)[0]
    s.check(
        "releaseMessage (delivered)",
        lambda: (released.raw, released.rcpt_tos) == (RAW_A, ("zed@example.net",)),
    )
    sent = r["sentMessage"].get("value") or {}
    s.check(
        "sendMessage",
        lambda: (
            sent["Subject"] == "Sent over HTTP"
            and sent["Text"].strip() == "sent text"
            and "<b>html</b>" in sent["HTML"]
            and [a["Address"] for a in sent["To"]] == ["to@example.com"]
            and sent["From"] == {"Name": "Sender", "Address": "sender@example.com"}
            and [a["FileName"] for a in sent["Attachments"]] == ["sent.txt"]
        ),
        sent,
    )
    s.check(
        "searchMessages",
        lambda: (
            [m["Subject"] for m in v("searchMessages")["messages"]] == ["Invoice 42"]
            and v("searchMessages")["messages_count"] == 1
        ),
    )
    s.check("waitForMessage", lambda: v("waitForMessage")["Subject"] == "Invoice 42")
    s.check(
        "waitForMessages",
        lambda: [m["Subject"] for m in v("waitForMessages")["messages"]] == ["Hello Bob"],
    )
    s.expect_unsupported("htmlCheck", r["htmlCheck"])
    s.expect_unsupported("linkCheck", r["linkCheck"])
    s.expect_unsupported("spamAssassinCheck", r["spamAssassinCheck"])
    s.check(
        "getChaosTriggers",
        lambda: v("getChaosTriggers")["Authentication"] == {"ErrorCode": 535, "Probability": 0},
    )
    s.check(
        "setChaosTriggers",
        lambda: v("setChaosTriggers")["Recipient"] == {"ErrorCode": 550, "Probability": 100},
    )
    s.check(
        "setChaosTriggers()",
        lambda: (
            v("resetChaosTriggers")["Recipient"]["Probability"] == 0
            and world.api.get("/api/v1/faults").json()["rules"] == []
        ),
    )
    s.check("renderMessageHTML", lambda: HTML_A in v("renderMessageHTML"))
    s.check("renderMessageText", lambda: v("renderMessageText").strip() == TEXT_A)
    s.check(
        "listMessages (unread before any was opened)",
        lambda: (
            (v("listMessages")["unread"], v("listMessages")["messages_unread"]) == (2, 2)
            and [m["Read"] for m in v("listMessages")["messages"]] == [False, False]
        ),
    )
    sent_subject = "Sent over HTTP"
    opened = {"Hello Bob": True, "Invoice 42": True, sent_subject: True}
    s.check(
        "getMessageSummary marks read",
        lambda: v("afterOpen") == {"unread": 0, "messagesUnread": 0, "read": opened},
    )
    unread_all = dict.fromkeys(opened, False)
    s.check(
        "setReadStatus()",
        lambda: (
            v("setReadStatusAllUnread")
            == {"reply": "ok", "list": {"unread": 3, "messagesUnread": 3, "read": unread_all}}
        ),
    )
    s.check(
        "setReadStatus({IDs, Read})",
        lambda: (
            v("setReadStatusIDs")
            == {
                "reply": "ok",
                "list": {
                    "unread": 2,
                    "messagesUnread": 2,
                    "read": {**unread_all, "Hello Bob": True},
                },
            }
        ),
    )
    s.check(
        "setReadStatus({Search, Read})",
        lambda: (
            v("setReadStatusSearch")["list"]
            == {
                "unread": 1,
                "messagesUnread": 1,
                "read": {"Hello Bob": True, "Invoice 42": True, sent_subject: False},
            }
        ),
    )
    s.check(
        "searchMessages(is:unread)",
        lambda: (
            v("searchUnread") == {"unread": 1, "messagesUnread": 1, "read": {sent_subject: False}}
        ),
    )
    s.check(
        "setReadStatus({Read: true})",
        lambda: (
            v("setReadStatusAllRead")["list"]["unread"] == 0
            and all(v("setReadStatusAllRead")["list"]["read"].values())
        ),
    )
    none_tagged = {"Invoice 42": [], sent_subject: []}
    s.check(
        "setTags",
        lambda: (
            v("setTags")
            == {
                "reply": "ok",
                "tags": ["Urgent", "to do"],
                "onMessages": {**none_tagged, "Hello Bob": ["Urgent", "to do"]},
            }
        ),
    )
    s.check("getTags", lambda: v("getTags") == ["Urgent", "to do"])
    s.check("searchMessages(tag:)", lambda: v("searchTag") == ["Hello Bob"])
    s.check(
        "renameTag",
        lambda: (
            v("renameTag")
            == {
                "reply": "ok",
                "tags": ["Done", "Urgent"],
                "onMessages": {**none_tagged, "Hello Bob": ["Done", "Urgent"]},
            }
        ),
    )
    s.check(
        "deleteTag",
        lambda: (
            v("deleteTag")
            == {
                "reply": "ok",
                "tags": ["Done"],
                "onMessages": {**none_tagged, "Hello Bob": ["Done"]},
                "total": 3,
            }
        ),
    )
    s.check(
        "setTags({IDs}) removes",
        lambda: (
            v("setTagsRemove")
            == {"reply": "ok", "tags": [], "onMessages": {**none_tagged, "Hello Bob": []}}
        ),
    )
    s.check("deleteMessagesBySearch", lambda: v("deleteMessagesBySearch") == 2)
    s.check("deleteMessages({IDs})", lambda: v("deleteMessagesByID") == ["Sent over HTTP"])
    s.check("deleteMessages()", lambda: v("deleteMessagesAll") == 0)
    s.verdict()


# --------------------------------------------------------------------------- npm mailhog


def test_npm_mailhog(world: World) -> None:
    host, port = world.served.url.removeprefix("http://").rsplit(":", 1)
    r = _run_node(
        "mailhog",
        "run_mailhog.mjs",
        {"host": host, "port": int(port), "relayPort": world.target.port},
    )
    s = Score("npm mailhog 4.16.0")
    v = lambda name: _ok(r, name)  # noqa: E731 - a short reader for the checks below
    items = {i["subject"]: i for i in v("messages")["items"]} if r["messages"]["ok"] else {}
    a, b = items.get("Hello Bob", {}), items.get("Invoice 42", {})
    s.check("messages", lambda: (v("messages")["total"], v("messages")["count"]) == (2, 2))
    s.check("messages: subjects, newest first", lambda: list(items) == ["Invoice 42", "Hello Bob"])
    s.check("item.text (quoted-printable decoded)", lambda: a["text"].strip() == TEXT_A, a)
    s.check("item.html (base64 decoded)", lambda: a["html"].strip() == HTML_A, a)
    # No Content-Type header: MailHog's client finds no text/plain part (as with MailHog).
    s.check("item.text (no Content-Type)", lambda: "text" not in b and "html" not in b, b)
    s.check(
        "item.from/to/cc",
        lambda: (
            (b["from"], b["to"], b["cc"])
            == ("Carol <carol@example.com>", "Dave <dave@example.net>", "Erin <erin@example.net>")
        ),
        b,
    )
    s.check("item.date", lambda: a["date"] == "2024-01-02T10:00:00.000Z", a)
    s.check("item.deliveryDate", lambda: b["deliveryDate"][:4] >= "2024", b)
    s.check(
        "item.attachments",
        lambda: (
            [(x["name"], x["type"], x["encoding"]) for x in a["attachments"]]
            == [
                ("report.pdf", "application/pdf", "base64"),
                ("notes.txt", "text/plain; charset=utf-8", "base64"),
            ]
            and base64.b64decode(a["attachments"][0]["Body"]) == PDF
        ),
        a,
    )
    s.check(
        "messages(1, 1)",
        lambda: (
            (v("messagesPage")["count"], v("messagesPage")["start"], v("messagesPage")["subjects"])
            == (1, 1, ["Hello Bob"])
        ),
    )
    s.check("search", lambda: v("search") == {"total": 1, "subjects": ["Invoice 42"]})
    s.check("search to", lambda: v("searchTo") == {"total": 1, "subjects": ["Hello Bob"]})
    s.check("latestFrom", lambda: v("latestFrom")["subject"] == "Invoice 42")
    s.check("latestTo", lambda: v("latestTo")["text"].strip() == TEXT_A)
    s.check("latestContaining", lambda: v("latestContaining")["subject"] == "Invoice 42")
    s.check("releaseMessage", lambda: v("releaseMessage") == 200)
    released = world.target.wait_for(1, timeout=30)[0]
    s.check(
        "releaseMessage (delivered)",
        lambda: (released.raw, released.rcpt_tos) == (RAW_A, ("zed@example.net",)),
    )
    s.check("deleteMessage", lambda: v("deleteMessage") == ["Hello Bob"])
    s.check("deleteAll", lambda: v("deleteAll") == 0 and world.stored() == [])
    s.verdict()


# --------------------------------------------------------------------------- cypress-mailpit


def test_cypress_mailpit(world: World) -> None:
    r = _run_node("cypress-mailpit", "run_cypress_mailpit.mjs", {"url": world.served.url})
    s = Score("cypress-mailpit 2.0.0")
    v = lambda name: _ok(r, name)  # noqa: E731 - a short reader for the checks below
    both = {"count": 2, "subjects": ["Invoice 42", "Hello Bob"]}
    s.check("mailpitGetAllMails", lambda: v("mailpitGetAllMails") == both)
    s.check("mailpitGetMail", lambda: v("mailpitGetMail")["Subject"] == "Invoice 42")
    only_b = {"count": 1, "subjects": ["Invoice 42"]}
    only_a = {"count": 1, "subjects": ["Hello Bob"]}
    none: dict[str, Any] = {"count": 0, "subjects": []}
    s.check("mailpitSearchEmails", lambda: v("mailpitSearchEmails") == only_b)
    s.check("mailpitGetEmailsBySubject", lambda: v("mailpitGetEmailsBySubject") == only_b)
    s.check("mailpitGetEmailsByTo", lambda: v("mailpitGetEmailsByTo") == only_a)
    s.check("mailpitHasEmailsBySearch", lambda: v("mailpitHasEmailsBySearch") == only_a)
    s.check("mailpitNotHasEmailsBySearch", lambda: v("mailpitNotHasEmailsBySearch") == none)
    s.check("mailpitHasEmailsBySubject", lambda: v("mailpitHasEmailsBySubject") == only_a)
    s.check("mailpitNotHasEmailsBySubject", lambda: v("mailpitNotHasEmailsBySubject") == none)
    s.check("mailpitHasEmailsByTo", lambda: v("mailpitHasEmailsByTo") == only_b)
    s.check("mailpitNotHasEmailsByTo", lambda: v("mailpitNotHasEmailsByTo") == none)
    s.check("mailpitGetSubject", lambda: v("mailpitGetSubject") == "Hello Bob")
    s.check("mailpitGetFromAddress", lambda: v("mailpitGetFromAddress") == "ann@example.com")
    s.check(
        "mailpitGetRecipientAddress", lambda: v("mailpitGetRecipientAddress") == ["bob@example.org"]
    )
    s.check(
        "mailpitGetAttachments", lambda: v("mailpitGetAttachments") == ["report.pdf", "notes.txt"]
    )
    s.check("mailpitGetMailHTMlBody", lambda: HTML_A in v("mailpitGetMailHTMlBody"))
    s.check("mailpitGetMailTextBody", lambda: v("mailpitGetMailTextBody").strip() == TEXT_A)
    s.expect_unsupported(
        "mailpitGetMailSpamAssassinSummary", r["mailpitGetMailSpamAssassinSummary"]
    )
    sent = r["sentMail"].get("value") or {}
    s.check(
        "mailpitSendMail",
        lambda: (
            sent["Subject"] == "Sent by cypress-mailpit"
            and sent["Text"].strip() == "cypress text"
            and [c["Address"] for c in sent["Cc"]] == ["cc@example.com"]
            and [c["Address"] for c in sent["ReplyTo"]] == ["replyto@example.com"]
            and sorted(sent["Envelope"]["rcpt_tos"])
            == ["bcc@example.com", "cc@example.com", "jane@example.com"]
            and sent["Tags"] == ["Cypress"]
        ),
        sent,
    )
    cypress = "Sent by cypress-mailpit"
    unread = {"Hello Bob": False, "Invoice 42": False, cypress: False}
    s.check(
        "mailpitSetAllEmailStatusAsUnRead",
        lambda: v("mailpitSetAllEmailStatusAsUnRead") == {"unread": 3, "read": unread},
    )
    s.check(
        "mailpitSetStatusAsRead",
        lambda: v("mailpitSetStatusAsRead") == {"unread": 2, "read": {**unread, "Hello Bob": True}},
    )
    s.check(
        "mailpitSetStatusAsUnRead",
        lambda: v("mailpitSetStatusAsUnRead") == {"unread": 3, "read": unread},
    )
    s.check(
        "mailpitSetAllEmailStatusAsRead",
        lambda: (
            v("mailpitSetAllEmailStatusAsRead")
            == {"unread": 0, "read": dict.fromkeys(unread, True)}
        ),
    )
    s.check(
        "mailpitDeleteEmailsBySearch",
        lambda: (
            v("mailpitDeleteEmailsBySearch")
            == {"count": 2, "subjects": ["Sent by cypress-mailpit", "Hello Bob"]}
        ),
    )
    s.check("mailpitDeleteAllEmails", lambda: v("mailpitDeleteAllEmails") == none)
    s.verdict()


# --------------------------------------------------------------------------- cypress-mailhog


def test_cypress_mailhog(world: World) -> None:
    r = _run_node("cypress-mailhog", "run_cypress_mailhog.mjs", {"url": world.served.url + "/"})
    s = Score("cypress-mailhog 2.5.0")
    v = lambda name: _ok(r, name)  # noqa: E731 - a short reader for the checks below
    s.check("mhGetJimMode (off)", lambda: v("mhGetJimModeOff") is False)
    s.check("mhSetJimMode(true)", lambda: v("mhSetJimModeOn") == 200)
    s.check("mhGetJimMode (on)", lambda: v("mhGetJimModeOn") is True)
    s.check("mhSetJimMode(false)", lambda: v("mhSetJimModeOff") == 200)
    s.check(
        "mhGetJimMode (off again)",
        lambda: (
            v("mhGetJimModeOffAgain") is False
            and world.api.get("/api/v1/faults").json()["rules"] == []
        ),
    )
    s.check("mhGetAllMails", lambda: v("mhGetAllMails") == ["Invoice 42", "Hello Bob"])
    s.check("mhGetMailsBySubject", lambda: v("mhGetMailsBySubject") == ["Invoice 42"])
    s.check("mhGetMailsByRecipient", lambda: v("mhGetMailsByRecipient") == ["Hello Bob"])
    s.check("mhGetMailsBySender", lambda: v("mhGetMailsBySender") == ["Invoice 42"])
    s.check("mhSearchMails", lambda: v("mhSearchMails") == ["Invoice 42"])
    s.check("mhFirst", lambda: v("mhFirst") == "Invoice 42")
    s.check("mhFilterBySubject", lambda: v("mhFilterBySubject") == ["Hello Bob"])
    s.check("mhFilterByRecipient", lambda: v("mhFilterByRecipient") == ["Invoice 42"])
    s.check("mhFilterBySender", lambda: v("mhFilterBySender") == ["Hello Bob"])
    s.check("mhGetSubject", lambda: v("mhGetSubject") == "Hello Bob")
    s.check("mhGetBody", lambda: v("mhGetBody") == "Total: 42 EUR\r\n")
    s.check("mhGetSender", lambda: v("mhGetSender") == "ann@example.com")
    s.check(
        "mhGetRecipients", lambda: v("mhGetRecipients") == ["dave@example.net", "erin@example.net"]
    )
    s.check("mhGetAttachments", lambda: v("mhGetAttachments") == ["report.pdf", "notes.txt"])
    for name in ("mhHasMailWithSubject", "mhHasMailFrom", "mhHasMailTo", "mhWaitForMails"):
        # Assertion commands: under the harness their `.should` is not evaluated, so only the
        # requests they make are checked (they must succeed).
        s.check(name, lambda name=name: r[name]["ok"], r[name])
    s.check("mhDeleteAll", lambda: v("mhDeleteAll") == [] and world.stored() == [])
    s.verdict()


# --------------------------------------------------------------------------- PyPI mailhog


def test_pypi_mailhog(world: World) -> None:
    mailhog = pytest.importorskip("mailhog") if not _ci() else __import__("mailhog")
    host, port = world.served.url.removeprefix("http://").rsplit(":", 1)
    client = mailhog.Mailhog(host, int(port))
    s = Score("PyPI mailhog 0.1.1")
    listed = client.messages()
    s.check("messages", lambda: (listed.total, listed.count, len(listed.items)) == (2, 2, 2))
    first, second = listed.items
    s.check(
        "Message.get_subject",
        lambda: [first.get_subject(), second.get_subject()] == ["Invoice 42", "Hello Bob"],
    )
    s.check("Message.get_sender", lambda: first.get_sender() == "carol@example.com")
    s.check(
        "Message.get_recipients",
        lambda: first.get_recipients() == ["dave@example.net", "erin@example.net"],
    )
    s.check("Message.content.body", lambda: first.content.body == "Total: 42 EUR\r\n")
    s.check(
        "Message.mime.parts",
        lambda: [p.body.strip() for p in second.mime.parts][2] == base64.b64encode(PDF).decode(),
    )
    page = client.messages(start=1, limit=1)
    s.check(
        "messages(start, limit)", lambda: [m.get_subject() for m in page.items] == ["Hello Bob"]
    )
    found = client.search("Invoice")
    s.check("search", lambda: [m.get_subject() for m in found.items] == ["Invoice 42"])
    by_to = client.search("bob@example.org", kind="to")
    s.check("search kind=to", lambda: [m.get_subject() for m in by_to.items] == ["Hello Bob"])
    client.delete(first)
    s.check("delete", lambda: [m["Subject"] for m in world.stored()] == ["Hello Bob"])
    client.delete_all()
    s.check("delete_all", lambda: world.stored() == [])
    s.verdict()


# ------------------------------------------------------------------ PyPI mailpit-api-client


def test_pypi_mailpit_api_client(world: World) -> None:
    if not _ci():
        pytest.importorskip("mailpit.client.api")
    import mailpit.client.api as mailpit_api
    from mailpit.testing.unittest import EMailTestCase

    api = mailpit_api.API(world.served.url)
    s = Score("PyPI mailpit-api-client 1.0.0")
    listed = api.get_messages()
    s.check(
        "get_messages",
        lambda: (
            (listed.total, listed.count, [m.subject for m in listed.messages])
            == (2, 2, ["Invoice 42", "Hello Bob"])
        ),
    )
    s.check(
        "get_messages (unread)",
        lambda: listed.unread == 2 and [m.read for m in listed.messages] == [False, False],
    )
    page = api.get_messages(limit=1, start=1)
    s.check(
        "get_messages(limit, start)", lambda: [m.subject for m in page.messages] == ["Hello Bob"]
    )
    message = api.get_message(world.id_a)
    s.check(
        "get_message",
        lambda: (
            (message.subject, message.from_.address, message.text.strip(), message.html.strip())
            == ("Hello Bob", "ann@example.com", TEXT_A, HTML_A)
            and message.date.isoformat() == "2024-01-02T10:00:00+00:00"
            and [a.file_name for a in message.attachments] == ["report.pdf", "notes.txt"]
        ),
    )
    undated = api.get_message(world.id_b)
    s.check("get_message (no Date header)", lambda: undated.date.year >= 2024)
    # Mailpit marks a message read when it is opened (the client's model says so too).
    s.check("get_message (marked read)", lambda: message.read and undated.read)
    s.check("get_messages (none unread)", lambda: api.get_messages().unread == 0)
    api.put_messages([world.id_a], "Read", False)
    after_put = api.get_messages()
    s.check(
        "put_messages(ids, 'Read', False)",
        lambda: (
            after_put.unread == 1
            and {m.subject: m.read for m in after_put.messages}
            == {"Hello Bob": False, "Invoice 42": True}
        ),
    )
    notes = next(a for a in message.attachments if a.file_name == "notes.txt")
    s.check(
        "get_message_attachment",
        lambda: api.get_message_attachment(world.id_a, notes.part_id) == NOTES,
    )
    headers = api.get_message_headers(world.id_a)
    s.check(
        "get_message_headers",
        lambda: (
            headers.message_id == ["<hello-bob@example.com>"]
            and headers.from_ == ["Ann <ann@example.com>"]
            and headers.date[0].year == 2024
        ),
    )

    class Case(EMailTestCase):
        api_url = world.served.url

        def test(self) -> None:  # pragma: no cover - run by hand below
            pass

    Case.setUpClass()
    case = Case("test")
    s.check(
        "EMailTestCase.assertMessageReceived",
        lambda: case.assertMessageReceived("hello-bob@example.com") is None,
    )
    api.delete_messages([world.id_b])
    s.check(
        "delete_messages([id])", lambda: [m["Subject"] for m in world.stored()] == ["Hello Bob"]
    )
    api.delete_messages([])
    s.check("delete_messages([]) deletes all", lambda: world.stored() == [])
    s.verdict()


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
