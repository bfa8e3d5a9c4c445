"""Which trigrams of a needle ``PostgresStore`` looks up (``store/_trigrams.py``): the choice
alone, without a database. That the answers stay exact whatever is chosen is checked on a
real PostgreSQL in tests/test_postgres_store.py."""

from __future__ import annotations

from smtpmock.store._trigrams import TrigramShares, rarest, windows


def test_windows_are_the_three_letter_runs_of_ascii_letters_and_digits() -> None:
    assert windows("user17@example.com") == {
        *("use", "ser", "er1", "r17"),
        *("exa", "xam", "amp", "mpl", "ple"),
        "com",
    }
    assert windows("a.b-cd") == set()  # no run of three
    assert windows("caf\u00e9 ab") == {"caf"}  # non-ASCII letters end a run


def test_shares_count_each_sampled_row_once_per_column() -> None:
    rows = [("bob@example.com", "hello hello"), ("carol@example.com", "other")]
    shares = TrigramShares(("to_text", "subject"), rows)
    assert shares.size == 2
    assert shares.share("to_text", "exa") == 1.0
    assert shares.share("to_text", "bob") == 0.5
    assert shares.share("subject", "hel") == 0.5  # twice in one row: one row
    assert shares.share("subject", "exa") == 0.0  # per column
    assert TrigramShares(("to_text",), []).share("to_text", "exa") == 0.0


def test_the_rarest_are_taken_until_the_estimate_is_small() -> None:
    share = {"use": 1.0, "ser": 1.0, "er1": 0.11, "r17": 0.011, "exa": 1.0, "com": 1.0}
    # r17 alone leaves 1.1% of the messages to check; with er1, 0.12%: enough.
    assert rarest(share) == ["r17", "er1"]
    assert rarest(share, enough=0.05) == ["r17"]


def test_common_trigrams_are_left_to_the_check_of_the_needle() -> None:
    assert rarest({"exa": 0.9, "xam": 0.95, "amp": 1.0}) == ["exa"]  # one is always taken
    assert rarest({"abc": 0.2, "bcd": 0.6, "cde": 0.7}) == ["abc"]


def test_at_most_three_are_taken_and_unseen_ones_first() -> None:
    share = dict.fromkeys(("aaa", "bbb", "ccc", "ddd", "eee"), 0.3)
    assert len(rarest(share)) == 3
    assert rarest({"aaa": 0.3, "zzz": 0.0, "bbb": 0.2}) == ["zzz"]  # unseen: under 1/sample


def test_a_needle_of_one_window_is_looked_up_whole() -> None:
    assert rarest({"abc": 0.5}) == []
    assert rarest({}) == []
