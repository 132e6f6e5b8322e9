"""The samplers and pruners ``--sampler`` and ``--pruner`` name, and the per-trial seeding that
makes a study replay trial by trial however its trials are spread over workers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna

COMPLETE = optuna.trial.TrialState.COMPLETE


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler ``--sampler`` names, reseeded for each trial from ``seed`` and its number."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if name == "qmc":
        # Its sequence is seeded once and indexed by the trials in storage: already per trial.
        return optuna.samplers.QMCSampler(seed=seed)
    return SeededPerTrial(lambda trial_seed, apart: _sampler(name, trial_seed, apart), seed)


def _sampler(name: str, seed: int, apart: bool) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        # Optuna's default: the parameters every trial has (optimizer, schedule, lr, warmup)
        # modelled jointly, and each optimizer's own on its own trials. Modelling each group of
        # parameters jointly too (group=True) cost two to three times as much a trial
        # (benchmarks/sampler_cost.py). constant_liar, Optuna 5's default, reads every running
        # trial from storage for each group; workers never draw alike without it, since each
        # trial's sampler has a seed of its own. A population's members, drawn one after
        # another from the same trials, would all land near the best of TPE's 24 candidates:
        # each is drawn instead from its density of the good trials, as its one candidate.
        one = {"n_ei_candidates": 1} if apart else {}
        return optuna.samplers.TPESampler(seed=seed, constant_liar=False, **one)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        # CMA-ES models only the parameters every trial shares; the rest are sampled at random.
        return optuna.samplers.CmaEsSampler(
            seed=seed, independent_sampler=optuna.samplers.RandomSampler(seed=seed)
        )
    return optuna.samplers.GPSampler(seed=seed)


class SeededPerTrial(optuna.samplers.BaseSampler):
    """A sampler made anew for each trial with a seed from the study's seed and the trial's
    number. A study then replays trial by trial, however often it was stopped and resumed,
    and workers that share it, each holding its own sampler, never draw the same settings."""

    def __init__(self, make: Callable[[int, bool], optuna.samplers.BaseSampler], seed: int) -> None:
        self._make = make
        self._seed = seed
        # Set while a population's members are asked: ``make``'s second argument, which has
        # the samplers that can draw each member on its own rather than all at their best
        # guess.
        self.apart = False
        # Lives as long as the study and only infers the search space, which draws nothing:
        # Optuna's samplers find it incrementally, from the trials finished since they last
        # looked, while a sampler made anew would look at every trial again, each trial.
        self._spaces = make(seed, False)
        # Each trial's own, from its ask to its tell, by number: a population's trials are all
        # asked before any of them samples, so that the claim lock is let go before sampling.
        self._samplers: dict[int, optuna.samplers.BaseSampler] = {}

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        sampler = self._make(trial_seed(self._seed, trial.number), self.apart)
        self._samplers[trial.number] = sampler
        sampler.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, optuna.distributions.BaseDistribution]:
        return self._spaces.infer_relative_search_space(study, trial)

    def sample_relative(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        search_space: dict[str, optuna.distributions.BaseDistribution],
    ) -> dict[str, Any]:
        return self._samplers[trial.number].sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> Any:
        sampler = self._samplers[trial.number]
        return sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        state: optuna.trial.TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._samplers.pop(trial.number).after_trial(study, trial, state, values)


def make_pruner(name: str, steps: int, eval_every: int) -> optuna.pruners.BasePruner:
    """The pruner ``--pruner`` names, measured in training steps."""
    if name == "quartile":
        # Calibrated by benchmarks/pruning.py (issue 15). Against the complete trials alone,
        # as Optuna's pruners judge, the bar rises as the weaker trials are stopped, until nearly
        # every trial is (471 of 500): pruned trials count too. At the first eval, up to 45 % of
        # the trials that finished in the best quarter were behind the median, warmups and low
        # peak rates among them, and up to 8 % among the worst quarter: only that is stopped.
        return PercentileOfFinished(
            75.0, n_startup_trials=5, n_warmup_steps=eval_every, n_min_trials=5
        )
    if name == "median":
        return MedianAsTrialBegan(n_startup_trials=5, n_warmup_steps=eval_every)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=eval_every, max_resource=steps)
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=eval_every)
    return optuna.pruners.NopPruner()


class PercentileOfFinished(optuna.pruners.PercentilePruner):
    """Optuna's percentile pruner, judging a trial against every finished trial that reported
    at its step, pruned ones too, as the study stood when the trial began (see
    :class:`MedianAsTrialBegan`). ``n_startup_trials`` counts finished trials, and
    ``n_min_trials`` the trials that reported at the step judged.
    """

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return super().prune(_AsTrialBegan(study, pruned_too=True), trial)  # type: ignore[arg-type]


class MedianAsTrialBegan(optuna.pruners.MedianPruner):
    """Optuna's median pruner, judging a trial against the study as it stood when the trial
    began, which is what its sampler read.

    Optuna's pruner reads every complete trial from storage at each ``should_prune``: on a
    database, a read costs as much as a short trial's training. The study as the trial began
    lacks only the trials that other workers completed since, which the next trial sees.
    """

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return super().prune(_AsTrialBegan(study), trial)  # type: ignore[arg-type]


class _AsTrialBegan:
    """A study whose ``get_trials`` reads the trials that Optuna's own per-trial cache holds:
    the study as the trial in flight began, read once then (by its sampler, or by the first
    call here) and dropped when the trial is told."""

    def __init__(self, study: optuna.Study, *, pruned_too: bool = False) -> None:
        self._study = study
        self._pruned_too = pruned_too

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def get_trials(
        self, deepcopy: bool = True, states: Sequence[optuna.trial.TrialState] | None = None
    ) -> list[optuna.trial.FrozenTrial]:
        if self._pruned_too and states is not None and COMPLETE in states:
            states = (*states, optuna.trial.TrialState.PRUNED)
        # No public twin: Study.get_trials reads storage anew; Optuna's samplers read this
        # cache through the same private method.
        return self._study._get_trials(deepcopy, states, use_cache=True)


def trial_seed(study_seed: int, number: int) -> int:
    """A seed for trial ``number`` that depends on nothing but the study's seed."""
    return int(np.random.SeedSequence([study_seed, number]).generate_state(1)[0])
