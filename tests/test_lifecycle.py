"""Lifecycle: start, stop, ports, many servers, errors in the server thread, no leaks."""

from __future__ import annotations

import asyncio
import gc
import os
import smtplib
import socket
import threading
import weakref

import pytest

from smtpmock import (
    MemoryStore,
    Message,
    PortInUseError,
    ServerError,
    ServerStartError,
    SMTPMock,
)
from tests.mail import send


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_start_returns_when_accepting_and_reports_the_port() -> None:
    mock = SMTPMock()
    assert mock.host == "127.0.0.1"
    with pytest.raises(ServerStartError):
        _ = mock.port  # not bound yet
    assert mock.start() is mock
    try:
        assert mock.running
        assert mock.port > 0
        assert mock.address == ("127.0.0.1", mock.port)
        # No retry loop: the very first connection succeeds and gets the greeting.
        with socket.create_connection((mock.host, mock.port), timeout=10) as sock:
            assert sock.recv(1024).startswith(b"220 localhost")
        assert f"127.0.0.1:{mock.port}" in repr(mock)
    finally:
        mock.stop()
    assert not mock.running
    assert "not running" in repr(mock)


def test_start_is_idempotent() -> None:
    with SMTPMock() as mock:
        port = mock.port
        mock.start()
        assert mock.port == port


def test_stop_is_idempotent() -> None:
    mock = SMTPMock().start()
    mock.stop()
    mock.stop()
    SMTPMock().stop()  # never started


def test_restart_after_stop_keeps_the_mailbox() -> None:
    mock = SMTPMock().start()
    send(mock.host, mock.port, subject="first")
    mock.wait_for(1)
    mock.stop()
    mock.start()
    try:
        send(mock.host, mock.port, subject="second")
        assert [m.subject for m in mock.wait_for(2)] == ["first", "second"]
    finally:
        mock.stop()


def test_context_manager_starts_and_stops() -> None:
    with SMTPMock() as mock:
        port = mock.port
        send(mock.host, port)
        mock.wait_for(1)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=10).close()


def test_stop_closes_open_client_connections() -> None:
    mock = SMTPMock().start()
    client = smtplib.SMTP(mock.host, mock.port, timeout=10)
    try:
        assert client.noop()[0] == 250
        mock.stop()
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    finally:
        client.close()


def test_port_in_use_names_the_port() -> None:
    with SMTPMock() as first:
        with pytest.raises(PortInUseError) as caught:
            SMTPMock(port=first.port).start()
        error = caught.value
        assert isinstance(error, OSError)
        assert isinstance(error, ServerStartError)
        assert error.port == first.port
        assert str(first.port) in str(error)
        # The first server is unaffected.
        send(first.host, first.port)
        first.wait_for(1)


def test_port_in_use_leaves_no_thread_or_descriptor_behind() -> None:
    with SMTPMock() as first:
        threads, fds = set(threading.enumerate()), _open_fds()
        second = SMTPMock(port=first.port)
        for _ in range(20):
            with pytest.raises(PortInUseError):
                second.start()
        assert set(threading.enumerate()) == threads
        assert _open_fds() == fds
        assert not second.running


def test_unresolvable_host_is_a_start_error() -> None:
    with pytest.raises(ServerStartError, match=r"no-such-host\.invalid"):
        SMTPMock(host="no-such-host.invalid").start()


def test_start_does_not_resolve_the_machine_name(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object) -> str:
        raise AssertionError("socket.getfqdn() called: slow on machines with bad DNS")

    monkeypatch.setattr(socket, "getfqdn", forbidden)
    with SMTPMock() as mock:
        # smtplib itself calls getfqdn() unless it is given a name: give it one.
        with smtplib.SMTP(mock.host, mock.port, local_hostname="client.test", timeout=10) as c:
            c.sendmail("a@example.com", ["b@example.com"], "Subject: x\r\n\r\nx\r\n")
        mock.wait_for(1)


def test_start_stop_cycles_leave_no_thread_or_descriptor() -> None:
    # Warm up once: the first run may open lasting descriptors (the selector module, ...).
    with SMTPMock() as warm:
        send(warm.host, warm.port)
        warm.wait_for(1)
    threads_before = set(threading.enumerate())
    fds_before = _open_fds()
    for i in range(200):
        with SMTPMock() as mock:
            if i % 20 == 0:  # with a session now and then: its connection must go too
                send(mock.host, mock.port)
                mock.wait_for(1)
    assert set(threading.enumerate()) == threads_before
    assert _open_fds() == fds_before


def test_twenty_servers_at_once_each_with_its_own_mailbox() -> None:
    mocks = [SMTPMock().start() for _ in range(20)]
    try:
        assert len({m.port for m in mocks}) == 20
        for i, mock in enumerate(mocks):
            send(mock.host, mock.port, subject=f"for server {i}")
        for i, mock in enumerate(mocks):
            assert [m.subject for m in mock.wait_for(1)] == [f"for server {i}"]
            assert len(mock.messages) == 1
    finally:
        for mock in mocks:
            mock.stop()


class BrokenStore(MemoryStore):
    def _insert(self, message: Message) -> list[Message]:
        raise RuntimeError("disk on fire")


def test_error_in_server_thread_reaches_check() -> None:
    with SMTPMock(store=BrokenStore()) as mock:
        with smtplib.SMTP(mock.host, mock.port, timeout=10) as client:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.sendmail("a@example.com", ["b@example.com"], "Subject: x\r\n\r\nx\r\n")
            assert 400 <= refused.value.smtp_code < 500
            assert client.noop()[0] == 250  # the session goes on
        with pytest.raises(ServerError, match="disk on fire") as caught:
            mock.check()
        assert isinstance(caught.value.__cause__, RuntimeError)
        assert mock.messages == []
        mock.check()  # reported once
        assert len(mock.errors) == 1


def test_error_in_server_thread_is_raised_by_stop() -> None:
    mock = SMTPMock(store=BrokenStore()).start()
    with pytest.raises(smtplib.SMTPDataError):
        send(mock.host, mock.port)
    with pytest.raises(ServerError, match="RuntimeError: disk on fire") as caught:
        mock.stop()
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert not mock.running
    mock.stop()  # already reported: a second stop is quiet


def test_errors_after_a_restart_are_reported_too() -> None:
    mock = SMTPMock(store=BrokenStore()).start()
    with pytest.raises(smtplib.SMTPDataError):
        send(mock.host, mock.port)
    with pytest.raises(ServerError):
        mock.stop()
    mock.start()
    try:
        with pytest.raises(smtplib.SMTPDataError):
            send(mock.host, mock.port)
        with pytest.raises(ServerError, match="disk on fire"):
            mock.check()
    finally:
        mock.stop()


def test_context_manager_does_not_hide_the_tests_own_error() -> None:
    with pytest.raises(KeyError), SMTPMock(store=BrokenStore()) as mock:  # noqa: PT012
        with pytest.raises(smtplib.SMTPDataError):
            send(mock.host, mock.port)
        raise KeyError("the test's own failure")


def test_client_disconnecting_mid_data_leaves_nothing() -> None:
    with SMTPMock() as mock:
        with socket.create_connection((mock.host, mock.port), timeout=10) as sock:
            stream = sock.makefile("rwb")
            stream.readline()
            for line in (
                b"HELO x\r\n",
                b"MAIL FROM:<a@example.com>\r\n",
                b"RCPT TO:<b@example.com>\r\n",
                b"DATA\r\n",
            ):
                stream.write(line)
                stream.flush()
                assert stream.readline()[:1] in (b"2", b"3")
            stream.write(b"Subject: half\r\n\r\nhalf a mess")
            stream.flush()
            stream.close()
        send(mock.host, mock.port, subject="whole")
        assert [m.subject for m in mock.wait_for(1)] == ["whole"]
        assert mock.messages[0].subject == "whole"
        assert len(mock.messages) == 1
        mock.check()
        assert mock.errors == []


def test_unknown_option_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown option"):
        SMTPMock(colour="blue")


def _session_protocol(mock: SMTPMock) -> weakref.ReferenceType[object]:
    async def current() -> weakref.ReferenceType[object]:
        [protocol] = mock._state.connections
        return weakref.ref(protocol)

    return mock.run_in_loop(current)  # type: ignore[no-any-return]


@pytest.mark.parametrize("tls", [None, "starttls", "implicit"])
@pytest.mark.parametrize("ending", ["quit", "hang-up", "hang-up in DATA"])
def test_an_ended_connection_is_freed_without_the_garbage_collector(
    ending: str, tls: str | None
) -> None:
    # Every object of a connection must go when it ends (no reference cycle left for the
    # cyclic collector): under load, cycles made the collector run for every few messages.
    async def loop_turn() -> None:
        await asyncio.sleep(0)

    gc.collect()
    gc.disable()
    try:
        with SMTPMock(tls=tls) as mock:
            client: smtplib.SMTP
            if tls == "implicit":
                context = mock.client_ssl_context()
                client = smtplib.SMTP_SSL(mock.host, mock.port, timeout=10, context=context)
            else:
                client = smtplib.SMTP(mock.host, mock.port, timeout=10)
                if tls == "starttls":
                    client.starttls(context=mock.client_ssl_context())
            client.sendmail("a@example.com", ["b@example.com"], "Subject: x\r\n\r\nbody\r\n")
            protocol = _session_protocol(mock)
            if ending == "quit":
                client.quit()
            else:
                if ending == "hang-up in DATA":
                    client.mail("a@example.com")
                    client.rcpt("b@example.com")
                    client.putcmd("DATA")
                    assert client.getreply()[0] == 354
                    client.send(b"Subject: half\r\n")
                client.close()
            [transcript] = mock.wait_for_sessions(1)
            for _ in range(3):
                mock.run_in_loop(loop_turn)
            assert protocol() is None, f"the protocol of {transcript.commands} is still alive"
    finally:
        gc.enable()
