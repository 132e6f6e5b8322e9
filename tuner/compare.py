"""How the optimizers, or the schedules, of a study compare, and how its confirmed
configurations do: each group's statistics, and a sentence that says which leads and whether
its lead is more than chance.

This is arithmetic on values already read, apart from the SQL of :mod:`tuner.db.reads` that
reads them, so that the verdict, which people act on, can be tested on groups made up to sit on
either side of every rule.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from tuner.results import (
    Comparison,
    Confirmation,
    Confirmed,
    Counts,
    GroupStats,
    Outcome,
)

# (name, number, outcome, value) of one trial, grouped by its optimizer's or schedule's name.
Row = tuple[Any, ...]

GROUPINGS = ("optimizer", "schedule")
# Fewer complete values than this say nothing about how widely a group's trials spread.
MIN_FOR_SPREAD = 4
# A lead is clear when chance alone would give one as large less often than this.
SIGNIFICANCE = 0.05


def group_stats(rows: Sequence[Row], bests: Sequence[Row]) -> list[GroupStats]:
    """One GroupStats for each name among ``rows``, the ``(name, number, outcome, value)`` of
    every trial. ``bests`` holds such a row for each group's best complete trial, the best group
    first, as the SQL of :func:`tuner.db.reads.group_bests` ranks them; groups without a
    complete trial come last, by name. The median and spread are of complete trials' values
    only: a pruned or diverged trial's value was measured before the end."""
    by_name: dict[str | None, list[Row]] = {}
    for row in rows:
        by_name.setdefault(row[0], []).append(row)
    best_of = {best[0]: best for best in bests}
    incomplete = sorted((name for name in by_name if name not in best_of), key=lambda n: n or "")
    groups = []
    for name in [*best_of, *incomplete]:
        trials = by_name[name]
        values = [
            value
            for _, _, outcome, value in trials
            if outcome == Outcome.COMPLETE and value is not None and math.isfinite(value)
        ]
        _, number, outcome, value = best_of.get(name, (name, None, None, None))
        groups.append(
            GroupStats(
                name=name,
                counts=Counts.of(outcome for _, _, outcome, _ in trials),
                best_value=value,
                best_trial=number,
                best_outcome=None if outcome is None else Outcome(outcome),
                median=statistics.median(values) if values else None,
                iqr=_iqr(values),
            )
        )
    return groups


def _iqr(values: list[float]) -> float | None:
    if len(values) < MIN_FOR_SPREAD:
        return None
    low, _, high = statistics.quantiles(values, n=4, method="inclusive")
    return high - low


def judge(study: str, by: str, metric: str, direction: str, groups: list[GroupStats]) -> Comparison:
    """The comparison of ``groups``, ranked as :func:`group_stats` ranks them, with its verdict
    in words.

    The lead counts as clear when the gap between the two best groups' best values exceeds the
    larger interquartile range of their complete values: when the leader's best is better than
    the trial-to-trial variation of either group explains.
    """
    ranked = [g for g in groups if g.best_value is not None and math.isfinite(g.best_value)]
    leader = ranked[0] if ranked else None
    runner_up = ranked[1] if len(ranked) > 1 else None
    gap = spread = clear = None
    if leader is None:
        verdict = "No trial has completed with a value yet: nothing to compare."
    elif runner_up is None:
        verdict = (
            f"Only {by} {leader.name} has complete trials with a value: "
            "there is nothing to compare it with."
        )
    elif leader.best_value == runner_up.best_value:
        gap, clear = 0.0, False
        verdict = (
            f"{by.capitalize()} {leader.name} and {runner_up.name} tie for the best {metric}, "
            f"{_short(leader.best_value)}: nothing separates them yet."
        )
    else:
        gap = abs(leader.best_value - runner_up.best_value)
        spreads = [g.iqr for g in (leader, runner_up) if g.iqr is not None]
        spread = max(spreads) if spreads else None
        verdict = (
            f"{by.capitalize()} {leader.name} leads: its best {metric} {_short(leader.best_value)} "
            f"(trial {leader.best_trial}) is {_short(gap)} better than {runner_up.name}'s "
            f"{_short(runner_up.best_value)}"
        )
        if spread is None:
            verdict += (
                f"; too few complete trials to measure the spread within groups "
                f"({MIN_FOR_SPREAD} a group are needed)."
            )
        else:
            clear = gap > spread
            verdict += (
                f", {'more' if clear else 'no more'} than the spread within groups "
                f"(interquartile range up to {_short(spread)}): "
                + ("the lead is clear." if clear else "the lead may be chance; run more trials.")
            )
    return Comparison(
        study=study,
        by=by,
        metric=metric,
        direction=direction,
        groups=groups,
        leader=None if leader is None else leader.name,
        gap=gap,
        spread=spread,
        clear=clear,
        verdict=verdict,
    )


def judge_confirmed(
    study: str, metric: str, direction: str, configs: Sequence[Confirmed]
) -> Confirmation:
    """The confirmed ``configs`` ranked by their mean value, with the verdict on the winner's
    lead: Welch's t-test of the two best configurations' complete values, which assumes
    neither equal variances nor more than two runs each."""
    sign = -1.0 if direction == "maximize" else 1.0
    ranked = sorted(
        configs,
        key=lambda c: (c.mean is None, sign * c.mean if c.mean is not None else 0.0),
    )
    winner = ranked[0] if ranked and ranked[0].mean is not None else None
    runner_up = ranked[1] if len(ranked) > 1 and ranked[1].mean is not None else None
    p_value = clear = None
    if not ranked:
        verdict = f"No configuration of study {study} has been confirmed yet."
    elif winner is None:
        verdict = "No confirmation run completed: there is nothing to rank."
    elif runner_up is None:
        verdict = (
            f"Only {_config(winner)} completed its confirmation runs: {_stats(winner, metric)}; "
            "there is nothing to compare it with."
        )
    else:
        verdict = (
            f"{_config(winner)} leads: {_stats(winner, metric)}, against "
            f"{_config(runner_up)}'s {_stats(runner_up, metric, named=False)}"
        )
        if min(len(winner.values), len(runner_up.values)) < 2:
            verdict += "; too few complete runs to test the lead (2 a configuration are needed)."
        else:
            p_value = _welch(winner.values, runner_up.values)
            clear = p_value < SIGNIFICANCE
            verdict += f"; Welch's t-test p = {p_value:.2g}: " + (
                "the lead is larger than the seed-to-seed noise."
                if clear
                else "the lead is within the seed-to-seed noise; confirm with more seeds."
            )
    return Confirmation(
        study=study,
        metric=metric,
        direction=direction,
        configs=ranked,
        p_value=p_value,
        clear=clear,
        verdict=verdict,
    )


def _welch(a: list[float], b: list[float]) -> float:
    """Welch's two-sided p-value that ``a`` and ``b`` have the same mean."""
    # Here for start-up time: scipy takes a second to import.
    from scipy import stats

    if statistics.stdev(a) == 0 and statistics.stdev(b) == 0:
        # Runs that do not vary with the seed: any difference is real, and none is chance.
        return 0.0 if statistics.fmean(a) != statistics.fmean(b) else 1.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def _config(config: Confirmed) -> str:
    return f"{config.trial.optimizer}+{config.trial.schedule} (trial {config.trial.number})"


def _stats(config: Confirmed, metric: str, *, named: bool = True) -> str:
    assert config.mean is not None
    spread = f" ± {_short(config.std)}" if config.std is not None else ""
    runs = len(config.values)
    text = f"{_short(config.mean)}{spread} over {runs} seed{'s' * (runs != 1)}"
    return f"mean {metric} {text}" if named else text


def _short(value: float) -> str:
    return f"{value:.4g}"
