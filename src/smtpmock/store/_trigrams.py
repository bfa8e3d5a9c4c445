"""Which trigrams of a substring needle ``PostgresStore`` has ``pg_trgm`` look up.

``pg_trgm`` answers ``column LIKE '%needle%'`` by reading the GIN posting list of every
trigram of the needle and intersecting them. An address is mostly trigrams that every message
holds: of ``user1717@example.com``'s eighteen, ``exa``, ``com``, ``use`` and a dozen more are
in all 100k recipients of a 100k-message store, and reading those lists is 10 ms of the
search, where the two trigrams ``171`` and ``717`` find the one message in under 1 ms.

So the store keeps a small sample of each text column (:class:`TrigramShares`: which share of
the sampled messages holds each trigram) and looks up only the rarest trigrams of a needle
(:func:`rarest`), each as a ``LIKE '%abc%'`` of its own; the needle itself is then checked on
the rows found with ``strpos`` (exact, and not indexable, so the planner does not add its
trigrams back). The sample only steers the choice: any trigram of the needle is implied by
the needle, so the answer is exact whatever the sample says.

Only 3-character runs of ASCII letters and digits are candidates: ``pg_trgm`` treats those as
word characters under every locale, so ``LIKE '%abc%'`` looks up exactly the trigram ``abc``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["TrigramShares", "rarest", "windows"]

_RUN = re.compile(r"[a-z0-9]{3,}")

# A trigram held by this share of the messages or more narrows too little to be worth its
# posting list (read whole), once one trigram is looked up already.
_COMMON = 0.5


def windows(text: str) -> set[str]:
    """The 3-character windows of *text*'s runs of (lower-case) ASCII letters and digits."""
    return {run[i : i + 3] for run in _RUN.findall(text) for i in range(len(run) - 2)}


class TrigramShares:
    """For each sampled text column, the share of the sampled rows holding each window."""

    def __init__(self, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
        counts: dict[str, Counter[str]] = {column: Counter() for column in columns}
        self.size = 0
        for row in rows:
            self.size += 1
            for column, text in zip(columns, row, strict=True):
                counts[column].update(windows(str(text).lower()))
        self._counts: Mapping[str, Counter[str]] = counts

    def share(self, column: str, trigram: str) -> float:
        """The share of the sampled rows whose *column* holds *trigram* (0.0 when unseen)."""
        if not self.size:
            return 0.0
        return self._counts.get(column, Counter())[trigram] / self.size


def rarest(share: Mapping[str, float], *, most: int = 3, enough: float = 0.01) -> list[str]:
    """The trigrams of a needle to look up, rarest first (empty: look the needle up whole).

    *share* maps each of the needle's :func:`windows` to the share of messages estimated to
    hold it. The rarest is taken; then the next rarest while the share estimated to hold all
    those taken (their product: as if independent) is over *enough*, up to *most*, skipping
    the common ones (held by half the messages or more). A needle with fewer than two
    windows is left to ``pg_trgm`` whole: there is nothing to leave out."""
    if len(share) < 2:
        return []
    ordered = sorted(share, key=lambda w: (share[w], w))
    chosen = [ordered[0]]
    estimate = share[ordered[0]]
    for window in ordered[1:]:
        if len(chosen) >= most or estimate <= enough or share[window] >= _COMMON:
            break
        chosen.append(window)
        estimate *= share[window]
    return chosen
