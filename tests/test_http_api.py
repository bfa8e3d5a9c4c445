"""The HTTP API of ``smtpmock serve``, over a real subprocess, with httpx."""

from __future__ import annotations

import base64
import hashlib
import json
import smtplib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from smtpmock import Client
from tests.mail import send
from tests.served import Served

ATTACHED = (
    b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: Files\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
    b"--B\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
    b"--B\r\nContent-Type: text/html\r\nContent-Disposition: attachment; "
    b'filename="../../etc/evil.html"\r\n\r\n<script>alert(1)</script>\r\n'
    b"--B\r\nContent-Type: image/png\r\nContent-Disposition: attachment; "
    b'filename="/abs/path\\\\win\\\\logo.png"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    b"iVBORw0K\r\n--B--\r\n"
)


@pytest.fixture
def api(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as http:
        response = http.request("DELETE", "/api/v1/messages", json={"All": True})
        assert response.status_code == 200
        http.request("DELETE", "/api/v1/faults")
        yield http
        # The server is shared by the session's tests: no fault rule outlives its test.
        http.request("DELETE", "/api/v1/faults")


def _send_raw(served: Served, raw: bytes, to: str = "bob@example.com") -> None:
    with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=30) as smtp:
        smtp.sendmail("alice@example.com", [to], raw)


def _wait(api: httpx.Client, count: int, query: str = "") -> list[dict[str, object]]:
    response = api.get("/api/v1/wait", params={"count": count, "query": query, "timeout": 30})
    assert response.status_code == 200, response.text
    messages: list[dict[str, object]] = response.json()["messages"]
    return messages


def test_health_and_info(served: Served, api: httpx.Client) -> None:
    assert api.get("/livez").text == "ok"
    assert api.get("/readyz").status_code == 200
    info = api.get("/api/v1/info").json()
    assert info["SMTP"] == {"Host": served.smtp_host, "Port": served.smtp_port}
    assert info["Messages"] == 0


def test_list_newest_first_paginated_without_bodies(served: Served, api: httpx.Client) -> None:
    for i in range(5):
        send(served.smtp_host, served.smtp_port, subject=f"m{i}", body=f"secret body {i}")
    _wait(api, 5)
    page = api.get("/api/v1/messages", params={"start": 1, "limit": 2}).json()
    assert page["total"] == 5
    assert [m["Subject"] for m in page["messages"]] == ["m3", "m2"]
    summary = page["messages"][0]
    for key in (
        "ID",
        "MessageID",
        "Read",
        "From",
        "To",
        "Cc",
        "Bcc",
        "ReplyTo",
        "Subject",
        "Created",
        "Username",
        "Tags",
        "Size",
        "Attachments",
        "Snippet",
    ):
        assert key in summary
    assert "Text" not in summary
    assert "HTML" not in summary
    assert "Raw" not in summary
    assert summary["From"] == {"Name": "", "Address": "alice@example.com"}


def test_search_and_bad_query(served: Served, api: httpx.Client) -> None:
    send(served.smtp_host, served.smtp_port, subject="Your invoice", to=["carol@example.com"])
    send(served.smtp_host, served.smtp_port, subject="Welcome")
    _wait(api, 2)
    found = api.get("/api/v1/search", params={"query": "to:carol invoice"}).json()
    assert found["messages_count"] == 1
    assert found["total"] == 2
    assert found["messages"][0]["Subject"] == "Your invoice"
    bad = api.get("/api/v1/search", params={"query": "colour:red"})
    assert bad.status_code == 400
    assert "unknown search filter" in bad.text


def test_one_message_raw_headers_and_reading_changes_nothing(
    served: Served, api: httpx.Client
) -> None:
    raw = (
        b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: Exact\r\n"
        b"X-Trace: a\r\nX-Trace: b\r\n\r\nline one\r\n..dot\r\ntrailing  \r\n"
    )
    _send_raw(served, raw)
    [summary] = _wait(api, 1)
    before = api.get(f"/api/v1/message/{summary['ID']}").json()
    assert before["Subject"] == "Exact"
    assert before["Text"].startswith("line one")
    assert before["Envelope"]["rcpt_tos"] == ["bob@example.com"]
    assert before["Read"] is True  # opening a message marks it read, as in Mailpit
    assert "DATA" in [
        e["text"].split()[0].upper()
        for e in before["Transcript"]["entries"]
        if e["kind"] == "client"
    ]
    assert api.get("/api/v1/message/latest").json()["ID"] == summary["ID"]
    got = api.get(f"/api/v1/message/{summary['ID']}/raw")
    assert got.content == raw  # smtplib stuffs the dots, the server unstuffs them: exact
    assert got.headers["content-disposition"] == f'attachment; filename="{summary["ID"]}.eml"'
    headers = api.get(f"/api/v1/message/{summary['ID']}/headers").json()
    assert headers["X-Trace"] == ["a", "b"]
    after = api.get(f"/api/v1/message/{summary['ID']}").json()
    assert after == before
    assert api.get("/api/v1/message/nope").status_code == 404


def test_parts_are_served_by_index_with_safe_names_and_types(
    served: Served, api: httpx.Client
) -> None:
    _send_raw(served, ATTACHED)
    [summary] = _wait(api, 1)
    detail = api.get(f"/api/v1/message/{summary['ID']}").json()
    assert [a["FileName"] for a in detail["Attachments"]] == [
        "../../etc/evil.html",
        "/abs/path\\win\\logo.png",
    ]
    html_part = api.get(
        f"/api/v1/message/{summary['ID']}/part/{detail['Attachments'][0]['PartID']}"
    )
    assert html_part.status_code == 200
    assert html_part.headers["content-type"] == "application/octet-stream"  # never text/html
    assert html_part.headers["content-disposition"] == 'attachment; filename="evil.html"'
    assert html_part.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in html_part.headers["content-security-policy"]
    assert html_part.content == b"<script>alert(1)</script>"
    png = api.get(f"/api/v1/message/{summary['ID']}/part/{detail['Attachments'][1]['PartID']}")
    assert png.headers["content-type"] == "image/png"
    assert png.headers["content-disposition"] == 'attachment; filename="logo.png"'
    assert png.content == base64.b64decode("iVBORw0K")
    assert api.get(f"/api/v1/message/{summary['ID']}/part/99").status_code == 404
    assert api.get(f"/api/v1/message/{summary['ID']}/part/..%2F..%2Fx").status_code in (404, 422)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"IDs": "all"}',
        b'{"IDs": [1]}',
        b'{"All": "yes"}',
        b'{"All": true, "IDs": []}',
        b"null",
        b"[]",
    ],
)
def test_empty_or_malformed_delete_deletes_nothing(
    served: Served, api: httpx.Client, body: bytes
) -> None:
    send(served.smtp_host, served.smtp_port)
    _wait(api, 1)
    response = api.request("DELETE", "/api/v1/messages", content=body)
    assert response.status_code == 400
    assert api.get("/api/v1/info").json()["Messages"] == 1


@pytest.mark.parametrize("body", [b"", b"{}", b'{"IDs": []}', b'{"ids": null}'])
def test_delete_without_ids_deletes_all_as_mailpit_and_mailhog(
    served: Served, api: httpx.Client, body: bytes
) -> None:
    for _ in range(2):
        send(served.smtp_host, served.smtp_port)
    _wait(api, 2)
    response = api.request("DELETE", "/api/v1/messages", content=body)
    assert (response.status_code, response.json()) == (200, {"deleted": 2})
    assert api.get("/api/v1/info").json()["Messages"] == 0


def test_delete_one_matching_and_all(served: Served, api: httpx.Client) -> None:
    for subject in ("keep", "drop me", "drop too", "other"):
        send(served.smtp_host, served.smtp_port, subject=subject)
    listed = {m["Subject"]: m["ID"] for m in _wait(api, 4)}
    assert api.delete(f"/api/v1/message/{listed['other']}").json() == {"deleted": 1}
    assert api.delete(f"/api/v1/message/{listed['other']}").status_code == 404
    assert api.delete("/api/v1/search", params={"query": ""}).status_code == 400
    assert api.delete("/api/v1/search", params={"query": "subject:drop"}).json() == {"deleted": 2}
    remaining = api.get("/api/v1/messages").json()["messages"]
    assert [m["Subject"] for m in remaining] == ["keep"]
    response = api.request("DELETE", "/api/v1/messages", json={"IDs": [listed["keep"], "x"]})
    assert response.json() == {"deleted": 1}
    send(served.smtp_host, served.smtp_port)
    _wait(api, 1)
    assert api.request("DELETE", "/api/v1/messages", json={"All": True}).json() == {"deleted": 1}


def test_wait_answers_when_mail_lands(served: Served, api: httpx.Client) -> None:
    sender = threading.Thread(
        target=lambda: send(served.smtp_host, served.smtp_port, subject="late", to=["w@x.org"])
    )
    response: list[httpx.Response] = []
    waiter = threading.Thread(
        target=lambda: response.append(
            api.get("/api/v1/wait", params={"query": "to:w@x.org", "count": 1, "timeout": 60})
        )
    )
    waiter.start()
    sender.start()
    sender.join()
    waiter.join()
    assert response[0].status_code == 200
    body = response[0].json()
    assert body["Status"] == "matched"
    assert [m["Subject"] for m in body["messages"]] == ["late"]


def test_wait_timeout_is_409_with_what_did_arrive(served: Served, api: httpx.Client) -> None:
    send(served.smtp_host, served.smtp_port, subject="one", to=["t@x.org"])
    _wait(api, 1)
    response = api.get("/api/v1/wait", params={"query": "to:t@x.org", "count": 2, "timeout": 0.2})
    assert response.status_code == 409  # not 408, which HTTP clients retry by themselves
    body = response.json()
    assert body["Status"] == "timeout"
    assert body["status"] == 409
    assert body["Count"] == 1
    assert body["Wanted"] == 2
    assert [m["Subject"] for m in body["messages"]] == ["one"]
    assert "1 of 2" in body["error"]
    assert api.get("/api/v1/wait", params={"query": "is:loud"}).status_code == 400
    assert api.get("/api/v1/wait", params={"timeout": 10_000}).status_code == 400


def test_event_stream_announces_new_and_deleted(served: Served, api: httpx.Client) -> None:
    with api.stream("GET", "/api/v1/events", headers={"Origin": served.url}) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = (line for line in stream.iter_lines() if line)
        assert next(lines) == ": connected"
        send(served.smtp_host, served.smtp_port, subject="live")
        event = [next(lines), next(lines)]
        assert event[0] == "event: added"
        summary = json.loads(event[1].removeprefix("data: "))
        assert summary["Subject"] == "live"
        api.delete(f"/api/v1/message/{summary['ID']}")
        assert [next(lines), next(lines)] == ["event: deleted", f'data: ["{summary["ID"]}"]']


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1.evil.example"])
def test_event_stream_refuses_foreign_origins(api: httpx.Client, origin: str) -> None:
    response = api.get("/api/v1/events", headers={"Origin": origin})
    assert response.status_code == 403
    assert (
        api.request(
            "DELETE", "/api/v1/messages", json={"All": True}, headers={"Origin": origin}
        ).status_code
        == 403
    )


def _raw_request(served: Served, head: bytes, body: bytes) -> bytes:
    """Send a request over a plain socket and return the status line (the server may close
    before reading the whole body, which an HTTP client library reports as a reset)."""
    host, port = served.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head + body)
        return sock.makefile("rb").readline()


def test_oversized_bodies_are_refused(served: Served, api: httpx.Client) -> None:
    send(served.smtp_host, served.smtp_port)
    _wait(api, 1)
    # Refused on the Content-Length alone, before any of the body is read.
    status = _raw_request(
        served,
        b"DELETE /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 50000000\r\n\r\n",
        b"",
    )
    assert status.startswith(b"HTTP/1.1 413")
    # No Content-Length: counted as it streams, refused once past the limit (1 MiB).
    chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
    status = _raw_request(
        served,
        b"DELETE /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        chunk * 17,
    )
    assert status.startswith(b"HTTP/1.1 413")
    assert api.get("/api/v1/info").json()["Messages"] == 1


def test_fault_rule_removed_by_id(served: Served, api: httpx.Client) -> None:
    first = api.post("/api/v1/faults", json={"stage": "MAIL", "code": 451}).json()
    second = api.post("/api/v1/faults", json={"stage": "RCPT", "code": 550}).json()
    left = api.delete(f"/api/v1/faults/{first['id']}")
    assert left.status_code == 200
    assert [r["id"] for r in left.json()["rules"]] == [second["id"]]
    assert api.delete(f"/api/v1/faults/{first['id']}").status_code == 404
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(served.smtp_host, served.smtp_port, to=["x@example.com"])


def test_mailpit_chaos_endpoint(served: Served, api: httpx.Client) -> None:
    assert api.get("/api/v1/chaos").json() == {
        "Sender": {"ErrorCode": 451, "Probability": 0},
        "Recipient": {"ErrorCode": 451, "Probability": 0},
        "Authentication": {"ErrorCode": 535, "Probability": 0},
    }
    other = api.post("/api/v1/faults", json={"stage": "DATA", "code": 554}).json()
    put = api.put("/api/v1/chaos", json={"Recipient": {"ErrorCode": 550, "Probability": 100}})
    assert put.status_code == 200
    assert put.json()["Recipient"] == {"ErrorCode": 550, "Probability": 100}
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(served.smtp_host, served.smtp_port, to=["x@example.com"])
    assert refused.value.recipients["x@example.com"][0] == 550
    # A new setting replaces the old chaos rules and leaves other rules alone.
    api.put("/api/v1/chaos", json={"Sender": {"ErrorCode": 421, "Probability": 100}})
    rules = api.get("/api/v1/faults").json()["rules"]
    assert sorted(r["name"] or r["id"] for r in rules) == sorted(
        ["mailpit-chaos:Sender", other["name"] or other["id"]]
    )
    assert api.put("/api/v1/chaos", json={"Bogus": {"ErrorCode": 1}}).status_code == 400
    assert api.put("/api/v1/chaos", content=b"").status_code == 400


def test_fault_rules_add_list_clear(served: Served, api: httpx.Client) -> None:
    added = api.post(
        "/api/v1/faults", json={"stage": "RCPT", "code": 550, "recipient": "blocked@example.com"}
    )
    assert added.status_code == 200, added.text
    assert [r["id"] for r in api.get("/api/v1/faults").json()["rules"]] == [added.json()["id"]]
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(served.smtp_host, served.smtp_port, to=["blocked@example.com"])
    assert api.post("/api/v1/faults", json={"stage": "RCPT", "nonsense": 1}).status_code == 400
    assert api.post("/api/v1/faults", content=b"").status_code == 400
    chaos = api.post("/api/v1/faults", json={"chaos": "Sender:451:100"})
    assert chaos.status_code == 200
    assert api.delete("/api/v1/faults").json() == {"rules": []}
    send(served.smtp_host, served.smtp_port, to=["blocked@example.com"])
    assert _wait(api, 1)[0]["Recipients"] == ["blocked@example.com"]


def test_metrics(served: Served, api: httpx.Client) -> None:
    before = api.get("/metrics").text
    received = next(
        int(line.split()[1])
        for line in before.splitlines()
        if line.startswith("smtpmock_messages_received_total")
    )
    send(served.smtp_host, served.smtp_port)
    _wait(api, 1)
    text = api.get("/metrics").text
    assert f"smtpmock_messages_received_total {received + 1}" in text
    assert "smtpmock_messages_stored 1" in text
    assert "# TYPE smtpmock_stored_bytes gauge" in text
    assert "smtpmock_smtp_sessions_active 0" in text
    assert "# TYPE smtpmock_faults_logged gauge" in text


def test_openapi_docs_and_mailhog_shapes(served: Served, api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/api/v1/wait", "/api/v1/messages", "/api/v1/events"} <= set(paths)
    assert api.get("/docs").status_code == 200
    send(served.smtp_host, served.smtp_port, sender="zed@example.com", to=["ann@example.org"])
    _wait(api, 1)
    v2 = api.get("/api/v2/messages").json()
    assert v2["total"] == 1
    assert v2["count"] == 1
    assert v2["items"][0]["From"]["Mailbox"] == "zed"
    assert v2["items"][0]["To"][0]["Domain"] == "example.org"
    hit = api.get("/api/v2/search", params={"kind": "to", "query": "ann@"}).json()
    miss = api.get("/api/v2/search", params={"kind": "from", "query": "ann@"}).json()
    assert (hit["total"], miss["total"]) == (1, 0)


def test_basic_auth_and_htpasswd(tmp_path: Path) -> None:
    digest = base64.b64encode(hashlib.sha1(b"s3cret").digest()).decode()
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"# users\nreader:{{SHA}}{digest}\n")
    with Served("--http-auth", "admin:pw:with:colons", "--http-htpasswd", str(htpasswd)) as srv:
        assert httpx.get(srv.url + "/livez").status_code == 200
        assert httpx.get(srv.url + "/api/v1/messages").status_code == 401
        assert httpx.get(srv.url + "/api/v1/messages", auth=("admin", "nope")).status_code == 401
        assert (
            httpx.get(srv.url + "/api/v1/messages", auth=("admin", "pw:with:colons")).status_code
            == 200
        )
        assert httpx.get(srv.url + "/api/v1/messages", auth=("reader", "s3cret")).status_code == 200
        with Client(srv.url, auth=("reader", "s3cret")) as client:
            send(client.host, client.port, subject="authed")
            assert client.wait_for(1, timeout=30)[0].subject == "authed"


def test_bcrypt_htpasswd_is_refused_clearly(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("u:$2y$05$abcdefghijklmnopqrstuv\n")
    with (
        pytest.raises(AssertionError, match="not supported"),
        Served("--http-htpasswd", str(htpasswd)),
    ):
        pass


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("attacker.example", 421),
        ("127.0.0.1.nip.io:8025", 421),
        ("localhost", 200),
        ("127.0.0.1:1", 200),
        ("[::1]:8025", 200),
    ],
)
def test_dns_rebinding_host_names_are_refused(api: httpx.Client, host: str, status: int) -> None:
    assert api.get("/api/v1/messages", headers={"Host": host}).status_code == status
