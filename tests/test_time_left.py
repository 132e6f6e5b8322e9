"""The time left on a search's status line, told through ``Display`` on a clock the test
moves: kernels being built, trials that arrive in bunches, the confirmation runs after the
search, and what the line keeps when cut to a terminal's width."""

import re

from tuner.cli.progress import Display
from tuner.results import Outcome, Run, TrialSummary
from tuner.space import Sample
from tuner.watcher import Progress

STEPS = 300
SAMPLE = Sample("adamw", {}, "cosine", {}, 0.01, 0.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def trial(number, duration_s=1.0, steps=STEPS, value=0.5):
    return TrialSummary(
        number=number,
        outcome=Outcome.COMPLETE,
        value=value,
        optimizer="adamw",
        schedule="cosine",
        params={},
        duration_s=duration_s,
        steps=steps,
        metrics={},
        reason=None,
        default=None,
        finished_at=None,
        population=None,
    )


def display(clock, total, confirm_runs=0):
    shown = Display(
        lambda study: "",
        "sqlite:///tuner.db",
        total,
        None,
        live=False,
        verbose=False,
        confirm_runs=confirm_runs,
        clock=clock,
    )
    shown.started("s", new=True, twins=[])
    return shown


def end(shown, clock, number, at, total, **kwargs):
    clock.now = 100.0 + at
    shown.trial_ended(trial(number, **kwargs), Progress(total, finished=number + 1))


def left(shown):
    return re.search(r"elapsed  (\S+) left", shown.status_line(1000))[1]


def seconds(text):
    minutes, secs = text.strip("~+").split(":")
    return 60 * int(minutes) + int(secs)


def test_the_confirmation_runs_to_come_are_counted_before_and_while_they_run():
    clock = Clock()
    shown = display(clock, total=4, confirm_runs=6)
    shown.trial_started(0, SAMPLE, STEPS)
    for number in range(4):
        # Each trial ran its 300 steps in 2 s: a confirmation run should take as long.
        end(shown, clock, number, 2.0 * (number + 1), 4, duration_s=2.0)

    assert left(shown) == "~0:12"
    shown.confirming(trial(3), 0, 3, STEPS)
    clock.now += 1
    assert 10 <= seconds(left(shown)) <= 12
    clock.now += 3  # Longer than foreseen: the runs still to come count in full.
    assert 10 <= seconds(left(shown)) <= 12
    shown.confirmed(trial(3), 0, 3, Run(1, Outcome.COMPLETE, 0.4, STEPS, 4.0, {}, {}, None))
    assert left(shown) == "~0:20"  # Five more, at the 4 s this one took.


def test_a_cold_cache_gives_a_range_and_a_build_in_flight_an_open_end():
    clock = Clock()
    shown = display(clock, total=60)
    # The first 10 trials build kernels, 3 s each; the next 20 find them built, 0.25 s each.
    for number in range(10):
        end(shown, clock, number, 3.0 * (number + 1), 60)
    for number in range(10, 30):
        end(shown, clock, number, 30 + 0.25 * (number - 9), 60)

    text = left(shown)
    low, high = (seconds(part) for part in text.strip("~").split("-"))
    assert text.startswith("~") and low < 30 < high, text
    shown.trial_started(30, SAMPLE, STEPS)
    shown.building(30)
    assert re.fullmatch(r"\d+:\d\d\+", left(shown)), left(shown)


def test_trials_that_arrive_in_bunches_are_timed_by_the_clock_not_by_their_gaps():
    clock = Clock()
    shown = display(clock, total=64)
    shown.workers = 2
    # Two workers' populations of 8 end together every 10 s: 16 trials at once.
    for bunch in range(2):
        for member in range(16):
            end(shown, clock, 16 * bunch + member, 10.0 * (bunch + 1), 64)

    assert left(shown) == "~0:20"


def test_the_cut_line_keeps_the_trial_and_the_seed_it_is_on():
    clock = Clock()
    shown = display(clock, total=60, confirm_runs=9)
    for number in range(60):
        end(shown, clock, number, 1.0 * (number + 1), 60)
    best = trial(12, value=0.0123456)
    shown.progress = Progress(60, finished=60, best=best)
    shown.confirming(best, 1, 3, STEPS)
    shown.step = 150

    line, whole = shown.status_line(77), shown.status_line(1000)

    assert len(line) <= 77
    assert "  confirming trial 12, seed 2/3: adamw" in line, line
    assert whole.endswith("adamw+cosine step 150/300  best 0.01235 adamw+cosine"), whole
