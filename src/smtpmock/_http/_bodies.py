"""Request bodies of the HTTP API as pydantic models: validated before anything is stored or used.

A fault rule posted over HTTP is checked here field by field (finite numbers in range, compiled
regular expressions, a throttle of one or two positive rates) and then built by
:meth:`smtpmock.FaultRule.from_dict`, which checks how the fields go together. Either refusal
is a 400 and the rule set is left as it was. The bounds are those of a test double: a delay
longer than an hour or a rule that fires more than 2**63-1 times is a mistake, not a scenario.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["MAX_INT", "FaultRuleBody", "RegexPattern"]

MAX_INT = 2**63 - 1
"""The largest integer the API takes anywhere (SQLite's and most JSON clients' limit)."""

_MAX_DELAY = 3600.0
_MAX_RATE = 1e12
_Rate = Annotated[float, Field(gt=0, le=_MAX_RATE, allow_inf_nan=False)]


class RegexPattern(BaseModel):
    """A regular expression (Python syntax), matched with ``re.search``."""

    model_config = ConfigDict(extra="forbid")

    regex: str = Field(max_length=1000)
    flags: int = Field(0, ge=0, le=0xFFFF, description="``re`` flags as an integer")

    @model_validator(mode="after")
    def _compiles(self) -> RegexPattern:
        try:
            re.compile(self.regex, self.flags)
        except (re.error, ValueError, OverflowError) as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return self


_Pattern = Annotated[str, Field(max_length=1000)] | RegexPattern
_Stages = (
    Annotated[str, Field(max_length=20)]
    | Annotated[list[Annotated[str, Field(max_length=20)]], Field(max_length=20)]
)


class FaultRuleBody(BaseModel):
    """One fault rule (the keys of ``FaultRule.to_dict``; ``stage`` for ``stages`` and
    ``reply`` for ``code`` + ``text`` work too), or ``{"chaos": "Recipient:550:100"}``: Mailpit
    chaos triggers, which add one rule per trigger."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    chaos: str | None = Field(
        None, max_length=1000, description="Mailpit chaos triggers (trigger:code:percent,...)"
    )
    id: str | None = Field(None, min_length=1, max_length=64)
    name: str | None = Field(None, max_length=200)
    stages: _Stages | None = Field(None, description="one stage, a list of them, or '*'")
    stage: _Stages | None = None
    code: int | None = Field(None, ge=400, le=599)
    text: str | None = Field(None, max_length=1000)
    reply: str | None = Field(None, max_length=1000)
    drop: bool = False
    delay: float | None = Field(None, ge=0, le=_MAX_DELAY, description="seconds")
    throttle: _Rate | Annotated[list[_Rate], Field(min_length=1, max_length=2)] | None = Field(
        None, description="bytes/second, or [min, max]"
    )
    sender: _Pattern | None = None
    recipient: _Pattern | None = None
    subject: _Pattern | None = None
    predicate: None = Field(None, description="read-only (a Python predicate cannot be posted)")
    greylist: float | None = Field(None, ge=0, le=86_400 * 30, description="seconds")
    times: int | None = Field(None, ge=1, le=MAX_INT)
    nth: int | None = Field(None, ge=1, le=MAX_INT)
    probability: float | None = Field(None, ge=0, le=1)
    seed: int | None = Field(None, ge=-MAX_INT, le=MAX_INT)
    seen: int | None = Field(None, ge=0, le=MAX_INT, description="read-only, ignored")
    fired: int | None = Field(None, ge=0, le=MAX_INT, description="read-only, ignored")

    @model_validator(mode="after")
    def _chaos_alone(self) -> FaultRuleBody:
        if self.chaos is not None and self.model_fields_set != {"chaos"}:
            raise ValueError('{"chaos": "..."} takes no other field')
        return self

    def rule_dict(self) -> dict[str, Any]:
        """The fields given, in ``FaultRule.from_dict`` form."""
        data = self.model_dump(exclude_unset=True, exclude={"chaos", "seen", "fired"})
        return {key: value for key, value in data.items() if value is not None or key == "drop"}
