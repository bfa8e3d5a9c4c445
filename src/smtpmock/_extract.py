"""What tests dig out of a mail by hand: the one-time code and the call-to-action link.

Both are conservative: a wrong answer is worse than none, so each returns ``None`` unless the mail
says plainly what it holds. Nothing here knows about :class:`~smtpmock.Message`; the functions take
the decoded subject, text and HTML, and :attr:`Message.verification_code
<smtpmock.Message.verification_code>` and :attr:`Message.magic_link
<smtpmock.Message.magic_link>` call them.

**Verification codes** (:func:`find_code`). A code is taken only where a *code phrase* introduces
it, never because a number looks like one:

* The shapes: 4 to 8 digits (``482913``); digit groups of 6 to 8 digits in all, separated by one
  space or hyphen (``482 913``, ``4829-1305``); one digit per table cell as some templates draw
  them (``4 8 2 9 1 3`` once the HTML is text); upper-case letters and digits mixed, 6 to 8
  (``K7Q9ZX``) or two groups of 3 to 4 around a hyphen (``A7K-9QZ``), with at least one digit.
* The phrases, before the code (``Your verification code is 482913``, ``Code:`` on one line and
  the code on the next, ``Enter this code to sign in: ...``) or after it (``482913 is your login
  code``): "verification / confirmation / security / login / sign-in / access / activation /
  one-time code", "one-time password", "passcode", "OTP", "PIN", and a bare "code", in English,
  German, French, Spanish, Portuguese, Italian, Dutch, Japanese and Chinese (the lists are
  :data:`CODE_PHRASES` and :data:`GENERIC_CODE_WORDS`); or around it, a verb and its purpose
  (``Enter 628194 to verify your account``, ``Geben Sie 628194 ein``, ``Voer 628194 in``,
  ``Saisissez 628194 pour ...``). A bare "code" does not count when a
  qualifier says what other kind of code it is: promo, discount, coupon, voucher, gift, referral,
  zip/postal, area/country, tracking, order, booking/reservation, product, error, tax ... (and
  their translations: ``code postal``, ``código de descuento``, ``codice sconto`` ...).
* Between the phrase and the code there may be at most 80 characters of glue, with no other
  number of 4 or more digits, no link and no sentence that ends and goes on to something else
  (a colon is fine: ``Use the code below to sign in:``).
* The code itself is not part of something larger: not next to other digits, a decimal point,
  a currency sign, ``#``, ``/`` or ``:`` (so no prices, dates, times, phone numbers, order and
  tracking numbers), and not followed by a unit (``1440 minutes``, ``2024 items``).
* Sources are read in order: the subject, the text body, then the HTML body as text, each up
  to its first :data:`MAX_SCAN` characters (codes sit at the top of the mails that carry them).
  Among the surest hits (a specific phrase over a bare "code", a tight gap over a loose one),
  two different codes (spaces and hyphens aside) give ``None``: the mail is ambiguous.

**Magic links** (:func:`find_magic_link`): every ``http(s)`` link of the HTML body (with its
anchor text and styling) and of the text body is scored. Links to unsubscribe, manage
preferences, privacy and terms pages, help and support, social networks, "view in browser", and
links around nothing but an image (a logo) are never chosen. A link scores for words of
signing in, verifying, confirming, resetting, activating, inviting and accepting (in the same
languages) in its anchor text and in its URL, for looking like a button (a ``button``/``btn``/
``cta`` class or role, a background colour or padding in its style) and for carrying a token
(a long random query value or path segment). The best score wins, the earliest on a tie; a link
with no such word in its URL or its text is never chosen (``None``), whatever its styling.
"""

from __future__ import annotations

import html as _html
import html.parser
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "CODE_PHRASES",
    "GENERIC_CODE_WORDS",
    "VerificationCode",
    "find_code",
    "find_magic_link",
    "html_to_text",
]


@dataclass(frozen=True)
class VerificationCode:
    """A one-time code found in a message, with the phrase that introduced it."""

    value: str
    """The code as the mail shows it (``"482 913"``, ``"A7K-9QZ"``)."""
    phrase: str
    """The words that introduced it, as written (``"Your verification code is"``)."""
    source: str
    """Where it was found: ``"subject"``, ``"text"`` or ``"html"``."""

    @property
    def compact(self) -> str:
        """The code without spaces and hyphens (``"482913"``), as a form usually takes it."""
        return re.sub(r"[\s\-]", "", self.value)

    def __str__(self) -> str:
        return self.value


# ----------------------------------------------------------------------------- HTML as text

_BLOCK = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "tr",
        "ul",
    ]
)
_SKIP = frozenset(("script", "style", "head", "title", "template", "noscript"))


class _Text(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag in _BLOCK:
            self.out.append("\n")
        elif tag in ("td", "th"):
            self.out.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK:
            self.out.append("\n")
        elif tag in ("td", "th"):
            self.out.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(data)


def html_to_text(markup: str) -> str:
    """*markup* as plain text: tags dropped, blocks on their own lines, entities decoded,
    ``<script>``/``<style>``/``<head>`` left out, runs of blank space folded. Never raises."""
    parser = _Text()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # HTMLParser is lenient; never let a body break an accessor
        return _fold(_html.unescape(re.sub(r"<[^>]*>", " ", markup)))
    return _fold("".join(parser.out))


def _fold(text: str) -> str:
    lines = [
        re.sub(r"[ \t\r\f\v\u00a0\u200b\u200c\u200d\ufeff]+", " ", x).strip()
        for x in text.split("\n")
    ]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


# ----------------------------------------------------------------------------- codes

CODE_PHRASES: tuple[str, ...] = (
    # English
    r"verification\s+code",
    r"verify\s+code",
    r"confirmation\s+code",
    r"security\s+code",
    r"authentication\s+code",
    r"log[\s-]?in\s+code",
    r"sign[\s-]?in\s+code",
    r"access\s+code",
    r"activation\s+code",
    r"magic\s+code",
    r"one[\s-]?time\s+(?:code|password|passcode|pin)",
    r"single[\s-]?use\s+code",
    r"(?:2fa|mfa|two[\s-]?factor|2[\s-]?step)\s+(?:verification\s+)?code",
    r"pass\s?code",
    r"(?-i:PIN|TAN|mTAN|OTP)(?:[\s-]?(?i:code))?",
    # German
    r"bestätigungs-?code",
    r"verifizierungs-?code",
    r"verifikations-?code",
    r"sicherheits-?code",
    r"einmal-?(?:code|passwort|kennwort)",
    r"anmelde-?code",
    r"login-?code",
    r"aktivierungs-?code",
    r"zugangs-?code",
    r"best[äa]tigungsnummer",
    # French
    r"code\s+de\s+(?:v[ée]rification|confirmation|s[ée]curit[ée]|connexion|validation|"
    r"activation)",
    r"code\s+d['’]\s?(?:acc[èe]s|authentification|activation|identification)",
    r"code\s+(?:[àa]\s+usage\s+unique|temporaire|unique)",
    r"mot\s+de\s+passe\s+(?:[àa]\s+usage\s+unique|temporaire)",
    # Spanish / Portuguese
    r"c[óo]digo\s+de\s+(?:verificaci[óo]n|confirmaci[óo]n|seguridad|acceso|activaci[óo]n|"
    r"inicio\s+de\s+sesi[óo]n|un\s+solo\s+uso|validaci[óo]n|autenticaci[óo]n)",
    r"c[óo]digo\s+de\s+(?:verifica[çc][ãa]o|confirma[çc][ãa]o|seguran[çc]a|acesso|ativa[çc][ãa]o|"
    r"uso\s+[úu]nico|login|valida[çc][ãa]o|autentica[çc][ãa]o)",
    r"(?:contraseña|clave|senha)\s+(?:de\s+un\s+solo\s+uso|temporal|de\s+uso\s+[úu]nico|"
    r"tempor[áa]ria)",
    # Italian
    r"codice\s+(?:di\s+(?:verifica|conferma|sicurezza|accesso|attivazione|autenticazione)|"
    r"monouso|otp|temporaneo)",
    r"password\s+(?:monouso|temporanea)",
    # Dutch
    r"verificatie-?code",
    r"bevestigings-?code",
    r"beveiligings-?code",
    r"inlog-?code",
    r"toegangs-?code",
    r"aanmeld-?code",
    r"activatie-?code",
    r"eenmalige\s+(?:code|toegangscode|wachtwoord)",
    # Japanese
    r"認証コード",
    r"確認コード",
    r"認証番号",
    r"確認番号",
    r"ワンタイムパスワード",
    r"ワンタイムコード",
    r"セキュリティコード",
    r"ログインコード",
    # Chinese
    r"验证码",
    r"驗證碼",
    r"校验码",
    r"校驗碼",
    r"动态码",
    r"動態碼",
    r"安全码",
    r"確認碼",
    r"确认码",
    r"一次性密码",
    r"一次性密碼",
)
"""The phrases that introduce a code (regular expressions, matched ignoring case)."""

GENERIC_CODE_WORDS: tuple[str, ...] = (r"code", r"c[óo]digo", r"codice", r"コード", r"代码")
"""Words for "code" that introduce one unless a qualifier says it is another kind of code."""

# Qualifiers that make a bare "code" some other code, before it ("promo code") or after it
# ("code promo", "código de descuento").
_QUALIFIERS = (
    r"promo(?:tion(?:al)?)?|discount|coupon|voucher|gift(?: card)?|(?:credit |debit )?card|"
    r"referral|invite|invitation|tracking|track|order|booking|reservation|flight|delivery|"
    r"shipping|parcel|package|store|shop|room|gate|seat|door|wi-?fi|network|redeem|redemption|"
    r"enter promo|your promo|rabatt|gutschein|aktions|sendungs"
)
_GENERIC_QUALIFIERS = (
    r"zip|postal|post|area|country|dialing|reference|ref|confirmation number|product|item|sku|"
    r"article|error|status|source|qr|bar|tax|vat|swift|bic|iban|sort|bank|branch|auth|"
    r"authori[sz]ation|approval|dress|color|colour|style|offer|sale|apply|cheat|location|"
    r"customer|client|account|member|membership|site|postleitzahl|kunden|kundennummer|artikel|"
    r"fehler|filial|filiale"
)
# What makes a phrase another kind of code when it stands right before it ("booking
# confirmation code"), and what does so only for a bare "code" ("account code", but "account
# verification code" is one). Matched against the last one to three words, whole words only.
_NEGATIVE_BEFORE = re.compile(rf"(?:{_QUALIFIERS})", re.IGNORECASE)
_GENERIC_NEGATIVE_BEFORE = re.compile(rf"(?:{_QUALIFIERS}|{_GENERIC_QUALIFIERS})", re.IGNORECASE)


def _qualified(before: str, qualifiers: re.Pattern[str]) -> bool:
    """Whether the words right before a phrase (only spaces or hyphens after them) qualify it."""
    stripped = before.rstrip(" \t\r\n-")
    words = stripped.split()[-3:]
    if not words or not words[-1][-1].isalnum():
        return False  # "order, code": punctuation between word and phrase
    return any(qualifiers.fullmatch(" ".join(words[-n:])) for n in range(1, len(words) + 1))


_NEGATIVE_AFTER = re.compile(
    r"^[ \t-]*(?:(?:de|di|do|da|del|della|du|des|d['’])[ \t]*)?"
    r"(?:promo|promocional|promotionnel|promozionale|promo[çc][ãa]o|postal|postale|réduction|"
    r"reduction|r[ée]duc|descuento|desconto|sconto|suivi|seguimiento|rastreamento|rastreio|"
    r"tracciamento|pedido|commande|ordine|reserva|r[ée]servation|prenotazione|cliente|client|"
    r"article|articolo|produto|producto|prodotto|fiscale|barras|erreur|error|errore|regalo|"
    r"cadeau|presente|parrainage|referido|indica[çc][ãa]o|invito|convite|invitaci[óo]n|"
    r"invitation|coupon|cup[óo]n|cupom|buono|voucher|vale|gift|promotion)\b",
    re.IGNORECASE,
)

# Latin letters only at the edges: a CJK phrase sits right against the text around it.
_L = r"A-Za-z0-9_\u00c0-\u024f"
# A phrase stays on one line: "Verify\n\ncode" is two lines that happen to meet.
_ONE_LINE = "|".join(CODE_PHRASES).replace(r"[\s-]", r"[ \t\u00a0-]").replace(r"\s", r"[ \t\u00a0]")
_PHRASE = re.compile(
    rf"(?<![{_L}-])(?:" + _ONE_LINE + rf")(?![{_L}-])"
    rf"|(?<![{_L}-])(?P<generic>" + "|".join(GENERIC_CODE_WORDS) + rf")(?![{_L}])",
    re.IGNORECASE,
)
# Verbs and filler that may sit between a code and a phrase after it ("482913 is your code").
_AFTER_GLUE = re.compile(
    r"^\s*(?:[:\-–—]\s*)?(?:is|are|was|will\s+be|est|es|ist|lautet|é|è|wordt|is\s+je|is\s+uw|"
    r"は|是|为|為)(?:\s|$)",
    re.IGNORECASE,
)
_CJK_AFTER_GLUE = re.compile(r"^\s*(?:は|是|为|為|が)")

# Code-shaped tokens. The look-arounds keep out parts of larger things: other digits, decimals,
# prices, dates, times, phone numbers, "#123456".
# ASCII word characters only: a code sits right against CJK text ("验证码是482913").
_EDGE_BEFORE = r"(?<![A-Za-z0-9_.,:/#+$€£¥%@&=])(?<!\d[\s\-])(?<![A-Za-z0-9_]-)"
_EDGE_BEFORE_DIGITS = r"(?<![A-Za-z0-9_.,:/#+$€£¥%@&=])(?<!\d[\s\-])(?<![0-9a-z]-)"
_EDGE_AFTER = r"(?![A-Za-z0-9_@%€$£¥])(?![.,:/]\d)(?!-[A-Za-z0-9_])(?![ ]\d)"
_CANDIDATE = re.compile(
    # one digit per cell: "4 8 2 9 1 3" (only spaces, 4 to 8 digits)
    _EDGE_BEFORE_DIGITS
    + r"(?P<cells>\d(?:[ \t]\d){3,7})"
    + _EDGE_AFTER
    + r"|"
    # digit groups: "482 913", "4829-1305" (6 to 8 digits in all)
    + _EDGE_BEFORE_DIGITS
    + r"(?P<groups>\d{2,4}(?:[ \-]\d{2,4}){1,3})"
    + _EDGE_AFTER
    + r"|"
    # plain digits
    + _EDGE_BEFORE_DIGITS
    + r"(?P<digits>\d{4,8})"
    + _EDGE_AFTER
    + r"|"
    # alphanumeric: "A7K-9QZ", "K7Q9ZX"
    + _EDGE_BEFORE
    + r"(?P<alnum>[A-Z0-9]{3,4}-[A-Z0-9]{3,4}|[A-Z0-9]{6,8})"
    + _EDGE_AFTER
)
# A unit right after the number, on the same line: a quantity, a duration, a price, not a code.
_UNIT_AFTER = re.compile(
    r"^[ \t]*(?:(?:minutes?|mins?|hours?|hrs?|seconds?|secs?|days?|weeks?|months?|years?|"
    r"items?|pieces?|pcs|units?|points?|pts|miles?|km|kg|g|lbs?|ml|l|m|s|h|mb|gb|kb|px|usd|eur|gbp|"
    r"chf|dollars?|euros?|x|minuten|stunden|tage|jahre|minutos?|horas?|dias?|días?|minuti|ore|"
    r"giorni|uur|dagen)(?![A-Za-z\u00c0-\u024f])|%|分|時間|日|年|个|個|件|元|円)",
    re.IGNORECASE,
)
_PROMO_AFTER = re.compile(
    r"^[^\w\n]*(?:at\s+checkout|to\s+save|for\s+\d+\s*%|and\s+save|off\b|%|beim\s+bezahlen|"
    r"au\s+paiement|al\s+pagar|no\s+checkout|al\s+checkout|bij\s+het\s+afrekenen)",
    re.IGNORECASE,
)
_YEAR = re.compile(r"^(?:19|20)\d\d$")
# Every phrase contains one of these (lower-cased): a cheap test before the phrase scan.
_ANCHORS = (
    "cod",
    "códi",
    "otp",
    "pin",
    "tan",
    "pass",
    "wort",
    "woord",
    "senha",
    "contrase",
    "clave",
    "nummer",
    "コード",
    "番号",
    "パスワード",
    "码",
    "碼",
)
# Codes sit at the top of the mails that carry them; a longer body is a newsletter or a receipt,
# and reading all of it would make a pathological mail slow. Bodies are read this far.
MAX_SCAN = 20_000
_MAX_MARKUP = 200_000
_MAX_GAP = 80
_MAX_AFTER_GAP = 40
_SENTENCE_BREAK = re.compile(r"[.!?。！？]\s+\S")
_LONG_NUMBER = re.compile(r"\d{4,}")
# Words in the gap that say the number after them is something else ("this code, call 555 1234").
_GAP_NEVER = re.compile(
    r"\b(?:call|phone|tel|fax|contact|order|invoice|ticket|case|ref|reference|number|nr|id|"
    r"anrufen|telefon|appel(?:ez)?|t[ée]l[ée]phone|llame|tel[ée]fono|ligue|telefone|chiama|"
    r"bel|bestellung|commande|pedido|ordine|bestelling|sent\s+to|gesendet\s+an|envoy[ée]\s+au|"
    r"enviado\s+a|inviato\s+a|verzonden\s+naar)\b|#|\+\d|\(\d+\)",
    re.IGNORECASE,
)
# A gap that is only glue: "Your code is 482913", "Code:\n482913".
_TIGHT = re.compile(
    r"^[\s:：\-–—=]*(?:(?:is|are|est|es|ist|lautet|é|è|luidt|是|为|為|は|：)[\s:：]*)?$",
    re.IGNORECASE,
)


@dataclass
class _Hit:
    value: str
    phrase: str
    source: str
    rank: int = field(default=0)
    """Higher is surer: a specific phrase (2) over a bare "code" (0), a tight gap (+1)."""


def _shape_ok(match: re.Match[str]) -> str | None:
    """The candidate's value if its shape is a code's, else ``None``."""
    kind = match.lastgroup
    value = match.group(0)
    if kind == "cells":
        return value
    if kind == "groups":
        digits = re.sub(r"\D", "", value)
        if not 6 <= len(digits) <= 8:
            return None
        return value
    if kind == "digits":
        return value
    if kind == "alnum":
        letters = sum(c.isalpha() for c in value)
        numerals = sum(c.isdigit() for c in value)
        # at least one digit; digits only are judged as digits or digit groups above
        if numerals == 0 or letters == 0:
            return None
        return value
    return None


def _candidate_after(text: str, start: int, end_limit: int) -> re.Match[str] | None:
    for match in _CANDIDATE.finditer(text, start, end_limit):
        if _shape_ok(match) is None:
            continue
        tail = text[match.end() : match.end() + 30]
        if _UNIT_AFTER.match(tail) or _PROMO_AFTER.match(tail):
            continue
        if match.lastgroup == "digits" and _YEAR.match(match.group(0)):
            before = text[max(0, match.start() - 3) : match.start()]
            if "©" in before or "(c)" in before.lower():
                continue
        return match
    return None


def _is_generic_negative(text: str, match: re.Match[str]) -> bool:
    before = text[max(0, match.start() - 40) : match.start()]
    after = text[match.end() : match.end() + 40]
    return bool(_qualified(before, _GENERIC_NEGATIVE_BEFORE) or _NEGATIVE_AFTER.match(after))


def _gap_ok(gap: str) -> bool:
    if len(gap) > _MAX_GAP or "://" in gap or _LONG_NUMBER.search(gap) or _GAP_NEVER.search(gap):
        return False
    # A sentence that ends and goes on to something else breaks the link between phrase and code,
    # unless what follows leads up to the code with a colon ("... below. Enter it here:").
    return not (_SENTENCE_BREAK.search(gap) and not gap.rstrip().endswith((":", "：")))


def _phrase_text(text: str, match: re.Match[str]) -> str:
    """The phrase with the words that lead up to it on its line ("Your verification code is")."""
    line_start = text.rfind("\n", 0, match.start()) + 1
    lead = text[line_start : match.start()]
    # keep at most the last four words before the phrase, from the last sentence
    lead = re.split(r"[.!?。！？]\s", lead)[-1]
    words = lead.split()
    lead = " ".join(words[-4:])
    return (lead + " " if lead else "") + match.group(0)


# The imperative form, where the code sits between a verb and its purpose: "Enter 628194 to
# verify your account", "Geben Sie 628194 ein", "Voer 628194 in", "Saisissez 628194 pour ...".
_CODE_GROUP = r"(?P<code>[A-Za-z0-9]{2,8}(?:[ -][A-Za-z0-9]{2,4}){0,3})"
_IMPERATIVES = tuple(
    re.compile(rf"(?<![\w])(?P<verb>{verb})[ \t]+{_CODE_GROUP}[ \t]+(?P<purpose>{purpose})", re.I)
    for verb, purpose in (
        (
            r"enter|use|type|input|paste",
            r"(?:to|in[ \t]+order[ \t]+to)[ \t]+(?:verify|confirm|sign|log|complete|finish|"
            r"continue|reset|activate|authenticate|access|validate)\b",
        ),
        (
            r"saisissez|entrez|introduce|introduzca|ingresa|inserisci|digite|insira",
            r"(?:pour|para|per)\b",
        ),
        (r"geben[ \t]+sie|gib|voer", r"(?:ein|in)\b"),
    )
)


def _imperatives(text: str, source: str) -> list[_Hit]:
    hits: list[_Hit] = []
    for pattern in _IMPERATIVES:
        hits.extend(_imperative_hits(pattern, text, source))
    return hits


def _imperative_hits(pattern: re.Pattern[str], text: str, source: str) -> list[_Hit]:
    hits: list[_Hit] = []
    for match in pattern.finditer(text):
        code = match.group("code")
        candidate = _CANDIDATE.fullmatch(code)
        if candidate is None or _shape_ok(candidate) is None:
            continue
        phrase = f"{match.group('verb')} … {match.group('purpose')}"
        hits.append(_Hit(code, phrase, source, 2))
    return hits


def _scan(text: str, source: str) -> list[_Hit]:
    hits: list[_Hit] = _imperatives(text, source)
    lowered = text.lower()
    if not any(anchor in lowered for anchor in _ANCHORS):
        return hits  # no phrase can match: skip the (slower) phrase scan
    for phrase in _PHRASE.finditer(text):
        if _qualified(text[max(0, phrase.start() - 40) : phrase.start()], _NEGATIVE_BEFORE):
            continue  # "booking confirmation code", "promo code"
        if phrase.group("generic") is not None and _is_generic_negative(text, phrase):
            continue
        # the phrase before the code: "Your code is 482913", "Code:\n482913"
        window_end = min(len(text), phrase.end() + _MAX_GAP + 12)
        found = _candidate_after(text, phrase.end(), window_end)
        if found is not None:
            gap = text[phrase.end() : found.start()]
            if _gap_ok(gap):
                glue = re.match(r"[^\n.!?]*", gap)
                shown = _phrase_text(text, phrase) + (glue.group(0).rstrip() if glue else "")
                rank = (0 if phrase.group("generic") else 2) + (1 if _TIGHT.match(gap) else 0)
                hits.append(_Hit(found.group(0), shown.strip(" :：-–—"), source, rank))
                continue
        # the code before the phrase: "482913 is your login code"
        lo = max(0, phrase.start() - _MAX_AFTER_GAP - 10)
        before = [
            m for m in _CANDIDATE.finditer(text, lo, phrase.start()) if _shape_ok(m) is not None
        ]
        if before:
            cand = before[-1]
            gap = text[cand.end() : phrase.start()]
            if (
                len(gap) <= _MAX_AFTER_GAP
                and "\n" not in gap.strip(" ")
                and not _LONG_NUMBER.search(gap)
                and (_AFTER_GLUE.match(gap) or _CJK_AFTER_GLUE.match(gap))
            ):
                shown = (gap.strip() + " " + phrase.group(0)).strip()
                rank = (0 if phrase.group("generic") else 2) + 1
                hits.append(_Hit(cand.group(0), shown, source, rank))
    return hits


def find_code(
    subject: str | None = None, text: str | None = None, html: str | None = None
) -> VerificationCode | None:
    """The one-time code that a code phrase introduces in *subject*, *text* or *html*.

    ``None`` when there is none, or when the mail shows two different codes. See the module
    docstring for the rules.
    """
    hits: list[_Hit] = []
    for source, body in (("subject", subject), ("text", text), ("html", html)):
        if not body:
            continue
        content = html_to_text(body[:_MAX_MARKUP]) if source == "html" else body
        hits.extend(_scan(content[:MAX_SCAN], source))
    if not hits:
        return None
    # Only the surest hits count; two different codes among them is ambiguity, not a choice.
    best = max(h.rank for h in hits)
    hits = [h for h in hits if h.rank == best]
    values = {re.sub(r"[\s\-]", "", h.value).upper() for h in hits}
    if len(values) != 1:
        return None
    first = hits[0]
    return VerificationCode(first.value, first.phrase, first.source)


# ----------------------------------------------------------------------------- magic links

_ACTION_WORDS = (
    # English
    r"verify|verification|confirm|confirmation|activate|activation|reset|password|"
    r"magic|sign[\s_-]?in|signin|log[\s_-]?in|login|authenticate|authorize|invite|"
    r"invitation|accept|onboard|validate|validation|set[\s_-]?up\s+(?:your\s+)?account|"
    r"approve|recover|unlock|"
    # German
    r"best[äa]tig|verifizier|anmeld|einlogg|aktivier|zur[üu]cksetz|einladung|annehmen|"
    r"passwort|kennwort|beitreten|"
    # French
    r"confirmer|v[ée]rifier|connecter|connexion|r[ée]initialiser|activer|accepter|rejoindre|"
    r"mot\s+de\s+passe|"
    # Spanish / Portuguese
    r"confirmar|verificar|iniciar\s+sesi[óo]n|restablecer|activar|aceptar|unirse|contraseña|"
    r"redefinir|ativar|entrar|aceitar|senha|acessar|"
    # Italian
    r"conferma|verifica|accedi|reimposta|attiva|accetta|unisciti|"
    # Dutch
    r"bevestig|verifieer|inloggen|aanmelden|herstel|activeer|accepteer|wachtwoord|"
    # Japanese / Chinese
    r"確認|認証|ログイン|登録|有効化|再設定|参加|验证|驗證|确认|確認|登录|登入|激活|重置|加入|接受"
)
_ACTION = re.compile(r"(?:" + _ACTION_WORDS + r")", re.IGNORECASE)
_URL_ACTION = re.compile(
    r"verif|confirm|activat|reset|password|magic|sign[_-]?in|signin|log[_-]?in|login|"
    r"auth(?!or)|invit|accept|onboard|validat|token|otp|passwordless|callback|recover",
    re.IGNORECASE,
)
_NEVER = re.compile(
    r"unsubscribe|opt[\s_-]?out|abmelden|d[ée]sinscri|d[ée]sabonn|darse\s+de\s+baja|baja|"
    r"cancelar\s+suscrip|descadastr|disiscriv|annulla\s+iscrizione|uitschrijven|afmelden|"
    r"配信停止|退订|取消订阅|preferences|preference|einstellungen|pr[ée]f[ée]rences|"
    r"privacy|datenschutz|confidentialit|privacidad|privacidade|terms|conditions|agb|"
    r"impressum|legal|mentions|help\s*center|support|faq|contact|view\s+(?:it\s+)?(?:in|on)\s+"
    r"(?:your\s+)?browser|view\s+online|web\s+version|im\s+browser|"
    r"dans\s+votre\s+navigateur|en\s+el\s+navegador|report|abuse|"
    r"(?:^|//|\.)(?:facebook|twitter|x|linkedin|instagram|youtube|tiktok|pinterest|github)\.com",
    re.IGNORECASE,
)
_BUTTON_CLASS = re.compile(r"\b(?:button|btn|cta|action)\b", re.IGNORECASE)
_BUTTON_STYLE = re.compile(r"background(?:-color)?\s*:|padding\s*:|border-radius\s*:", re.I)
_TOKENISH = re.compile(r"[A-Za-z0-9_\-.~%]{20,}")


@dataclass
class _Anchor:
    href: str
    attrs: dict[str, str]
    text: list[str] = field(default_factory=list)
    has_image: bool = False
    image_alt: str = ""
    button_parent: bool = False


class _Anchors(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[_Anchor] = []
        self.open: _Anchor | None = None
        self.cells: list[bool] = []  # whether each open td/table/div looks like a button

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag in ("a", "area"):
            href = values.get("href", "").strip()
            self.open = _Anchor(href, values, button_parent=any(self.cells))
            self.anchors.append(self.open)
            if tag == "area":
                self.open.text.append(values.get("alt", ""))
                self.open = None
        elif tag == "img" and self.open is not None:
            self.open.has_image = True
            self.open.image_alt += " " + values.get("alt", "")
        elif tag in ("td", "table", "div", "span", "th"):
            self.cells.append(_looks_like_button(values))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self.open = None
        elif tag in ("td", "table", "div", "span", "th") and self.cells:
            self.cells.pop()

    def handle_data(self, data: str) -> None:
        if self.open is not None:
            self.open.text.append(data)


def _looks_like_button(attrs: dict[str, str]) -> bool:
    return bool(
        _BUTTON_CLASS.search(attrs.get("class", ""))
        or attrs.get("role", "").lower() == "button"
        or _BUTTON_STYLE.search(attrs.get("style", ""))
        or attrs.get("bgcolor")
    )


def _tokenish(url: str) -> bool:
    parts = urlsplit(url)
    values = [v for _, v in parse_qsl(parts.query, keep_blank_values=True)]
    values += [s for s in parts.path.split("/") if s]
    values.append(parts.fragment)
    return any(
        _TOKENISH.fullmatch(v) and sum(c.isdigit() for c in v) >= 2 and not v.isdigit()
        for v in values
    )


def _score(url: str, text: str, button: bool) -> int | None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    if _NEVER.search(text) or _NEVER.search(parts.netloc + parts.path):
        return None
    score = 0
    if _ACTION.search(text):
        score += 4
    where = parts.path + "?" + parts.query + "#" + parts.fragment
    if _URL_ACTION.search(where) or _ACTION.search(re.sub(r"[/_\-.?#=&]+", " ", where)):
        score += 3
    if score == 0:
        return None  # styling or a token alone never makes a link the call to action
    if button:
        score += 2
    if _tokenish(url):
        score += 1
    return score


def find_magic_link(text: str | None = None, html: str | None = None) -> str | None:
    """The link most likely to be the mail's call to action (sign in, verify, confirm, reset,
    accept an invitation), or ``None``. See the module docstring for the rules."""
    best: tuple[int, int, str] | None = None
    order = 0
    if html:
        parser = _Anchors()
        try:
            parser.feed(html[:_MAX_MARKUP])
            parser.close()
        except Exception:  # never let a body break an accessor
            pass
        for anchor in parser.anchors:
            order += 1
            words = " ".join(" ".join(anchor.text).split())
            if anchor.has_image and not words:
                continue  # a logo or a banner
            button = anchor.button_parent or _looks_like_button(anchor.attrs)
            score = _score(anchor.href, words + " " + anchor.attrs.get("title", ""), button)
            if score is not None and (best is None or score > best[0]):
                best = (score, order, anchor.href)
    if text:
        previous = ""
        for line in text[:_MAX_MARKUP].splitlines():
            for match in re.finditer(r"https?://[^\s<>\"'`{}|\\^\[\]]+", line):
                order += 1
                url = match.group(0).rstrip(".,;:!?)]}'\"")
                # the words before the URL on its line ("Reset: https://..."), or the line
                # before when the URL stands alone, stand for its anchor text
                words = line[: match.start()].strip() or previous
                score = _score(url, words, button=False)
                if score is not None and (best is None or score > best[0]):
                    best = (score, order, url)
            if line.strip():
                previous = line.strip()
    return None if best is None else best[2]
