"""What a running search tells whoever shows its progress, kept apart from the search so that
the command line can show it without importing Optuna and MLX before it needs them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuner.results import Run, TrialSummary
    from tuner.space import Sample


@dataclass
class Progress:
    """Where the study stands after each trial of this run: ``finished`` counts every worker's
    complete and pruned trials, ``running`` their trials in flight, and ``best`` is the study's
    best so far."""

    total: int
    finished: int = 0
    running: int = 0
    best: TrialSummary | None = None
    failures_in_a_row: int = 0
    last_failure: str | None = None

    @property
    def claimed(self) -> int:
        """The trials that count, or will once the ones in flight end."""
        return self.finished + self.running


class Watcher:
    """What a search tells whoever shows its progress. These do nothing; a display overrides
    them. They run in the search's thread, between the steps of its trials."""

    def started(self, study: str, *, new: bool, twins: Sequence[str]) -> None:
        """The study is ready; ``twins`` are older studies with its seed and settings."""

    def workers_started(self, count: int) -> None:
        """Just before ``started``: ``count`` worker processes of ``--jobs`` joined this one."""

    def workers_ended(
        self, failures: Sequence[str], cut_short: Sequence[tuple[int, str | None]]
    ) -> None:
        """They have ended: a line for each that failed, and the trials (with why) that they
        left interrupted when the search was stopped."""

    def trial_started(self, number: int, sample: Sample, steps: int, members: int = 1) -> None:
        """Trial ``number`` has drawn its settings and starts training for ``steps``, with
        ``members - 1`` more trials of its population when ``members`` is above 1."""

    def building(self, number: int) -> None:
        """Its step is new to this process: MLX builds its kernels, seconds on the CPU."""

    def trial_step(self, number: int, done: int) -> None:
        """Trial ``number`` has trained ``done`` steps."""

    def trial_ended(self, trial: TrialSummary, progress: Progress) -> None:
        """The trial's end is stored; ``trial`` is as Optuna knows it, with tuner's outcome."""

    def confirming(self, trial: TrialSummary, index: int, seeds: int, steps: int) -> None:
        """Trial ``trial``'s configuration trains again, with seed ``index`` of ``seeds``."""

    def confirmed(self, trial: TrialSummary, index: int, seeds: int, run: Run) -> None:
        """That confirmation run is stored."""
