"""Mailpit's and MailHog's shapes in detail, beyond what the client libraries look at: MailHog's
``data.Message`` (folded headers, nested MIME parts with still-encoded bodies), Mailpit's send
validation, delete bodies, ``/view`` and its ``//view`` redirect, Jim, and ``/api/v1/info``."""

from __future__ import annotations

import base64
import smtplib
from collections.abc import Iterator

import httpx
import pytest

from smtpmock import __version__

from .served import Served

pytest.importorskip("fastapi")

NESTED = (
    b"From: Ann <ann@example.com>\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: a long\r\n subject, folded\r\n"
    b"X-Trace: one\r\n"
    b"X-Trace: two\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"caf=C3=A9\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<p>caf\xc3\xa9</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Disposition: attachment; filename=blob.bin\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAECAw==\r\n"
    b"--outer--\r\n"
    b"epilogue\r\n"
)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with Served() as process:
        yield process


@pytest.fixture
def api(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as http:
        assert http.request("DELETE", "/api/v1/messages").status_code == 200
        http.request("DELETE", "/api/v1/faults")
        yield http


def _send(served: Served, raw: bytes, helo: str = "client.example") -> str:
    """Send *raw* and return the id of the newest message once it is stored."""
    with httpx.Client(base_url=served.url, timeout=30) as http:
        after = http.get("/api/v1/info").json()["LastSeq"]
        with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=10) as client:
            client.ehlo(helo)
            client.sendmail("ann@example.com", ["bob@example.org"], raw)
        params = {"count": 1, "timeout": 30, "after": after}
        found = http.get("/api/v1/wait", params=params).json()
    return str(found["messages"][0]["ID"])


def test_mailhog_item_is_the_whole_message(served: Served, api: httpx.Client) -> None:
    id = _send(served, NESTED)
    item = api.get("/api/v2/messages").json()["items"][0]
    headers = item["Content"]["Headers"]
    assert headers["Subject"] == ["a long subject, folded"]  # continuation appended raw
    assert headers["X-Trace"] == ["one", "two"]
    assert headers["Message-ID"] == [id]  # MailHog adds one when there is none
    assert headers["Return-Path"] == ["<ann@example.com>"]
    assert headers["Received"][0].startswith("from client.example by smtpmock")
    assert item["Content"]["Body"] == NESTED.split(b"\r\n\r\n", 1)[1].decode()
    assert item["Content"]["Size"] == len(NESTED)
    assert item["Raw"] == {
        "From": "ann@example.com",
        "To": ["bob@example.org"],
        "Data": NESTED.decode(),
        "Helo": "client.example",
    }
    assert item["From"] == {"Relays": None, "Mailbox": "ann", "Domain": "example.com", "Params": ""}
    assert api.get(f"/api/v1/messages/{id}").json() == item  # MailHog's v1 message
    download = api.get(f"/api/v1/messages/{id}/download")
    assert (download.content, download.headers["content-type"]) == (NESTED, "message/rfc822")
    assert api.get("/api/v1/messages/nope").status_code == 404
    outer = item["MIME"]["Parts"]
    assert len(outer) == 2  # no preamble, no epilogue
    inner = outer[0]["MIME"]["Parts"]
    assert [p["Body"] for p in inner] == ["caf=C3=A9", "<p>café</p>"]  # still encoded
    assert inner[0]["Headers"]["Content-Transfer-Encoding"] == ["quoted-printable"]
    assert outer[1]["Body"] == "AAECAw=="
    assert base64.b64decode(outer[1]["Body"]) == b"\x00\x01\x02\x03"
    assert outer[1]["MIME"] is None
    assert item["Content"]["MIME"] is None  # MailHog keeps the top level in item.MIME


def test_mailhog_paging_and_search_errors(served: Served, api: httpx.Client) -> None:
    _send(served, NESTED)
    assert api.get("/api/v2/messages", params={"limit": "nonsense"}).json()["count"] == 1
    assert api.get("/api/v2/messages", params={"start": 1}).json()["items"] == []
    assert api.get("/api/v2/search", params={"kind": "bogus", "query": "x"}).status_code == 400
    assert api.get("/api/v2/search", params={"kind": "to", "query": ""}).status_code == 400
    assert api.get("/api/v2/search", params={"kind": "to", "query": "BOB@"}).json()["total"] == 1


def test_delete_bodies(served: Served, api: httpx.Client) -> None:
    first = _send(served, NESTED)
    second = _send(served, NESTED)
    form = api.request(
        "DELETE",
        "/api/v1/messages",
        content=f"ids={first}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.json() == {"deleted": 1}
    refused = api.request(
        "DELETE",
        "/api/v1/messages",
        content=b"other=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert refused.status_code == 400
    assert api.request("DELETE", f"/api/v1/messages/{first}").status_code == 404
    gone = api.request("DELETE", f"/api/v1/messages/{second}")
    assert (gone.status_code, gone.content) == (200, b"")
    assert api.get("/api/v1/info").json()["Messages"] == 0


def test_send_validates_and_stores(served: Served, api: httpx.Client) -> None:
    bad = [
        {},
        {"From": {"Name": "x"}},
        {"From": "a@b.c", "Subject": "x\r\nBcc: victim@example.com"},
        {"From": "a@b.c", "Headers": {"X-A": "1\r\nX-B: 2"}},
        {"From": "a@b.c", "Attachments": [{"Filename": "a", "Content": "***"}]},
        {"From": "a@b.c", "To": "not-a-list"},
    ]
    for body in bad:
        assert api.post("/api/v1/send", json=body).status_code == 400, body
    assert api.post("/api/v1/send", content=b"not json").status_code == 400
    assert api.get("/api/v1/info").json()["Messages"] == 0
    sent = api.post(
        "/api/v1/send",
        json={
            "From": {"Email": "app@example.com"},
            "To": [{"Email": "u@example.com", "Name": "U"}],
            "Bcc": ["hidden@example.com"],
            "Subject": "Héllo",
            "HTML": '<img src="cid:logo">',
            "Headers": {"X-Campaign": "spring"},
            "Attachments": [
                {"Filename": "logo.png", "Content": "iVBORw0KGgo=", "ContentID": "logo"}
            ],
        },
    ).json()
    message = api.get(f"/api/v1/message/{sent['ID']}").json()
    assert message["Subject"] == "Héllo"
    assert message["Envelope"]["rcpt_tos"] == ["u@example.com", "hidden@example.com"]
    assert message["Envelope"]["mail_from"] == "app@example.com"
    assert [(a["FileName"], a["ContentID"]) for a in message["Inline"]] == [("logo.png", "logo")]
    assert api.get(f"/api/v1/message/{sent['ID']}/headers").json()["X-Campaign"] == ["spring"]


def test_send_takes_internationalised_addresses(served: Served, api: httpx.Client) -> None:
    # RFC 6531/6532 addresses, as Mailpit's send takes them: UTF-8 headers, an SMTPUTF8
    # envelope; a malformed one is still a 400 naming the field.
    sent = api.post(
        "/api/v1/send",
        json={
            "From": {"Email": "jörg@example.com", "Name": "Jörg"},
            "To": [{"Email": "zoë@exämple.com"}],
            "Bcc": ["ünsichtbar@example.com"],
            "Text": "grüße",
        },
    )
    assert sent.status_code == 200, sent.text
    message = api.get(f"/api/v1/message/{sent.json()['ID']}").json()
    assert message["From"] == {"Name": "Jörg", "Address": "jörg@example.com"}
    assert message["To"] == [{"Name": "", "Address": "zoë@exämple.com"}]
    assert message["Envelope"]["rcpt_tos"] == ["zoë@exämple.com", "ünsichtbar@example.com"]
    assert message["Envelope"]["smtputf8"] is True
    raw = api.get(f"/api/v1/message/{sent.json()['ID']}/raw").content
    assert "To: zoë@exämple.com".encode() in raw
    for email in ("jö rg@example.com", "jörg@", "jö<rg@example.com", "jö@rg@example.com"):
        refused = api.post("/api/v1/send", json={"From": email, "Text": "x"})
        assert refused.status_code == 400, email
        assert "From" in refused.text
    refused = api.post("/api/v1/send", json={"From": "a@b.c", "Bcc": ["x y@example.com"]})
    assert refused.status_code == 400


def test_view_routes(served: Served, api: httpx.Client) -> None:
    id = _send(served, NESTED)
    html = api.get(f"/view/{id}.html")
    assert "<p>café</p>" in html.text
    assert "sandbox" in html.headers["content-security-policy"]
    assert api.get(f"/view/{id}.txt").text.strip() == "café"
    assert api.get("/view/latest.txt").text.strip() == "café"
    redirect = httpx.get(f"{served.url}//view/{id}.html?embed=1", follow_redirects=False)
    assert (redirect.status_code, redirect.headers["location"]) == (301, f"/view/{id}.html?embed=1")
    assert api.get(f"/view/{id}.pdf").status_code == 404
    assert api.get("/view/nope.html").status_code == 404


def test_jim_and_info(served: Served, api: httpx.Client) -> None:
    assert api.get("/api/v2/jim").status_code == 404
    assert api.put("/api/v2/jim", json={"AcceptChance": 1}).status_code == 404
    assert api.post("/api/v2/jim", json={"RejectSenderChance": 1.0}).status_code == 200
    jim = api.get("/api/v2/jim").json()
    assert (jim["RejectSenderChance"], jim["AcceptChance"]) == (1.0, 0.99)
    changed = api.put(
        "/api/v2/jim",
        json={
            "AcceptChance": 1,
            "DisconnectChance": 0,
            "LinkSpeedAffect": 0,
            "RejectRecipientChance": 0,
            "RejectAuthChance": 0,
        },
    )
    assert changed.status_code == 200
    names = sorted(r["name"] for r in api.get("/api/v1/faults").json()["rules"])
    assert names == ["jim:reject-sender"]
    with pytest.raises(smtplib.SMTPSenderRefused):
        _send(served, NESTED)
    assert api.post("/api/v2/jim", json={"Bogus": 1}).status_code == 400
    assert api.delete("/api/v2/jim").status_code == 200
    assert api.get("/api/v1/faults").json()["rules"] == []
    info = api.get("/api/v1/info").json()
    assert info["Version"] == __version__
    assert info["RuntimeStats"]["SMTPAccepted"] >= 0
    assert info["RuntimeStats"]["Memory"] > 0
    assert set(info) >= {"Database", "DatabaseSize", "Messages", "Unread", "Tags", "LatestVersion"}


def test_mailhog_pages_end_at_a_byte_budget() -> None:
    """Whole messages in every v2 item: past the page's byte budget (64 MiB; lowered here on an
    in-process server) a page ends early, with at least one item, and ``start`` pages on."""
    import socket
    import threading

    import uvicorn

    from smtpmock import SMTPMock
    from smtpmock._http import create_app, wrap

    with SMTPMock() as mock:
        app = create_app(mock)
        app.state.mailhog_page_bytes = 2500
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()  # connections wait in the backlog until the server thread accepts them
        server = uvicorn.Server(uvicorn.Config(wrap(app), log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
        thread.start()
        try:
            body = "\r\n".join(["x" * 99] * 10)  # about 1 KB
            with smtplib.SMTP(mock.host, mock.port, timeout=10) as client:
                for n in range(4):
                    client.sendmail("a@x.org", ["b@x.org"], f"Subject: {n}\r\n\r\n{body}\r\n")
            mock.wait_for(4, timeout=30)
            url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/v2/messages"
            with httpx.Client(timeout=30) as http:
                first = http.get(url).json()
                subjects = [i["Content"]["Headers"]["Subject"][0] for i in first["items"]]
                assert (first["total"], first["count"], subjects) == (4, 2, ["3", "2"])
                rest = http.get(url, params={"start": 2}).json()
                assert [i["Content"]["Headers"]["Subject"][0] for i in rest["items"]] == ["1", "0"]
                app.state.mailhog_page_bytes = 10
                assert http.get(url).json()["count"] == 1  # never an empty page
        finally:
            server.should_exit = True
            thread.join(30)
            sock.close()


def test_send_refuses_what_is_not_an_address(served: Served, api: httpx.Client) -> None:
    for body in (
        {"From": {"Email": "not an address <"}},
        {"From": "a@b.c", "To": [{"Email": "x@y.z\r\nBcc: victim@example.com"}]},
        {"From": "a@b.c", "Cc": [{"Email": "c@d.e", "Name": "Eve\nBcc: victim@example.com"}]},
    ):
        answer = api.post("/api/v1/send", json=body)
        assert answer.status_code == 400, body
    assert api.get("/api/v1/info").json()["Messages"] == 0
