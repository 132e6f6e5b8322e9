"""The samplers and pruners a search uses, against Optuna's own."""

import optuna

from tuner.samplers import MedianAsTrialBegan, make_pruner, make_sampler


def pruned_trials(pruner: optuna.pruners.BasePruner) -> list[int]:
    """The trials that ``pruner`` stops in a study of 30 seeded trials, each of which reports
    a curve that its parameter decides."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=make_sampler("tpe", 3), pruner=pruner)

    def objective(trial: optuna.Trial) -> float:
        rate = trial.suggest_float("rate", 0.01, 1.0, log=True)
        for step in range(1, 7):
            trial.report(1.0 / (1.0 + rate * step), step * 50)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return 1.0 / (1.0 + rate * 6)

    study.optimize(objective, n_trials=30)
    return [t.number for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]


def test_the_median_pruner_on_the_study_as_a_trial_began_prunes_as_optunas_does():
    settings = {"n_startup_trials": 5, "n_warmup_steps": 50}

    ours = pruned_trials(MedianAsTrialBegan(**settings))

    assert ours == pruned_trials(optuna.pruners.MedianPruner(**settings))
    assert len(ours) >= 5


def study_of(pruner: optuna.pruners.BasePruner, *finished: tuple[str, list[float]]) -> optuna.Study:
    """An in-memory study of ``pruner`` holding ``finished`` trials: each complete or pruned,
    with the values it reported at steps 50, 100, ..."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(pruner=pruner)
    for state, values in finished:
        trial = study.ask()
        for number, value in enumerate(values, 1):
            trial.report(value, 50 * number)
        if state == "complete":
            study.tell(trial, values[-1])
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return study


def stopped(study: optuna.Study, *values: float) -> bool:
    """Whether a new trial that reports ``values`` at steps 50, 100, ... is stopped at the last."""
    trial = study.ask()
    for number, value in enumerate(values, 1):
        trial.report(value, 50 * number)
    return trial.should_prune()


def default_pruner() -> optuna.pruners.BasePruner:
    return make_pruner("quartile", steps=300, eval_every=50)


def old_median() -> optuna.pruners.BasePruner:
    return make_pruner("median", steps=300, eval_every=50)


EIGHT = [("complete", [value, value / 2]) for value in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)]


def test_the_default_pruner_stops_a_trial_only_among_the_worst_quarter():
    # Behind the median at the first eval, as a warmup or a low peak rate leaves a trial.
    assert not stopped(study_of(default_pruner(), *EIGHT), 0.55)
    assert stopped(study_of(old_median(), *EIGHT), 0.55)
    # Behind three quarters of the finished trials.
    assert stopped(study_of(default_pruner(), *EIGHT), 0.75)


def test_the_default_pruner_judges_against_pruned_trials_too():
    # Five good trials complete, fifteen worse were pruned at the first eval: against the
    # complete ones alone, the bar would be the best of them.
    history = [("complete", [value, value / 2]) for value in (0.1, 0.2, 0.3, 0.4, 0.5)]
    history += [("pruned", [0.6 + 0.1 * n]) for n in range(15)]
    against_complete = optuna.pruners.PercentilePruner(75.0, n_startup_trials=5)

    assert not stopped(study_of(default_pruner(), *history), 0.7)
    assert stopped(study_of(against_complete, *history), 0.7)
    assert stopped(study_of(default_pruner(), *history), 1.8)


def test_the_default_pruner_acts_from_the_first_eval_once_five_trials_finished():
    assert not stopped(study_of(default_pruner(), *EIGHT[:4]), 5.0)
    assert stopped(study_of(default_pruner(), *EIGHT[:5]), 5.0)
    # Kept at the first eval; at the second, behind every trial that reported there, but only
    # four did: too few to judge by.
    four = [("complete", [0.1, 0.1])] * 4 + [("pruned", [0.2])] * 4
    five = [("complete", [0.1, 0.1])] * 5 + [("pruned", [0.2])] * 3
    assert not stopped(study_of(default_pruner(), *four), 0.15, 5.0)
    assert stopped(study_of(default_pruner(), *five), 0.15, 5.0)


def test_trials_asked_together_each_draw_what_they_draw_asked_alone():
    # A population's trials are all asked before the first samples.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    alone = optuna.create_study(sampler=make_sampler("tpe", 5))
    drawn = []
    for _ in range(3):
        trial = alone.ask()
        drawn.append(trial.suggest_float("rate", 0.01, 1.0, log=True))
        alone.tell(trial, 1.0)

    together = optuna.create_study(sampler=make_sampler("tpe", 5))
    trials = [together.ask() for _ in range(3)]

    assert [t.suggest_float("rate", 0.01, 1.0, log=True) for t in trials] == drawn
