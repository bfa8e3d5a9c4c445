"""Fault injection: make the mock fail the way real mail servers fail, on purpose and on cue.

A :class:`FaultRule` says *when* (a stage of the SMTP conversation, optionally only for some
senders, recipients, subjects or any predicate), *what* (reply with a code and text, delay the
reply, drop the connection without a reply, throttle the link) and *how often* (always, the next N
times, only the Nth occurrence, or with a probability drawn from a seeded generator).

A :class:`FaultSet` is the live, thread-safe list of rules of one server (``mock.faults``): rules
are added and removed while the server runs, every rule that fires is recorded in
:attr:`FaultSet.log`, and ready-made scenarios (greylisting, fail-then-succeed, mailbox full...)
are one-liners. Rules, sets and log entries turn into plain dicts and back, so the HTTP API and
command-line flags can carry them.

The set plugs into the server as a stage hook (:meth:`FaultSet.hook`): it sees a read-only
:class:`~smtpmock.SessionView` and answers with a :class:`~smtpmock.HookAction` that the
SMTP engine applies; it never touches the engine. Why replies are limited to 4xx/5xx: a rule
can only refuse, so anything the client sees answered 250 went through the normal path and was
stored.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import math
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import ConfigurationError
from ._message import Message
from .smtp._view import HookAction, SessionView

__all__ = ["FaultContext", "FaultEvent", "FaultRule", "FaultSet"]

#: Every stage a rule can name: the connection itself, each SMTP command verb, end of data.
STAGES: tuple[str, ...] = (
    "connect",
    "EHLO",
    "HELO",
    "STARTTLS",
    "AUTH",
    "MAIL",
    "RCPT",
    "DATA",
    "DATA_END",
    "RSET",
    "NOOP",
    "VRFY",
    "EXPN",
    "HELP",
    "QUIT",
)
_COMMAND_STAGES = tuple(s for s in STAGES if s not in ("connect", "DATA_END"))
_ALIASES = {
    "*": STAGES,
    "all": STAGES,
    "any": STAGES,
    "commands": _COMMAND_STAGES,
    "data_end": ("DATA_END",),
    "end_of_data": ("DATA_END",),
    "connect": ("connect",),
    "connection": ("connect",),
}
# Which stages know the sender / the recipients / the message (for conditions).
_SENDER_STAGES = frozenset({"MAIL", "RCPT", "DATA", "DATA_END"})
_RECIPIENT_STAGES = frozenset({"RCPT", "DATA", "DATA_END"})
_SUBJECT_STAGES = frozenset({"DATA_END"})

_DEFAULT_TEXT = {
    421: "4.3.2 Service not available, closing transmission channel",
    450: "4.2.1 Mailbox unavailable, try again later",
    451: "4.3.0 Temporary failure, try again later",
    452: "4.3.1 Insufficient system storage",
    454: "4.7.0 Temporary authentication failure",
    530: "5.7.0 Authentication required",
    535: "5.7.8 Authentication credentials invalid",
    550: "5.1.1 Mailbox unavailable",
    551: "5.1.6 User not local",
    552: "5.2.2 Mailbox full",
    553: "5.1.3 Mailbox name not allowed",
    554: "5.7.1 Transaction failed",
}
_REPLY = re.compile(r"^([1-9]\d\d)(?:[ -](.*))?$", re.DOTALL)
_ADDRESS = re.compile(r"<([^>]*)>")
_DEFAULT_LOG_LIMIT = 10_000

Predicate = Callable[["FaultContext"], bool]
Pattern = str | re.Pattern[str]
Clock = Callable[[], float]


def default_text(code: int) -> str:
    """The reply text (with its enhanced status code) used when a rule gives only a code."""
    if code in _DEFAULT_TEXT:
        return _DEFAULT_TEXT[code]
    return f"{code // 100}.0.0 Failure injected by smtpmock"


# ---------------------------------------------------------------------------------- context


@dataclass(frozen=True)
class FaultContext:
    """What a rule can look at when it decides whether it applies (and what a predicate gets)."""

    stage: str
    session_id: str
    peer: tuple[str, int] | None = None
    helo: str | None = None
    sender: str | None = None
    """The envelope sender: from the MAIL command itself at stage MAIL, else the envelope's."""
    recipients: tuple[str, ...] = ()
    """The recipients accepted so far in this transaction."""
    recipient: str | None = None
    """At stage RCPT: the recipient this command names."""
    argument: str | None = None
    """The command's argument as sent (``"FROM:<a@example.com> SIZE=12"``)."""
    message: Message | None = None
    """At stage DATA_END: the complete message (not stored if a rule refuses it)."""

    @property
    def subject(self) -> str | None:
        return self.message.subject if self.message is not None else None


# ---------------------------------------------------------------------------------- matching


class _Matcher:
    """A glob (``"*@example.com"``, case-insensitive) or a compiled regular expression."""

    def __init__(self, pattern: Pattern) -> None:
        if isinstance(pattern, re.Pattern):
            self.regex = pattern
            self.glob: str | None = None
        elif isinstance(pattern, str):
            self.glob = pattern
            self.regex = re.compile(fnmatch.translate(pattern), re.IGNORECASE | re.DOTALL)
        else:
            raise ConfigurationError(
                f"a pattern is a glob string or a compiled regex, not {type(pattern).__name__}"
            )

    def __call__(self, value: str | None) -> bool:
        if value is None:
            return False
        if self.glob is not None:
            return self.regex.match(value) is not None
        return self.regex.search(value) is not None

    def to_json(self) -> str | dict[str, Any]:
        if self.glob is not None:
            return self.glob
        # re.UNICODE is implied for str patterns; leaving it out keeps the dict readable.
        return {"regex": self.regex.pattern, "flags": int(self.regex.flags & ~re.UNICODE)}

    @staticmethod
    def from_json(value: Any) -> Pattern:
        if isinstance(value, Mapping):
            try:
                return re.compile(str(value["regex"]), int(value.get("flags", 0)))
            except re.error as exc:
                raise ConfigurationError(f"bad regex {value['regex']!r}: {exc}") from exc
        if isinstance(value, str):
            return value
        raise ConfigurationError(f"bad pattern {value!r}: a glob string or {{'regex': ...}}")

    def __repr__(self) -> str:
        return repr(self.glob) if self.glob is not None else f"re({self.regex.pattern!r})"


def _stages(stage: str | Iterable[str]) -> tuple[str, ...]:
    names = [stage] if isinstance(stage, str) else list(stage)
    if not names:
        raise ConfigurationError("a fault rule needs at least one stage")
    out: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise ConfigurationError(f"a stage is a string, not {name!r}")
        key = name.strip()
        if key.lower() in _ALIASES:
            found: tuple[str, ...] = _ALIASES[key.lower()]
        elif key.upper() in STAGES:
            found = (key.upper(),)
        else:
            raise ConfigurationError(
                f"unknown stage {name!r}; stages are {', '.join(STAGES)} (or '*' for all)"
            )
        out.extend(s for s in found if s not in out)
    return tuple(out)


# ---------------------------------------------------------------------------------- rules


class FaultRule:
    """One fault: *when* it applies, *what* it does, *how often*.

    ::

        FaultRule("RCPT", reply="451 4.7.1 Greylisted", recipient="*@slow.example", times=2)
        FaultRule("DATA_END", code=552, subject="*big*")          # default text 5.2.2 Mailbox full
        FaultRule("connect", drop=True, probability=0.1, seed=7)  # replayable 10 % drops
        FaultRule("*", delay=2.0)                                 # every reply 2 s late

    *When*: ``stage`` is one stage or several (see :data:`STAGES`; ``"*"`` is all of them);
    ``sender``/``recipient``/``subject`` are globs (case-insensitive) or compiled regexes;
    ``predicate`` gets a :class:`FaultContext`; ``greylist=seconds`` (stage RCPT) matches the
    first attempt of each (sender, recipient) pair and any retry sooner than *seconds* later.

    *What*: ``reply`` (``"451 4.7.1 Greylisted"``) or ``code`` (+ ``text``, defaulting to a
    standard text with its enhanced status code); ``drop=True`` closes the connection without a
    reply; ``delay`` seconds before the reply (other connections are not held up);
    ``throttle`` bytes/second (or a ``(min, max)`` range, drawn per firing) for the rest of the
    connection, both directions. Only 4xx/5xx replies: a rule refuses, it never accepts.

    *How often*: every time (default), ``times=N`` (the next N matches), ``nth=N`` (only the Nth
    match), ``probability=p`` (0..1, from a generator seeded with ``seed``; the set gives one
    derived from its own seed when none is given, so a run replays exactly).
    """

    def __init__(
        self,
        stage: str | Iterable[str],
        *,
        reply: str | None = None,
        code: int | None = None,
        text: str | None = None,
        drop: bool = False,
        delay: float = 0.0,
        throttle: int | float | tuple[float, float] | None = None,
        sender: Pattern | None = None,
        recipient: Pattern | None = None,
        subject: Pattern | None = None,
        predicate: Predicate | None = None,
        greylist: float | None = None,
        times: int | None = None,
        nth: int | None = None,
        probability: float | None = None,
        seed: int | None = None,
        name: str | None = None,
        id: str | None = None,
    ) -> None:
        self.stages = _stages(stage)
        if reply is not None:
            if code is not None or text is not None:
                raise ConfigurationError("give either reply='451 4.x.x text' or code=/text=")
            match = _REPLY.match(reply.strip())
            if match is None:
                raise ConfigurationError(
                    f"reply {reply!r} must start with a 3-digit code, e.g. '451 4.7.1 Greylisted'"
                )
            code, text = int(match.group(1)), match.group(2)
        if code is not None:
            if not isinstance(code, int) or not 400 <= code <= 599:
                raise ConfigurationError(
                    f"reply code must be 400..599 (a rule refuses; it never accepts), not {code!r}"
                )
            text = (text or "").strip() or default_text(code)
            if "\r" in text or "\x00" in text:
                raise ConfigurationError("reply text must not contain CR or NUL")
        elif text is not None:
            raise ConfigurationError("text= needs code=")
        if drop and code is not None:
            raise ConfigurationError("a rule either replies or drops the connection, not both")
        for label, number in (
            ("delay", delay),
            ("greylist", greylist),
            ("probability", probability),
        ):
            if number is not None and not math.isfinite(number):
                raise ConfigurationError(f"{label} must be a finite number, not {number!r}")
        if delay < 0:
            raise ConfigurationError("delay must be >= 0 seconds")
        self.throttle = _check_throttle(throttle)
        if code is None and not drop and not delay and self.throttle is None:
            raise ConfigurationError(
                "a fault rule must do something: reply=/code=, drop=True, delay= or throttle="
            )
        for label, value, allowed in (
            ("sender", sender, _SENDER_STAGES),
            ("recipient", recipient, _RECIPIENT_STAGES),
            ("subject", subject, _SUBJECT_STAGES),
            ("greylist", greylist, frozenset({"RCPT"})),
        ):
            if value is not None and not set(self.stages) <= allowed:
                raise ConfigurationError(
                    f"{label}= can only be checked at stage(s) {', '.join(sorted(allowed))}, "
                    f"not {', '.join(s for s in self.stages if s not in allowed)}"
                )
        if greylist is not None and greylist < 0:
            raise ConfigurationError("greylist retry delay must be >= 0 seconds")
        if times is not None and times < 1:
            raise ConfigurationError("times must be >= 1 (remove the rule to disable it)")
        if nth is not None and nth < 1:
            raise ConfigurationError("nth counts from 1")
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise ConfigurationError("probability is a fraction between 0 and 1")
        self.code = code
        self.text = text
        self.drop = bool(drop)
        self.delay = float(delay)
        self.sender = _Matcher(sender) if sender is not None else None
        self.recipient = _Matcher(recipient) if recipient is not None else None
        self.subject = _Matcher(subject) if subject is not None else None
        self.predicate = predicate
        self.greylist = None if greylist is None else float(greylist)
        self.times = times
        self.nth = nth
        self.probability = probability
        self.seed = seed
        self.name = name
        self.id = id or uuid.uuid4().hex[:12]
        self.seen = 0
        """How many times the rule's conditions matched (what ``nth`` counts)."""
        self.fired = 0
        """How many times the rule fired."""
        self._rng = random.Random(seed)
        self._first_seen: dict[tuple[str, str], float] = {}

    # -- what the rule does

    @property
    def reply(self) -> str | None:
        """The reply as sent (``"451 4.7.1 Greylisted"``; multi-line text becomes a multi-line
        reply), or ``None`` if the rule does not reply."""
        if self.code is None:
            return None
        lines = (self.text or "").split("\n")
        head = [f"{self.code}-{line}" for line in lines[:-1]]
        return "\r\n".join([*head, f"{self.code} {lines[-1]}"])

    @property
    def exhausted(self) -> bool:
        """``True`` once the rule can no longer fire (``times`` used up, ``nth`` passed)."""
        if self.times is not None and self.fired >= self.times:
            return True
        return self.nth is not None and self.seen >= self.nth

    @property
    def action(self) -> str:
        if self.drop:
            return "drop"
        if self.code is not None:
            return "reply"
        return "throttle" if self.throttle is not None else "delay"

    # -- deciding (called with the owning set's lock held)

    def _seed_from(self, set_seed: int, index: int) -> None:
        if self.seed is None:
            self.seed = random.Random(f"smtpmock-faults:{set_seed}:{index}").getrandbits(32)
            self._rng = random.Random(self.seed)

    def _conditions_hold(self, ctx: FaultContext) -> bool:
        if ctx.stage not in self.stages:
            return False
        if self.sender is not None and not self.sender(ctx.sender):
            return False
        if self.recipient is not None:
            if ctx.recipient is not None:
                if not self.recipient(ctx.recipient):
                    return False
            elif not any(self.recipient(r) for r in ctx.recipients):
                return False
        if self.subject is not None and not self.subject(ctx.subject):
            return False
        return self.predicate is None or bool(self.predicate(ctx))

    def _greylisted(self, ctx: FaultContext, now: float) -> bool:
        assert self.greylist is not None
        key = ((ctx.sender or "").lower(), (ctx.recipient or "").lower())
        first = self._first_seen.get(key)
        if first is None:
            self._first_seen[key] = now
            return True
        return now - first < self.greylist

    def _decide(self, ctx: FaultContext, now: float) -> float | None:
        """Whether the rule fires for *ctx*: ``None`` if not, else the throttle rate drawn
        (``0.0`` when the rule does not throttle)."""
        if self.exhausted or not self._conditions_hold(ctx):
            return None
        if self.greylist is not None and not self._greylisted(ctx, now):
            return None
        self.seen += 1
        if self.nth is not None and self.seen != self.nth:
            return None
        if self.probability is not None and not self._rng.random() < self.probability:
            return None
        self.fired += 1
        if self.throttle is None:
            return 0.0
        low, high = self.throttle
        return low if low == high else self._rng.uniform(low, high)

    # -- plain-dict form

    def to_dict(self) -> dict[str, Any]:
        """The rule as JSON-ready data (counters included, read-only on the way back).

        A predicate cannot be serialised: it appears as its qualified name, and
        :meth:`from_dict` refuses a dict that has one.
        """
        predicate = None
        if self.predicate is not None:
            module = getattr(self.predicate, "__module__", "?")
            qualname = getattr(self.predicate, "__qualname__", repr(self.predicate))
            predicate = f"{module}.{qualname}"
        return {
            "id": self.id,
            "name": self.name,
            "stages": list(self.stages),
            "code": self.code,
            "text": self.text,
            "drop": self.drop,
            "delay": self.delay,
            "throttle": list(self.throttle) if self.throttle is not None else None,
            "sender": self.sender.to_json() if self.sender else None,
            "recipient": self.recipient.to_json() if self.recipient else None,
            "subject": self.subject.to_json() if self.subject else None,
            "predicate": predicate,
            "greylist": self.greylist,
            "times": self.times,
            "nth": self.nth,
            "probability": self.probability,
            "seed": self.seed,
            "seen": self.seen,
            "fired": self.fired,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultRule:
        """Build a rule from :meth:`to_dict` output (or the same keys written by hand; ``stage``
        is accepted for ``stages``, ``reply`` for ``code``+``text``)."""
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"a fault rule is a mapping, not {type(data).__name__}")
        known = {
            "id", "name", "stages", "stage", "code", "text", "reply", "drop", "delay",
            "throttle", "sender", "recipient", "subject", "predicate", "greylist", "times",
            "nth", "probability", "seed", "seen", "fired",
        }  # fmt: skip
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigurationError(f"unknown fault rule field(s): {', '.join(unknown)}")
        if data.get("predicate") is not None:
            raise ConfigurationError(
                f"rule {data.get('id')!r} has a Python predicate ({data['predicate']}), "
                "which cannot be rebuilt from a dict"
            )
        stage = data.get("stages", data.get("stage"))
        if stage is None:
            raise ConfigurationError("a fault rule needs 'stages' (or 'stage')")
        throttle = data.get("throttle")
        if isinstance(throttle, list):
            throttle = (float(throttle[0]), float(throttle[-1]))
        try:
            return cls(
                stage,
                reply=data.get("reply"),
                code=data.get("code"),
                text=data.get("text"),
                drop=bool(data.get("drop", False)),
                delay=float(data.get("delay") or 0.0),
                throttle=throttle,
                sender=_pattern(data.get("sender")),
                recipient=_pattern(data.get("recipient")),
                subject=_pattern(data.get("subject")),
                greylist=data.get("greylist"),
                times=data.get("times"),
                nth=data.get("nth"),
                probability=data.get("probability"),
                seed=data.get("seed"),
                name=data.get("name"),
                id=data.get("id"),
            )
        except (TypeError, ValueError, KeyError) as exc:
            if isinstance(exc, ConfigurationError):
                raise
            raise ConfigurationError(f"bad fault rule {dict(data)!r}: {exc}") from exc

    def __repr__(self) -> str:
        parts = [
            f"stages={'*' if self.stages == STAGES else ','.join(self.stages)}",
            self.action + (f" {self.reply!r}" if self.code is not None else ""),
        ]
        if self.delay:
            parts.append(f"delay={self.delay:g}s")
        if self.throttle is not None:
            parts.append(f"throttle={self.throttle[0]:g}-{self.throttle[1]:g}B/s")
        for label in ("sender", "recipient", "subject"):
            matcher = getattr(self, label)
            if matcher is not None:
                parts.append(f"{label}={matcher!r}")
        for label in ("greylist", "times", "nth", "probability"):
            value = getattr(self, label)
            if value is not None:
                parts.append(f"{label}={value}")
        if self.predicate is not None:
            parts.append("predicate")
        name = f" {self.name!r}" if self.name else ""
        return f"<FaultRule {self.id}{name} {' '.join(parts)} fired={self.fired}>"


def _pattern(value: Any) -> Pattern | None:
    return None if value is None else _Matcher.from_json(value)


def _check_throttle(value: int | float | tuple[float, float] | None) -> tuple[float, float] | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        low = high = float(value)
    else:
        try:
            low, high = (float(v) for v in value)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                "throttle is bytes/second, or a (min, max) pair of them"
            ) from exc
    if not (0 < low <= high and math.isfinite(high)):
        raise ConfigurationError(f"throttle must satisfy 0 < min <= max, not {value!r}")
    return (low, high)


# ---------------------------------------------------------------------------------- the log


@dataclass(frozen=True)
class FaultEvent:
    """One firing of a rule: when, where in the conversation, what the client was doing."""

    time: _dt.datetime
    stage: str
    rule_id: str
    rule_name: str | None
    action: str
    """``"reply"``, ``"drop"``, ``"delay"`` or ``"throttle"``."""
    reply: str | None
    session_id: str
    peer: tuple[str, int] | None = None
    helo: str | None = None
    sender: str | None = None
    recipients: tuple[str, ...] = ()
    recipient: str | None = None
    subject: str | None = None
    delay: float = 0.0
    throttle: float | None = None
    """The bytes/second applied, when the rule throttles."""

    @property
    def code(self) -> int | None:
        return int(self.reply[:3]) if self.reply else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(),
            "stage": self.stage,
            "rule_id": self.rule_id,
            "rule_name": self.rule_name,
            "action": self.action,
            "reply": self.reply,
            "session_id": self.session_id,
            "peer": list(self.peer) if self.peer else None,
            "helo": self.helo,
            "sender": self.sender,
            "recipients": list(self.recipients),
            "recipient": self.recipient,
            "subject": self.subject,
            "delay": self.delay,
            "throttle": self.throttle,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultEvent:
        peer = data.get("peer")
        try:
            return cls(
                time=_dt.datetime.fromisoformat(str(data["time"])),
                stage=str(data["stage"]),
                rule_id=str(data["rule_id"]),
                rule_name=data.get("rule_name"),
                action=str(data["action"]),
                reply=data.get("reply"),
                session_id=str(data["session_id"]),
                peer=(str(peer[0]), int(peer[1])) if peer else None,
                helo=data.get("helo"),
                sender=data.get("sender"),
                recipients=tuple(data.get("recipients") or ()),
                recipient=data.get("recipient"),
                subject=data.get("subject"),
                delay=float(data.get("delay") or 0.0),
                throttle=data.get("throttle"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"bad fault log entry {dict(data)!r}: {exc}") from exc

    def __str__(self) -> str:
        what = self.reply.split("\r\n")[-1] if self.reply else self.action
        who = f" from <{self.sender}>" if self.sender is not None else ""
        to = f" to <{self.recipient}>" if self.recipient else ""
        return f"[{self.time:%H:%M:%S.%f}] {self.stage}{who}{to}: {what} (rule {self.rule_id})"


# ---------------------------------------------------------------------------------- the set


class FaultSet:
    """The live fault rules of one server (``mock.faults``), their log, and scenarios.

    Thread-safe: rules may be added and removed from the test thread while connections are
    served. ``seed`` seeds every probabilistic rule that has no seed of its own (rule *k* gets a
    seed derived from ``(seed, k)``), so ``FaultSet(seed=s)`` with the same rules and the same
    client traffic makes the same decisions. ``clock`` (monotonic seconds) is what greylisting
    measures retry delays with; tests can pass a fake one instead of sleeping.
    """

    def __init__(
        self,
        rules: Iterable[FaultRule | Mapping[str, Any]] = (),
        *,
        seed: int | None = None,
        clock: Clock = time.monotonic,
        log_limit: int = _DEFAULT_LOG_LIMIT,
    ) -> None:
        self.seed: int = random.SystemRandom().getrandbits(32) if seed is None else int(seed)
        self.clock = clock
        # Re-entrant: a predicate (run with the lock held) may add or remove rules.
        self._lock = threading.RLock()
        self._rules: list[FaultRule] = []
        self._added = 0
        self._log: deque[FaultEvent] = deque(maxlen=log_limit)
        for rule in rules:
            self.add(rule)

    # -- the rules

    def add(self, rule: FaultRule | Mapping[str, Any]) -> FaultRule:
        """Add a rule (or its dict form); it applies from the next command on. Returns it."""
        if not isinstance(rule, FaultRule):
            rule = FaultRule.from_dict(rule)
        with self._lock:
            if any(r.id == rule.id for r in self._rules):
                raise ConfigurationError(f"a rule with id {rule.id!r} is already in the set")
            rule._seed_from(self.seed, self._added)
            self._added += 1
            self._rules.append(rule)
        return rule

    def rule(self, stage: str | Iterable[str], **kwargs: Any) -> FaultRule:
        """``faults.rule("MAIL", code=451)`` is ``faults.add(FaultRule("MAIL", code=451))``."""
        return self.add(FaultRule(stage, **kwargs))

    def remove(self, rule: FaultRule | str) -> None:
        """Remove a rule, given itself or its id (``KeyError`` if it is not in the set)."""
        rule_id = rule.id if isinstance(rule, FaultRule) else rule
        with self._lock:
            for i, candidate in enumerate(self._rules):
                if candidate.id == rule_id:
                    del self._rules[i]
                    return
        raise KeyError(f"no fault rule with id {rule_id!r}")

    def clear(self) -> None:
        """Remove every rule and forget the log."""
        with self._lock:
            self._rules.clear()
            self._log.clear()

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    @property
    def rules(self) -> list[FaultRule]:
        """The rules, in the order they are tried."""
        with self._lock:
            return list(self._rules)

    @property
    def log(self) -> list[FaultEvent]:
        """Every firing so far, oldest first (the newest ``log_limit`` of them)."""
        with self._lock:
            return list(self._log)

    def events(
        self, *, stage: str | None = None, rule: FaultRule | str | None = None
    ) -> list[FaultEvent]:
        """The log, narrowed to one stage and/or one rule (the rule or its id)."""
        rule_id = rule.id if isinstance(rule, FaultRule) else rule
        wanted = _stages(stage) if stage is not None else None
        return [
            e
            for e in self.log
            if (wanted is None or e.stage in wanted) and (rule_id is None or e.rule_id == rule_id)
        ]

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self) -> Iterator[FaultRule]:
        return iter(self.rules)

    def __repr__(self) -> str:
        return f"<FaultSet seed={self.seed} rules={len(self._rules)} fired={len(self._log)}>"

    # -- ready-made scenarios

    def greylist(
        self,
        retry_after: float = 300.0,
        *,
        recipient: Pattern | None = None,
        reply: str = "451 4.7.1 Greylisted, please try again later",
    ) -> FaultRule:
        """Greylisting: the first attempt for each (sender, recipient) pair gets 451 at RCPT,
        and so does any retry sooner than *retry_after* seconds (measured with :attr:`clock`);
        a later retry is accepted, and so is everything after it."""
        return self.add(
            FaultRule("RCPT", reply=reply, greylist=retry_after, recipient=recipient,
                      name="greylist")
        )  # fmt: skip

    def fail_then_succeed(
        self, n: int = 1, *, code: int = 451, text: str | None = None, stage: str = "DATA_END"
    ) -> FaultRule:
        """The next *n* attempts fail with *code* (at end of data by default), then the server
        accepts again."""
        return self.add(FaultRule(stage, code=code, text=text, times=n, name="fail_then_succeed"))

    def reject_recipients(
        self, pattern: Pattern, *, code: int = 550, text: str | None = None
    ) -> FaultRule:
        """Refuse every recipient matching *pattern* (glob or regex) at RCPT, 550 by default."""
        return self.add(
            FaultRule("RCPT", code=code, text=text, recipient=pattern, name="reject_recipients")
        )

    def reject_senders(
        self, pattern: Pattern, *, code: int = 550, text: str | None = None
    ) -> FaultRule:
        """Refuse every sender matching *pattern* at MAIL FROM, 550 by default."""
        return self.add(
            FaultRule("MAIL", code=code, text=text, sender=pattern, name="reject_senders")
        )

    def mailbox_full(
        self, recipient: Pattern = "*", *, code: int = 552, text: str = "5.2.2 Mailbox full"
    ) -> FaultRule:
        """Recipients matching *recipient* (all by default) have a full mailbox: 552 at RCPT."""
        return self.add(
            FaultRule("RCPT", code=code, text=text, recipient=recipient, name="mailbox_full")
        )

    def disconnect_during_data(self, *, times: int | None = None) -> FaultRule:
        """Close the connection, without a reply, once the client has sent the whole message:
        the client cannot know whether it was delivered (it was not)."""
        return self.add(
            FaultRule("DATA_END", drop=True, times=times, name="disconnect_during_data")
        )

    def disconnect(self, stage: str | Iterable[str] = "connect", **kwargs: Any) -> FaultRule:
        """Close the connection without a reply at *stage* (``connect``: right after accept)."""
        kwargs.setdefault("name", "disconnect")
        return self.add(FaultRule(stage, drop=True, **kwargs))

    def slow(self, seconds: float, *, stage: str | Iterable[str] = "*") -> FaultRule:
        """A slow server: every reply (greeting included) comes *seconds* late."""
        return self.add(FaultRule(stage, delay=seconds, name="slow"))

    def throttle(
        self, bytes_per_second: float | tuple[float, float], *, stage: str = "connect"
    ) -> FaultRule:
        """A slow link: from *stage* on, the connection carries *bytes_per_second* each way."""
        return self.add(FaultRule(stage, throttle=bytes_per_second, name="throttle"))

    def chaos(self, triggers: str | Mapping[str, Any]) -> list[FaultRule]:
        """Add Mailpit chaos triggers: ``"Sender:451:50,Recipient:550:10,Authentication:535:5"``
        (trigger:code:percent) or Mailpit's JSON form (``{"Sender": {"ErrorCode": 451,
        "Probability": 50}, ...}``). Returns the rules added."""
        from ._chaos import mailpit_rules

        return [self.add(rule) for rule in mailpit_rules(triggers)]

    def jim(self, **parameters: float) -> list[FaultRule]:
        """Add rules that behave like MailHog's Jim; see :func:`smtpmock._chaos.jim_rules` for
        the parameters (MailHog's defaults when not given)."""
        from ._chaos import jim_rules

        return [self.add(rule) for rule in jim_rules(**parameters)]

    # -- plain-dict form

    def to_dict(self) -> dict[str, Any]:
        """``{"seed": ..., "rules": [...], "log": [...]}``."""
        with self._lock:
            return {
                "seed": self.seed,
                "rules": [r.to_dict() for r in self._rules],
                "log": [e.to_dict() for e in self._log],
            }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultSet:
        """A new set with the seed and rules of :meth:`to_dict` output (the log is not restored:
        it records what happened on another server)."""
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"a fault set is a mapping, not {type(data).__name__}")
        return cls(data.get("rules") or (), seed=data.get("seed"))

    @classmethod
    def coerce(cls, value: FaultsArgument) -> FaultSet:
        """What ``SMTPMock(faults=...)`` accepts: ``None``, a :class:`FaultSet`, a rule, a list
        of rules (or their dicts), the dict form of a set, or a Mailpit chaos string."""
        if value is None:
            return cls()
        if isinstance(value, FaultSet):
            return value
        if isinstance(value, FaultRule):
            return cls([value])
        if isinstance(value, str):
            faults = cls()
            faults.chaos(value)
            return faults
        if isinstance(value, Mapping):
            if "rules" in value or "seed" in value:
                return cls.from_dict(value)
            if "stage" in value or "stages" in value:
                return cls([value])
            faults = cls()
            faults.chaos(value)
            return faults
        if isinstance(value, Iterable):
            return cls(value)
        raise ConfigurationError(
            "faults= takes a FaultSet, FaultRule(s), their dict form or a Mailpit chaos string, "
            f"not {type(value).__name__}"
        )

    # -- the stage hook

    def hook(self, view: SessionView, stage: str, arg: Any) -> HookAction | None:
        """The stage hook :class:`~smtpmock.SMTPMock` registers: apply the rules to *stage*.

        ``None`` at once while there are no rules; otherwise the :class:`HookAction` of the rules
        that fire (the engine waits, throttles, drops or replies), or ``None``.
        """
        if not self._rules:
            return None
        ctx = _context(view, stage, arg)
        fired: list[tuple[FaultRule, float, FaultEvent]] = []
        with self._lock:
            now = self.clock()
            for rule in list(self._rules):  # a predicate may change the list
                rate = rule._decide(ctx, now)
                if rate is None:
                    continue
                event = _event(rule, ctx, rate)
                self._log.append(event)
                fired.append((rule, rate, event))
                if rule.drop or rule.code is not None:
                    break  # this rule answers: later rules never see the command
        if not fired:
            return None
        delay = sum(rule.delay for rule, _, _ in fired)
        throttle = next((rate for _, rate, _ in reversed(fired) if rate), None)
        last = fired[-1][0]
        return HookAction(
            reply=last.reply,
            drop=last.drop,
            delay=delay,
            throttle=throttle,
            note="\n".join(_note(rule, event) for rule, _, event in fired),
        )


FaultsArgument = (
    FaultSet | FaultRule | str | Mapping[str, Any] | Iterable[FaultRule | Mapping[str, Any]] | None
)
"""What ``SMTPMock(faults=...)`` accepts."""


# ---------------------------------------------------------------------------------- acting


def _context(view: SessionView, stage: str, arg: Any) -> FaultContext:
    sender = view.sender
    recipients = view.recipients
    recipient = None
    message = None
    argument = arg if isinstance(arg, str) else None
    if stage == "MAIL":
        sender = _address(argument, "FROM:")
    elif stage == "RCPT":
        recipient = _address(argument, "TO:")
    elif stage == "DATA_END" and isinstance(arg, Message):
        message = arg
        sender = arg.mail_from
        recipients = tuple(arg.rcpt_tos)
    return FaultContext(
        stage=stage,
        session_id=view.session_id,
        peer=view.peer,
        helo=view.helo,
        sender=sender,
        recipients=recipients,
        recipient=recipient,
        argument=argument,
        message=message,
    )


def _address(argument: str | None, keyword: str) -> str | None:
    """The address of a ``MAIL FROM:<a>`` / ``RCPT TO:<b>`` argument, as the client wrote it."""
    if argument is None:
        return None
    text = argument.strip()
    if text[: len(keyword)].upper() == keyword:
        text = text[len(keyword) :].strip()
    match = _ADDRESS.match(text)
    if match is not None:
        return match.group(1)
    return text.split(" ", 1)[0] if text else ""


def _event(rule: FaultRule, ctx: FaultContext, rate: float) -> FaultEvent:
    return FaultEvent(
        time=_dt.datetime.now(_dt.timezone.utc),
        stage=ctx.stage,
        rule_id=rule.id,
        rule_name=rule.name,
        action=rule.action,
        reply=rule.reply,
        session_id=ctx.session_id,
        peer=ctx.peer,
        helo=ctx.helo,
        sender=ctx.sender,
        recipients=ctx.recipients,
        recipient=ctx.recipient,
        subject=ctx.subject,
        delay=rule.delay,
        throttle=rate or None,
    )


def _note(rule: FaultRule, event: FaultEvent) -> str:
    """The transcript line of a firing, so the transcript reads why the server answered so."""
    name = f" ({rule.name})" if rule.name else ""
    what = {
        "reply": "replies",
        "drop": "drops the connection",
        "delay": f"delays the reply by {rule.delay:g} s",
        "throttle": f"throttles the link to {event.throttle or 0:g} B/s",
    }[event.action]
    if event.action == "reply" and rule.delay:
        what = f"replies after {rule.delay:g} s"
    return f"fault rule {rule.id}{name} {what}"
