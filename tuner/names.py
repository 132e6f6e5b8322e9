"""The names tuner gives new studies: readable, and new to the storage."""

from __future__ import annotations

import random
from collections.abc import Sequence

WORDS = (
    "amber azure brisk calm crisp dawn eager fern gold hazel ivory jade keen lilac "
    "mossy noble ocean pine quiet rapid sage swift tidy umber vivid warm zesty"
).split()
ANIMALS = (
    "otter falcon heron lynx marten newt owl panda quail raven seal tapir viper wren yak "
    "badger crane dingo egret finch gecko ibis koala lemur mole"
).split()


def new_study_name(task: str, taken: Sequence[str]) -> str:
    """A readable name such as ``digits-brisk-otter`` that no study in storage has yet."""
    rng = random.Random()
    attempt = 0
    while True:
        # Numbered once most of the word pairs are taken, so that the search always ends.
        suffix = f"-{attempt}" if attempt >= len(WORDS) * len(ANIMALS) else ""
        name = f"{task}-{rng.choice(WORDS)}-{rng.choice(ANIMALS)}{suffix}"
        if name not in taken:
            return name
        attempt += 1


# A name shorter than this is never taken for a typo: one edit of "a" is any other letter.
SHORT_NAME = 4
# A name this long or longer is taken for a typo of one two edits away, as tuner's own names
# (task-word-animal) are: "lemon" for "lemur" is two.
LONG_NAME = 12


def typo_of(typed: str, known: Sequence[str]) -> str | None:
    """The name of ``known`` that ``typed`` most likely misspells: one edit away (a character
    added, dropped, changed, or two neighbours swapped), two for a long name; None when none
    is, or when the names differ only in their digits, as a numbered series does; None for a
    name too short to tell."""
    if len(typed) < SHORT_NAME:
        return None
    reach = 2 if len(typed) >= LONG_NAME else 1
    near = [(edits(typed, name), name) for name in known if name != typed]
    near = [(n, name) for n, name in near if n <= reach and not _digits_apart(typed, name)]
    return min(near)[1] if near else None


def edits(a: str, b: str) -> int:
    """The edits that turn ``a`` into ``b``: characters added, dropped, changed, and
    neighbours swapped (the optimal string alignment distance)."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def _digits_apart(a: str, b: str) -> bool:
    def letters(name: str) -> str:
        return "".join(c for c in name if not c.isdigit())

    return a != b and letters(a) == letters(b)
