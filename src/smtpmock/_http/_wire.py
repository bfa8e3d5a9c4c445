"""The JSON shapes of the HTTP API: list entries, envelopes and the export that
:class:`~smtpmock.Client` rebuilds messages from.

Stores return Python objects (:class:`~smtpmock.store.Summary`, :class:`~smtpmock.Message`);
this module turns them into what goes over the wire and back. It imports neither FastAPI nor
a store backend, so ``smtpmock.Client`` can use it with only ``httpx`` installed.
"""

from __future__ import annotations

import base64
import datetime as _dt
from typing import Any

from .._message import Address, Message
from .._transcript import Transcript
from ..store._base import Summary

__all__ = [
    "decode_export",
    "encode_export",
    "envelope_dict",
    "message_from_envelope",
    "message_summary",
    "summary_json",
]


def _addr(address: Address) -> dict[str, str]:
    return {"Name": address.name, "Address": address.address}


def summary_json(summary: Summary) -> dict[str, Any]:
    """A list entry: Mailpit's ``MessageSummary`` fields plus the envelope (``MailFrom``,
    ``Recipients``). Never carries a body beyond the snippet."""
    return {
        "ID": summary.id,
        "Seq": summary.seq,
        "MessageID": summary.message_id,
        "Read": summary.read,
        "From": _addr(summary.from_) if summary.from_ else None,
        "To": [_addr(a) for a in summary.to],
        "Cc": [_addr(a) for a in summary.cc],
        "Bcc": [{"Name": "", "Address": a} for a in summary.bcc],
        "ReplyTo": [_addr(a) for a in summary.reply_to],
        "Subject": summary.subject,
        "Created": summary.received_at.isoformat().replace("+00:00", "Z"),
        "Username": summary.auth_user or "",
        "Tags": list(summary.tags),
        "Size": summary.size,
        "Attachments": summary.attachments,
        "Inline": summary.inline,
        "Snippet": summary.snippet,
        "MailFrom": summary.mail_from,
        "Recipients": list(summary.rcpt_tos),
        "Mailbox": summary.mailbox,
    }


def message_summary(message: Message) -> dict[str, Any]:
    """:func:`summary_json` of *message*."""
    return summary_json(Summary.of(message))


def envelope_dict(message: Message) -> dict[str, Any]:
    """The envelope and session facts of *message*, JSON-ready (the inverse of
    :func:`message_from_envelope`)."""
    return {
        "id": message.id,
        "seq": message.seq,
        "mail_from": message.mail_from,
        "rcpt_tos": list(message.rcpt_tos),
        "peer": list(message.peer) if message.peer else None,
        "helo": message.helo,
        "received_at": message.received_at.isoformat(),
        "tls": message.tls,
        "tls_version": message.tls_version,
        "auth_user": message.auth_user,
        "mail_options": list(message.mail_options),
        "rcpt_options": {k: list(v) for k, v in message.rcpt_options.items()},
        "smtputf8": message.smtputf8,
        "session_id": message.session_id,
        "mailbox": message.mailbox,
    }


def message_from_envelope(raw: bytes, envelope: dict[str, Any]) -> Message:
    """Rebuild a :class:`~smtpmock.Message` from its raw bytes and :func:`envelope_dict`."""
    peer = envelope.get("peer")
    message = Message(
        raw,
        id=str(envelope["id"]),
        mail_from=str(envelope.get("mail_from") or ""),
        rcpt_tos=[str(r) for r in envelope.get("rcpt_tos") or ()],
        peer=(str(peer[0]), int(peer[1])) if peer else None,
        helo=envelope.get("helo"),
        received_at=_dt.datetime.fromisoformat(str(envelope["received_at"])),
        tls=bool(envelope.get("tls")),
        tls_version=envelope.get("tls_version"),
        auth_user=envelope.get("auth_user"),
        mail_options=[str(o) for o in envelope.get("mail_options") or ()],
        rcpt_options=envelope.get("rcpt_options") or {},
        smtputf8=bool(envelope.get("smtputf8")),
        session_id=envelope.get("session_id"),
        mailbox=str(envelope.get("mailbox") or "default"),
    )
    message.seq = int(envelope.get("seq") or 0)
    return message


def encode_export(message: Message) -> dict[str, Any]:
    """Envelope, base64 raw bytes and the session transcript as far as it concerns this
    message (:meth:`Transcript.excerpt`): what a remote client needs to rebuild the message
    (see :func:`decode_export`)."""
    transcript = message.transcript.excerpt() if message.transcript is not None else None
    return {
        "Envelope": envelope_dict(message),
        "Raw": base64.b64encode(message.raw).decode(),
        "Transcript": transcript,
    }


def decode_export(data: dict[str, Any]) -> Message:
    """The :class:`~smtpmock.Message` that :func:`encode_export` described."""
    message = message_from_envelope(base64.b64decode(data["Raw"]), data["Envelope"])
    if data.get("Transcript"):
        message.transcript = Transcript.from_dict(data["Transcript"])
    return message
