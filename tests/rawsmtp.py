"""A raw-socket SMTP client for tests that must send exactly the bytes an attacker would."""

from __future__ import annotations

import socket
import ssl


class RawSMTP:
    """Send bytes, read whole replies; nothing is added or normalised."""

    def __init__(self, host: str, port: int, *, timeout: float = 10.0) -> None:
        self.sock: socket.socket = socket.create_connection((host, port), timeout=timeout)
        self._file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> tuple[int, str]:
        """Read one (possibly multi-line) reply: its code and its lines joined by newlines."""
        lines = []
        while True:
            line = self._file.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return int(text[:3]), "\n".join(lines)

    def command(self, line: str | bytes) -> tuple[int, str]:
        data = line if isinstance(line, bytes) else line.encode("utf-8")
        self.send(data + b"\r\n")
        return self.reply()

    def at_eof(self) -> bool:
        """Whether the server closed the connection (blocks until data or EOF)."""
        return self._file.read(1) == b""

    def starttls(self, context: ssl.SSLContext, server_hostname: str = "localhost") -> None:
        self._file.close()
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        self._file = self.sock.makefile("rb")

    def close(self) -> None:
        self._file.close()
        self.sock.close()

    def __enter__(self) -> RawSMTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
