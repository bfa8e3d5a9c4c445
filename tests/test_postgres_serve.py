"""Several ``smtpmock serve`` processes on one PostgreSQL database, driven from outside as a
user would: SMTP into one, waits, deletes and live events on another; an instance killed under
load; the database restarted mid-run. (The tests' own throwaway cluster: tests/pg.py.)"""

from __future__ import annotations

import contextlib
import json
import smtplib
import threading
from collections.abc import Iterator
from email.message import EmailMessage

import httpx
import pytest

from smtpmock import Client
from tests.pg import PostgresServer
from tests.served import Served


def send(served: Served, subject: str, *, to: str = "bob@example.com", timeout: float = 30) -> str:
    """Send one message over SMTP; return its Message-ID (without brackets)."""
    message = EmailMessage()
    message["From"] = "app@example.com"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@test.example>"
    message.set_content(f"body of {subject}")
    with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=timeout) as smtp:
        smtp.send_message(message)
    return f"{subject.replace(' ', '-')}@test.example"


@pytest.fixture
def pair(pg_url: str) -> Iterator[tuple[Served, Served]]:
    """Two ``smtpmock serve`` instances on one database."""
    with Served("--db", pg_url) as a, Served("--db", pg_url) as b:
        yield a, b


class EventStream:
    """The SSE stream of one instance, read line by line (each read bounded by a timeout)."""

    def __init__(self, served: Served) -> None:
        self._http = httpx.Client(base_url=served.url, timeout=httpx.Timeout(30, read=15))
        self._context = self._http.stream("GET", "/api/v1/events", headers={"Origin": served.url})
        response = self._context.__enter__()
        assert response.status_code == 200
        self._lines = (line for line in response.iter_lines() if line)
        assert next(self._lines) == ": connected"

    def next_event(self) -> tuple[str, object]:
        """The next event (keep-alive comments skipped): its name and decoded data."""
        while True:
            line = next(self._lines)
            if line.startswith(":"):
                continue
            assert line.startswith("event: "), line
            data = next(self._lines)
            return line.removeprefix("event: "), json.loads(data.removeprefix("data: "))

    def close(self) -> None:
        self._context.__exit__(None, None, None)
        self._http.close()


def test_two_instances_share_mail_waits_deletes_and_live_events(
    pair: tuple[Served, Served],
) -> None:
    a, b = pair
    events_a = EventStream(a)
    events_b = EventStream(b)
    try:
        with Client(a.url) as client_a, Client(b.url) as client_b:
            # A wait on B, started before the mail exists, wakes when A takes it.
            woke: list[list[str]] = []
            waiter = threading.Thread(
                target=lambda: woke.append(
                    [m.subject for m in client_b.wait_for(1, timeout=20, subject="from A")]
                )
            )
            waiter.start()
            send(a, "from A")
            waiter.join()
            assert woke == [["from A"]]

            # B's live event stream shows it too, and A's its own.
            kind, summary = events_b.next_event()
            assert kind == "added"
            assert isinstance(summary, dict)
            assert summary["Subject"] == "from A"
            assert events_a.next_event()[0] == "added"

            # Mail taken by B: an `added` event on A's stream (the web UI's live list).
            send(b, "from B")
            kind, summary = events_a.next_event()
            assert (kind, summary["Subject"]) == ("added", "from B")  # type: ignore[index]
            assert events_b.next_event()[0] == "added"
            [on_a] = client_a.wait_for(1, timeout=10, subject="from B")

            # Deleted through B: gone on A, and A's stream says so.
            assert httpx.delete(f"{b.url}/api/v1/message/{on_a.id}").status_code == 200
            assert events_a.next_event() == ("deleted", [on_a.id])
            assert [m.subject for m in client_a.messages] == ["from A"]
            assert httpx.get(f"{a.url}/api/v1/message/{on_a.id}").status_code == 404

            # Search on one instance sees what the other took.
            found = httpx.get(f"{b.url}/api/v1/search", params={"query": 'subject:"from a"'})
            assert found.json()["messages_count"] == 1

            # Cleared through A: B's stream and B's mailbox see it.
            client_a.reset()
            assert events_b.next_event()[0] == "deleted"  # the deletion above, seen by B
            assert events_b.next_event() == ("cleared", None)
            assert client_b.messages == []
    finally:
        events_a.close()
        events_b.close()


def test_sigkill_under_load_loses_nothing_acknowledged(pg_url: str) -> None:
    with Served("--db", pg_url) as a, Served("--db", pg_url) as b:
        acknowledged: list[str] = []
        lock = threading.Lock()
        enough = threading.Event()

        def sender(worker: int) -> None:
            n = 0
            with contextlib.suppress(OSError, smtplib.SMTPException):
                smtp = smtplib.SMTP(a.smtp_host, a.smtp_port, timeout=30)
                while True:
                    n += 1
                    message_id = f"w{worker}-{n}@load.example"
                    raw = (
                        f"From: load@example.com\r\nTo: sink@example.com\r\n"
                        f"Subject: load {worker} {n}\r\nMessage-ID: <{message_id}>\r\n\r\nx\r\n"
                    )
                    smtp.sendmail("load@example.com", ["sink@example.com"], raw)
                    with lock:  # sendmail returned: the server said 250
                        acknowledged.append(message_id)
                        if len(acknowledged) >= 60:
                            enough.set()

        threads = [threading.Thread(target=sender, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        assert enough.wait(60)
        a.kill()  # SIGKILL with deliveries in flight
        for thread in threads:
            thread.join(60)
        with Client(b.url) as client:
            stored = {m.message_id.strip("<>") for m in client.messages if m.message_id}
        assert set(acknowledged) <= stored
        assert len(acknowledged) >= 60


def test_the_database_restarted_mid_run(pg_server: PostgresServer, pg_url: str) -> None:
    if pg_server.cluster is None:
        pytest.skip("stopping the database needs the tests' own cluster")
    cluster = pg_server.cluster
    with Served("--db", pg_url) as a, Served("--db", pg_url) as b:
        send(a, "before")
        with Client(b.url) as client_b:
            client_b.wait_for(1, timeout=10, subject="before")
        cluster.stop_server()
        try:
            # The database is gone: the message is refused with 451 (the sender will retry),
            # not acknowledged and lost, and the instance keeps running.
            with pytest.raises(smtplib.SMTPDataError) as refused:
                send(a, "during")
            assert refused.value.smtp_code == 451
            with pytest.raises(smtplib.SMTPDataError) as refused_b:
                send(b, "during b")
            assert refused_b.value.smtp_code == 451
        finally:
            cluster.start_server()
        assert a.proc is not None
        assert a.proc.poll() is None
        # Back: after the pool's reconnection (a second or so) mail is taken again; every
        # refusal on the way is a 451.
        refusals: list[int] = []
        while len(refusals) < 30:
            try:
                send(a, "after")
                break
            except smtplib.SMTPDataError as exc:
                refusals.append(exc.smtp_code)
        assert set(refusals) <= {451}
        assert len(refusals) < 30, "no 250 after the database came back"
        with Client(b.url) as client_b:
            # B's change feed reconnected too: a wait on B wakes on mail A takes.
            woke: list[list[str]] = []
            waiter = threading.Thread(
                target=lambda: woke.append(
                    [m.subject for m in client_b.wait_for(1, timeout=20, subject="later")]
                )
            )
            waiter.start()
            send(a, "later")
            waiter.join()
            assert woke == [["later"]]
            assert sorted(m.subject for m in client_b.messages) == ["after", "before", "later"]


def test_the_database_restarted_under_load(pg_server: PostgresServer, pg_url: str) -> None:
    """``pg_ctl restart`` while mail keeps coming: each reply is 250 or 451, never anything
    else, every 250 is stored, and mail is taken again after the restart."""
    if pg_server.cluster is None:
        pytest.skip("restarting the database needs the tests' own cluster")
    with Served("--db", pg_url) as a:
        replies: dict[str, int] = {}
        stop = threading.Event()
        started = threading.Event()
        restarted = threading.Event()
        taken_after = threading.Event()

        def sender() -> None:
            n = after = 0
            while not stop.is_set():
                n += 1
                was_restarted = restarted.is_set()
                try:
                    message_id = send(a, f"load {n}", timeout=60)
                    replies[message_id] = 250
                    after += was_restarted
                except smtplib.SMTPDataError as exc:
                    replies[f"load-{n}@test.example"] = exc.smtp_code
                if n == 5:
                    started.set()
                if after >= 3:
                    taken_after.set()

        thread = threading.Thread(target=sender)
        thread.start()
        try:
            assert started.wait(60)
            pg_server.restart()
            restarted.set()
            assert taken_after.wait(60)
        finally:
            stop.set()
            thread.join(120)
        with Client(a.url) as client:
            stored = {m.message_id.strip("<>") for m in client.messages if m.message_id}
        assert set(replies.values()) <= {250, 451}
        assert {k for k, v in replies.items() if v == 250} <= stored
