"""The progress bar of :func:`tuner.search`: ``tqdm.auto`` draws it as a widget in a notebook
that has ipywidgets, as a line of text on stderr elsewhere. It counts the finished trials the
study should hold, as ``--trials`` does, then the confirmation runs; a failed trial is said on
a line of its own, since the study goes on without it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from tuner.results import Outcome
from tuner.watcher import Progress, Watcher

if TYPE_CHECKING:
    from tuner.results import Run, TrialSummary


class ProgressBar(Watcher):
    """``trials`` finished trials to reach, the best value of ``metric`` so far, then
    ``confirm_runs`` runs (``K x S``)."""

    def __init__(self, trials: int, metric: str, confirm_runs: int) -> None:
        self.trials = trials
        self.metric = metric
        self.confirm_runs = confirm_runs
        self.bar: Any = None
        self.confirming_now = False

    def started(self, study: str, *, new: bool, twins: Sequence[str]) -> None:
        self.bar = tqdm(total=self.trials, desc=study, unit="trial", dynamic_ncols=True)

    def trial_ended(self, trial: TrialSummary, progress: Progress) -> None:
        if trial.outcome == Outcome.FAILED:
            tqdm.write(f"trial {trial.number} failed: {trial.reason or 'no reason given'}")
        # Every worker's trials count, so it may step by more than one; a resumed study
        # starts where it stood.
        self.bar.n = min(progress.finished, self.trials)
        best = progress.best
        if best is not None and best.value is not None and math.isfinite(best.value):
            said = f"best {self.metric} {best.value:.4g} (trial {best.number})"
            self.bar.set_postfix_str(said, refresh=False)
        self.bar.refresh()

    def confirming(self, trial: TrialSummary, index: int, seeds: int, steps: int) -> None:
        if not self.confirming_now:
            self.confirming_now = True
            self.close()
            self.bar = tqdm(total=self.confirm_runs, desc="confirming", unit="run")
        self.bar.set_postfix_str(f"trial {trial.number}, seed {index + 1}/{seeds}")

    def confirmed(self, trial: TrialSummary, index: int, seeds: int, run: Run) -> None:
        if run.outcome != Outcome.COMPLETE:
            tqdm.write(
                f"confirmation of trial {trial.number}, seed {index + 1}/{seeds}: "
                f"{run.outcome} ({run.reason or 'no reason given'})"
            )
        self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
