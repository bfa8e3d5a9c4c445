"""Deterministic 10 KiB messages whose words are known, so every search has a known answer.

Message *i* (numbered from 0) is::

    From: Shop <shop@example.com>
    To: <user{i}@example.com>
    Subject: {subject word i % 500} order {i}
    Message-ID: <{i}.search@example.com>

    reference zqref{i}x
    ... LINES_PER_MESSAGE lines of pseudo-words, a window of one long shared text ...
    ---- padding to exactly MESSAGE_SIZE bytes ----

The shared text is wrapped once, at word boundaries, into lines of at most 76 characters; a
message's body is a run of whole lines starting at line ``(i * 7919) % (lines - window)``. No
word is ever split by a line break, so the expected answer to "which messages contain this
word as a substring" can be worked out from the line numbers alone, without reading 100k
bodies: :meth:`Corpus.expected_free` (a bare word: smtpmock's free-text search, a
case-insensitive **substring** search over the addresses, the subject and the body) and
:meth:`Corpus.expected_subject`. ``python benchmarks/_corpus.py`` checks those answers against
a brute-force scan of the generated messages.
"""

from __future__ import annotations

import argparse
import bisect
import random
import re
import sys
from collections.abc import Callable

MESSAGE_SIZE = 10 * 1024
SUBJECT_WORDS = 500
LINE_WIDTH = 76
TEXT_WORDS = 300_000
STRIDE = 7919  # a prime: consecutive messages start far apart in the text
SYLLABLES = [
    "ka", "lo", "mi", "nu", "pe", "ri", "sa", "to", "vu", "ze",
    "bra", "cli", "dro", "fen", "gul", "hap", "jor", "kes", "lim", "mor",
]  # fmt: skip
_LETTERS = re.compile(r"[a-z]+")
_PHRASE = re.compile(r"[a-z]+( [a-z]+)*")


def vocabulary(size: int, seed: int = 7) -> list[str]:
    """*size* distinct pronounceable pseudo-words (deterministic)."""
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def head(i: int, subject_word: str) -> bytes:
    """The header block and first body line of message *i*."""
    return (
        f"From: Shop <shop@example.com>\r\nTo: <user{i}@example.com>\r\n"
        f"Subject: {subject_word} order {i}\r\nMessage-ID: <{i}.search@example.com>\r\n\r\n"
        f"reference zqref{i}x\r\n"
    ).encode()


# The runs of letters (and single spaces) every message has in the fields free-text search
# reads (the From and To values, the envelope, the Subject value, the body), whatever its
# number: a needle of letters and spaces inside one of them matches every message.
_ALWAYS = ("shop", "example", "com", "user", "order", "reference zqref", "x")


class Corpus:
    """Deterministic 10 KiB messages whose words are known, so queries have known answers."""

    def __init__(self, seed: int = 11) -> None:
        rng = random.Random(seed)
        self.words = vocabulary(20_000)
        self.subject_words = self.words[:SUBJECT_WORDS]
        self.body_words = self.words[SUBJECT_WORDS:]
        lines: list[str] = []
        line: list[str] = []
        width = -1
        for word in (rng.choice(self.body_words) for _ in range(TEXT_WORDS)):
            if width + 1 + len(word) > LINE_WIDTH:
                lines.append(" ".join(line))
                line, width = [], -1
            line.append(word)
            width += 1 + len(word)
        lines.append(" ".join(line))
        self.lines = [x.encode() + b"\r\n" for x in lines]
        # As many whole lines as fit in every message, with the longest header (the biggest
        # message number a run can reach has 7 digits); the rest is padding.
        room = MESSAGE_SIZE - len(head(9_999_999, max(self.subject_words, key=len)))
        lengths = [len(x) for x in self.lines]
        window = room // max(lengths)
        while True:
            total = sum(lengths[:window])
            best = total
            for k in range(len(lengths) - window):  # the longest run of *window* lines
                total += lengths[k + window] - lengths[k]
                best = max(best, total)
            if best + len(b"-\r\n") > room:
                window -= 1
                break
            window += 1
        self.window = window
        self.starts = len(self.lines) - window
        self._line_text = [x.decode().lower() for x in self.lines]
        self._containing: dict[str, list[int]] = {}
        self._counts_for = -1
        self._cumulative: list[int] = []

    # ------------------------------------------------------------------ generation

    def start(self, i: int) -> int:
        """The first line of the shared text in message *i*'s body."""
        return (i * STRIDE) % self.starts

    def raw(self, i: int) -> bytes:
        """Message *i*, exactly :data:`MESSAGE_SIZE` bytes, CRLF line ends."""
        first = self.start(i)
        top = head(i, self.subject_words[i % SUBJECT_WORDS])
        body = b"".join(self.lines[first : first + self.window])
        pad = MESSAGE_SIZE - len(top) - len(body)
        lines = []
        while pad > 0:  # "-" lines, never a word; each at most 76 characters
            n = min(pad, LINE_WIDTH + 2)
            if pad - n in (1, 2):  # a line needs its CRLF: never leave 1 or 2 bytes over
                n -= 3
            lines.append(b"-" * (n - 2) + b"\r\n")
            pad -= n
        return top + body + b"".join(lines)

    def envelope(self, i: int) -> tuple[str, list[str]]:
        return "shop@example.com", [f"user{i}@example.com"]

    def factory(self) -> Callable[[int], tuple[str, list[str], bytes]]:
        """``factory(i) -> (mail_from, rcpt_tos, data)``: a ``loadgen.MessageFactory``."""

        def make(i: int) -> tuple[str, list[str], bytes]:
            mail_from, rcpt_tos = self.envelope(i)
            return mail_from, rcpt_tos, self.raw(i)

        return make

    # ------------------------------------------------------------------ expected answers

    def expected_recipient(self, i: int, n: int) -> int:
        """Matches of ``to:user{i}@example.com`` among messages 0..n-1."""
        return 1 if i < n else 0

    def expected_rare(self, i: int, n: int) -> int:
        """Matches of the bare word ``zqref{i}x`` among messages 0..n-1."""
        return 1 if i < n else 0

    def _subject_numbers(self, word: str) -> list[int]:
        """The j (0..499) whose subject ``{subject_words[j]} order {i}`` contains *word*
        (letters, or words of letters with single spaces between: never the digits)."""
        word = word.lower()
        if _PHRASE.fullmatch(word) is None:
            raise ValueError(
                f"expected counts are worked out for letters and single spaces: {word!r}"
            )
        return [j for j, w in enumerate(self.subject_words) if word in f"{w} order "]

    @staticmethod
    def _with_remainder(js: list[int], n: int) -> int:
        """How many i in 0..n-1 have ``i % 500`` in *js*."""
        full, rest = divmod(n, SUBJECT_WORDS)
        return sum(full + (1 if j < rest else 0) for j in js)

    def expected_subject(self, word: str, n: int) -> int:
        """Matches of ``subject:{word}`` among messages 0..n-1 (substring of the subject)."""
        return self._with_remainder(self._subject_numbers(word), n)

    def _lines_containing(self, word: str) -> list[int]:
        found = self._containing.get(word)
        if found is None:
            found = [k for k, text in enumerate(self._line_text) if word in text]
            self._containing[word] = found
        return found

    def _start_counts(self, n: int) -> list[int]:
        """``c[k]`` = how many of messages 0..n-1 start their body at a line below *k*."""
        if self._counts_for != n:
            per_start = [0] * (self.starts + 1)
            for i in range(n):
                per_start[self.start(i) + 1] += 1
            for k in range(1, len(per_start)):
                per_start[k] += per_start[k - 1]
            self._cumulative, self._counts_for = per_start, n
        return self._cumulative

    def _start_ranges(self, word: str) -> list[tuple[int, int]]:
        """Disjoint, sorted ``[lo, hi)`` ranges of body start lines whose window holds *word*."""
        ranges: list[tuple[int, int]] = []
        for line in self._lines_containing(word):
            lo, hi = max(0, line - self.window + 1), min(self.starts, line + 1)
            if lo >= hi:
                continue
            if ranges and lo <= ranges[-1][1]:
                ranges[-1] = (ranges[-1][0], max(ranges[-1][1], hi))
            else:
                ranges.append((lo, hi))
        return ranges

    def expected_free(self, word: str, n: int) -> int:
        """Matches of the bare (free-text) *word* among messages 0..n-1.

        Free text is the sender, the recipients, the subject and the body; *word* matches a
        message when it is a substring of any of them. *word* is letters, or a phrase of such
        words with single spaces between (``"jorto saze"``): never a digit or a line break,
        so it never spans a message number or two lines.
        """
        word = word.lower()
        if any(word in run for run in _ALWAYS):
            return n
        ranges = self._start_ranges(word)
        cumulative = self._start_counts(n)
        in_body = sum(cumulative[hi] - cumulative[lo] for lo, hi in ranges)
        # Subject matches that the body did not already count.
        lows = [lo for lo, _ in ranges]
        extra = 0
        for j in self._subject_numbers(word):
            for i in range(j, n, SUBJECT_WORDS):
                start = self.start(i)
                k = bisect.bisect_right(lows, start) - 1
                if not (k >= 0 and start < ranges[k][1]):
                    extra += 1
        return in_body + extra


def brute_force_free(raw: bytes, word: str) -> bool:
    """*word* in the free text of *raw*, read straight from the bytes (the check of the above)."""
    top, _, body = raw.decode().lower().partition("\r\n\r\n")
    fields = [
        value
        for name, _, value in (h.partition(":") for h in top.split("\r\n"))
        if name in ("from", "to", "subject")
    ]
    return word in "\n".join([*fields, *body.split("\r\n")])


def main() -> None:
    parser = argparse.ArgumentParser(description="check the corpus's expected match counts")
    parser.add_argument("--count", type=int, default=3000, help="messages to scan")
    parser.add_argument("--words", type=int, default=60, help="random body words to check")
    args = parser.parse_args()
    corpus = Corpus()
    rng = random.Random(1)
    n = args.count
    raws = [corpus.raw(i) for i in range(n)]
    sizes = {len(r) for r in raws}
    assert sizes == {MESSAGE_SIZE}, f"message sizes {sorted(sizes)[:5]}"
    words = [rng.choice(corpus.body_words) for _ in range(args.words)]
    words += [w[1:4] for w in words[:10]] + ["ka", "lo", "order", "example", "zqref"]
    # Phrases across two words of a line (and across the fixed fields' runs).
    for k in rng.sample(range(len(corpus.lines)), 10):
        first, second = corpus.lines[k].decode().split()[:2]
        words.append(f"{first[-4:]} {second[:3]}")
    words += ["ce zqref", "order reference", "example com", "shop shop"]
    bad = 0
    for word in words:
        want = sum(brute_force_free(r, word) for r in raws)
        got = corpus.expected_free(word, n)
        if want != got:
            bad += 1
            print(f"free {word!r}: brute force {want}, corpus {got}", file=sys.stderr)
    for word in [*corpus.subject_words[:20], "ka", "ord"]:
        want = sum(word in r.decode().lower().split("\r\n")[2][len("subject:") :] for r in raws)
        got = corpus.expected_subject(word, n)
        if want != got:
            bad += 1
            print(f"subject {word!r}: brute force {want}, corpus {got}", file=sys.stderr)
    print(
        f"{len(words) + 22} words and phrases checked over {n} messages, {bad} wrong; "
        f"{len(corpus.lines)} lines, {corpus.window} per message, {corpus.starts} distinct bodies"
    )
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
