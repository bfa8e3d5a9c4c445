"""Settings of Mailpit's and MailHog's chaos features, mapped onto smtpmock fault rules.

So that users can move their settings over unchanged:

* Mailpit: ``--chaos-triggers "Sender:451:50,Recipient:550:10,Authentication:535:5"``
  (trigger:code:percent) and the JSON of ``PUT /api/v1/chaos``
  (``{"Sender": {"ErrorCode": 451, "Probability": 50}, ...}``). Sender is MAIL FROM, Recipient
  is RCPT TO, Authentication is AUTH; codes 400..599, percentages 0..100.
* MailHog's Jim: accept / disconnect / reject-sender / reject-recipient / reject-auth chances and
  a link speed applied to a fraction of connections.

Unlike both, the draws come from seeded generators (see :class:`~smtpmock.FaultSet`), so a run
that failed can be replayed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._errors import ConfigurationError
from ._faults import STAGES, FaultRule

__all__ = ["jim_rules", "mailpit_rules"]

_MAILPIT_TRIGGERS = {
    "sender": ("Sender", "MAIL"),
    "recipient": ("Recipient", "RCPT"),
    "recipients": ("Recipient", "RCPT"),
    "auth": ("Authentication", "AUTH"),
    "authentication": ("Authentication", "AUTH"),
}
_MAILPIT_DEFAULT_CODE = {"MAIL": 451, "RCPT": 451, "AUTH": 535}


def mailpit_rules(triggers: str | Mapping[str, Any]) -> list[FaultRule]:
    """Rules for Mailpit chaos triggers (a ``--chaos-triggers`` string or the API's JSON).

    A trigger with probability 0 adds no rule (Mailpit never fires it either).
    """
    items: list[tuple[str, Any, Any]] = []
    if isinstance(triggers, str):
        for item in triggers.split(","):
            part = item.strip()
            if not part:
                continue
            fields = [f.strip() for f in part.split(":")]
            if len(fields) != 3:
                raise ConfigurationError(
                    f"chaos trigger {part!r} must be trigger:code:percent, e.g. 'Sender:451:50'"
                )
            items.append((fields[0], fields[1], fields[2]))
    elif isinstance(triggers, Mapping):
        for key, value in triggers.items():
            if not isinstance(value, Mapping):
                raise ConfigurationError(
                    f"chaos trigger {key!r} must be {{'ErrorCode': int, 'Probability': int}}"
                )
            items.append((str(key), value.get("ErrorCode", 0), value.get("Probability", 0)))
    else:
        raise ConfigurationError(
            f"chaos triggers are a string or a mapping, not {type(triggers).__name__}"
        )
    rules: list[FaultRule] = []
    for key, raw_code, raw_percent in items:
        known = _MAILPIT_TRIGGERS.get(key.lower())
        if known is None:
            raise ConfigurationError(
                f"unknown chaos trigger {key!r}; Mailpit's are Sender, Recipient, Authentication"
            )
        name, stage = known
        try:
            code = int(raw_code) or _MAILPIT_DEFAULT_CODE[stage]
            percent = float(raw_percent)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"chaos trigger {key}: code and percent must be numbers, "
                f"not {raw_code!r}, {raw_percent!r}"
            ) from exc
        if not 400 <= code <= 599:
            raise ConfigurationError(f"chaos trigger {key}: code must be 400..599, not {code}")
        if not 0 <= percent <= 100:
            raise ConfigurationError(f"chaos trigger {key}: percent must be 0..100, not {percent}")
        if percent == 0:
            continue
        rules.append(
            FaultRule(stage, code=code, probability=percent / 100, name=f"mailpit-chaos:{name}")
        )
    return rules


def jim_rules(
    *,
    accept: float = 0.99,
    disconnect: float = 0.005,
    linkspeed_affect: float = 0.1,
    linkspeed_min: float = 1024,
    linkspeed_max: float = 10240,
    reject_sender: float = 0.05,
    reject_recipient: float = 0.05,
    reject_auth: float = 0.05,
) -> list[FaultRule]:
    """Rules that behave like MailHog's Jim (``-jim-*`` flags; MailHog's defaults here).

    * ``accept``: chance a connection is accepted; otherwise it is closed at once.
    * ``disconnect``: chance, at each command, that the connection is dropped.
    * ``linkspeed_affect``: chance a connection is throttled, to a speed drawn between
      ``linkspeed_min`` and ``linkspeed_max`` bytes/second.
    * ``reject_sender`` / ``reject_recipient`` / ``reject_auth``: chance that MAIL FROM /
      RCPT TO (550) or AUTH (535) is refused.

    A chance of 0 adds no rule.
    """
    for label, value in (
        ("accept", accept),
        ("disconnect", disconnect),
        ("linkspeed_affect", linkspeed_affect),
        ("reject_sender", reject_sender),
        ("reject_recipient", reject_recipient),
        ("reject_auth", reject_auth),
    ):
        if not 0.0 <= value <= 1.0:
            raise ConfigurationError(f"jim {label} is a chance between 0 and 1, not {value}")
    rules: list[FaultRule] = []
    if accept < 1:
        rules.append(FaultRule("connect", drop=True, probability=1 - accept, name="jim:accept"))
    if linkspeed_affect > 0:
        rules.append(
            FaultRule(
                "connect",
                throttle=(linkspeed_min, linkspeed_max),
                probability=linkspeed_affect,
                name="jim:linkspeed",
            )
        )
    if disconnect > 0:
        commands = [s for s in STAGES if s != "connect"]
        rules.append(FaultRule(commands, drop=True, probability=disconnect, name="jim:disconnect"))
    if reject_sender > 0:
        rules.append(
            FaultRule(
                "MAIL",
                reply="550 5.7.1 Sender rejected",
                probability=reject_sender,
                name="jim:reject-sender",
            )
        )
    if reject_recipient > 0:
        rules.append(
            FaultRule(
                "RCPT",
                reply="550 5.1.1 Recipient rejected",
                probability=reject_recipient,
                name="jim:reject-recipient",
            )
        )
    if reject_auth > 0:
        rules.append(
            FaultRule(
                "AUTH",
                reply="535 5.7.8 Authentication rejected",
                probability=reject_auth,
                name="jim:reject-auth",
            )
        )
    return rules
