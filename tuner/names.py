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
