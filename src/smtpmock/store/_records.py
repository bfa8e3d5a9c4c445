"""How a store that serialises messages writes them down: the envelope record and the summary
record, as JSON-ready dicts.

These are storage formats (a SQLite file written by an earlier smtpmock is read with them, and
a database shared by several instances holds them), not the HTTP API's: the wire shapes live in
``smtpmock._http._wire`` and may change on their own. The summary record happens to use the
key names of Mailpit's ``MessageSummary`` because the files of schema 3 were written that way.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

from .._message import Address, Message
from .._transcript import Transcript
from ._base import Summary

__all__ = [
    "envelope_record",
    "message_from_record",
    "summary_from_record",
    "summary_record",
    "to_json",
]

to_json = json.JSONEncoder(check_circular=False).encode
"""``json.dumps`` for the records (the same text): records are trees built here, never cyclic,
so the encoder skips the check (a set insert and delete per list and dict, ~13% of encoding
an envelope with its transcript, which is done for every message stored)."""


def envelope_record(message: Message) -> dict[str, Any]:
    """The envelope and session facts of *message* (the inverse of :func:`message_from_record`;
    the transcript is added by the caller that keeps one)."""
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


def message_from_record(raw: bytes, record: dict[str, Any], *, transcript: bool = True) -> Message:
    """Rebuild a :class:`~smtpmock.Message` from its raw bytes and :func:`envelope_record`
    (without its session transcript unless *transcript*: indexing never reads it)."""
    peer = record.get("peer")
    message = Message(
        raw,
        id=str(record["id"]),
        mail_from=str(record.get("mail_from") or ""),
        rcpt_tos=[str(r) for r in record.get("rcpt_tos") or ()],
        peer=(str(peer[0]), int(peer[1])) if peer else None,
        helo=record.get("helo"),
        received_at=_dt.datetime.fromisoformat(str(record["received_at"])),
        tls=bool(record.get("tls")),
        tls_version=record.get("tls_version"),
        auth_user=record.get("auth_user"),
        mail_options=[str(o) for o in record.get("mail_options") or ()],
        rcpt_options=record.get("rcpt_options") or {},
        smtputf8=bool(record.get("smtputf8")),
        session_id=record.get("session_id"),
        mailbox=str(record.get("mailbox") or "default"),
    )
    message.seq = int(record.get("seq") or 0)
    stored = record.get("transcript") if transcript else None
    if stored:
        message.transcript = Transcript.from_dict(stored)
    return message


def _addr(address: Address) -> dict[str, str]:
    return {"Name": address.name, "Address": address.address}


def _address(data: Any) -> Address:
    return Address(str(data.get("Name") or ""), str(data.get("Address") or ""))


def summary_record(summary: Summary) -> dict[str, Any]:
    """*summary* as a JSON-ready dict (read back by :func:`summary_from_record`)."""
    return {
        "ID": summary.id,
        "Seq": summary.seq,
        "MessageID": summary.message_id,
        "From": _addr(summary.from_) if summary.from_ else None,
        "To": [_addr(a) for a in summary.to],
        "Cc": [_addr(a) for a in summary.cc],
        "Bcc": [{"Name": "", "Address": a} for a in summary.bcc],
        "ReplyTo": [_addr(a) for a in summary.reply_to],
        "Subject": summary.subject,
        "Created": summary.received_at.isoformat().replace("+00:00", "Z"),
        "Username": summary.auth_user or "",
        "Size": summary.size,
        "Attachments": summary.attachments,
        "Inline": summary.inline,
        "Snippet": summary.snippet,
        "MailFrom": summary.mail_from,
        "Recipients": list(summary.rcpt_tos),
        "Mailbox": summary.mailbox,
    }


def summary_from_record(
    data: dict[str, Any],
    *,
    seq: int | None = None,
    received_at: float | None = None,
    read: bool = False,
    tags: tuple[str, ...] = (),
) -> Summary:
    """The :class:`Summary` that :func:`summary_record` wrote (*seq*, *received_at*, *read*,
    *tags*: the store's own columns, which win; a record written for a message whose parsing
    failed has only the envelope's keys)."""
    created = data.get("Created")
    if received_at is not None:
        when = _dt.datetime.fromtimestamp(received_at, _dt.timezone.utc)
    elif created:
        when = _dt.datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    else:
        when = _dt.datetime.fromtimestamp(0, _dt.timezone.utc)
    sender = data.get("From")
    return Summary(
        id=str(data["ID"]),
        seq=int(data.get("Seq") or 0) if seq is None else seq,
        received_at=when,
        mail_from=str(data.get("MailFrom") or ""),
        rcpt_tos=tuple(str(r) for r in data.get("Recipients") or ()),
        subject=str(data.get("Subject") or ""),
        message_id=str(data.get("MessageID") or ""),
        from_=_address(sender) if sender else None,
        to=tuple(_address(a) for a in data.get("To") or ()),
        cc=tuple(_address(a) for a in data.get("Cc") or ()),
        bcc=tuple(str(a.get("Address") or "") for a in data.get("Bcc") or ()),
        reply_to=tuple(_address(a) for a in data.get("ReplyTo") or ()),
        size=int(data.get("Size") or 0),
        attachments=int(data.get("Attachments") or 0),
        inline=int(data.get("Inline") or 0),
        snippet=str(data.get("Snippet") or ""),
        auth_user=data.get("Username") or None,
        read=read,
        tags=tags,
        mailbox=str(data.get("Mailbox") or "default"),
    )
